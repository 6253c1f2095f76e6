local C, H, M = KEYS[1], KEYS[2], KEYS[3]
local user, chan, cmd = ARGV[1], ARGV[2], ARGV[3]
if not redis.call('ZSCORE', M, user) then return -1 end
local off = redis.call('HINCRBY', C, 'off', 1)
redis.call('ZREM', M, user)
local pres = redis.call('HGET', C, 'pres') == '1' and 1 or 0
publish(C, cmd, chan, {off, 'L', user, pres}, ARGV[4])
if redis.call('HGET', C, 'po') ~= '1' then
  append(C, H, off, ARGV[6], ARGV[5], tonumber(ARGV[7]))
end
return redis.call('ZCARD', M)
