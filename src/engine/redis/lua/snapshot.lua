local C, H, M, ST = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', C) == 0 then return {} end
local history = redis.call('LRANGE', H, 0, -1)
local out = {2, tonumber(redis.call('HGET', C, 'off')), redis.call('HGET', C, 'epoch'),
  redis.call('HGET', C, 's'), redis.call('HGET', C, 'floor'), #history}
for _, e in ipairs(history) do table.insert(out, e) end
local state = redis.call('HGETALL', ST)
table.insert(out, #state)
for _, v in ipairs(state) do table.insert(out, v) end
if ARGV[1] == '1' or redis.call('HGET', C, 'pres') == '1' then
  for _, v in ipairs(redis.call('ZRANGE', M, 0, -1)) do table.insert(out, v) end
end
return out
