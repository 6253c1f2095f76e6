local ids = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1]) or '[]')
for _, id in ipairs(ids) do if id == ARGV[2] then return 0 end end
table.insert(ids, ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(ids))
return 1
