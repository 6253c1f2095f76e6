if redis.call('HLEN', KEYS[3]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], 'NX', n, ARGV[1])
return 1
