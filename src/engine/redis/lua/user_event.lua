if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call(ARGV[2], ARGV[1], ARGV[3])
return redis.call('HLEN', KEYS[2])
