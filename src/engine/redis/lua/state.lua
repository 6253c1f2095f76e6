local C, ST = KEYS[1], KEYS[2]
if redis.call('EXISTS', C) == 0 then return -1 end
local key, val = ARGV[1], ARGV[2]
local old = redis.call('HGET', ST, key)
if ARGV[3] == '1' then
  if old == val then return 0 end
  redis.call('HSET', ST, key, val)
else
  if not old then return 0 end
  redis.call('HDEL', ST, key)
end
local off = redis.call('HINCRBY', C, 'off', 1)
publish(C, ARGV[5], ARGV[4], {off, 'B', ''}, ARGV[6])
return 1
