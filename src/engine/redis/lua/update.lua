local C, H, ST = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', C) == 0 then return 0 end
redis.call('HSET', C, 's', ARGV[1], 'pres', ARGV[2], 'po', ARGV[3], 'size', ARGV[4],
  'dur', ARGV[5], 'refl', ARGV[6])
local trim, rh, rs = ARGV[8] == '1', ARGV[9] == '1', ARGV[10] == '1'
local chan, cmd, frame, now = ARGV[11], ARGV[12], ARGV[13], tonumber(ARGV[14])
local npairs = tonumber(ARGV[15])
local i = 16
if rs then
  redis.call('DEL', ST)
  for _ = 1, npairs do
    redis.call('HSET', ST, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
else
  i = i + 2 * npairs
end
if rh then
  for _, e in ipairs(redis.call('LRANGE', H, 0, -1)) do
    redis.call('HSET', C, 'floor', floor_after(tonumber(redis.call('HGET', C, 'floor')), e))
  end
  redis.call('DEL', H)
  redis.call('HSET', C, 'hb', 0)
  for j = i, #ARGV do
    local e = '0 ' .. ARGV[j]
    redis.call('RPUSH', H, e)
    redis.call('HINCRBY', C, 'hb', #e)
  end
end
if trim then prune(C, H, now, false) end
if frame ~= '' then
  local off = redis.call('HINCRBY', C, 'off', 1)
  publish(C, cmd, chan, {off, 'B', ''}, frame)
end
return 1
