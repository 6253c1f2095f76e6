local U, UC, UCH = KEYS[1], KEYS[2], KEYS[3]
local created = redis.call('EXISTS', U) == 0 and 1 or 0
redis.call('HSET', UC, ARGV[1], ARGV[2])
redis.call('HSET', U, 'opts', ARGV[3])
local out = {created}
for _, c in ipairs(redis.call('ZRANGE', UCH, 0, -1)) do table.insert(out, c) end
return out
