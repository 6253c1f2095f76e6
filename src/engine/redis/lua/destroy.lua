local C, H, M, ST = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', C) == 0 then return -1 end
if ARGV[3] == '1' and redis.call('ZCARD', M) > 0 then return -1 end
local members = redis.call('ZRANGE', M, 0, -1)
local off = redis.call('HINCRBY', C, 'off', 1)
publish(C, ARGV[2], ARGV[1], {off, 'X', ARGV[4]}, '')
redis.call('DEL', C, H, M, ST)
return members
