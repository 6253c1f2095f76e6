local C, H, M, ST = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user, node, chan, cmd = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', C) == 0 then return {0} end
if redis.call('ZSCORE', M, user) then return {1} end
local history = redis.call('LRANGE', H, 0, -1)
local off = redis.call('HINCRBY', C, 'off', 1)
redis.call('ZADD', M, off, user)
local presence = ''
if redis.call('HGET', C, 'pres') == '1' then presence = ARGV[5] end
publish(C, cmd, chan, {off, 'J', user, node}, presence)
if redis.call('HGET', C, 'po') ~= '1' then
  append(C, H, off, ARGV[7], ARGV[6], tonumber(ARGV[8]))
end
local out = {2, off, redis.call('HGET', C, 'epoch'), redis.call('HGET', C, 's'),
  redis.call('HGET', C, 'floor'), #history}
for _, e in ipairs(history) do table.insert(out, e) end
local state = redis.call('HGETALL', ST)
table.insert(out, #state)
for _, v in ipairs(state) do table.insert(out, v) end
if redis.call('HGET', C, 'pres') == '1' then
  for _, v in ipairs(redis.call('ZRANGE', M, 0, -1)) do table.insert(out, v) end
end
return out
