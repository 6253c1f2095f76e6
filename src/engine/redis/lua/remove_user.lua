if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HLEN', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
return 1
