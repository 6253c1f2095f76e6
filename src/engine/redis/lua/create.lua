local C, H, ST = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', C) == 1 then return 0 end
redis.call('HSET', C, 's', ARGV[1], 'pres', ARGV[2], 'po', ARGV[3], 'size', ARGV[4],
  'dur', ARGV[5], 'refl', ARGV[6], 'epoch', ARGV[7], 'maxb', ARGV[8], 'off', 0, 'floor', 0, 'hb', 0)
local now = tonumber(ARGV[9])
local npairs = tonumber(ARGV[10])
local i = 11
for _ = 1, npairs do
  redis.call('HSET', ST, ARGV[i], ARGV[i + 1])
  i = i + 2
end
for j = i, #ARGV do
  local e = '0 ' .. ARGV[j]
  redis.call('RPUSH', H, e)
  redis.call('HINCRBY', C, 'hb', #e)
end
prune(C, H, now, false)
return 1
