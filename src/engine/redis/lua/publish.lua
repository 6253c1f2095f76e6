local C, H = KEYS[1], KEYS[2]
if redis.call('EXISTS', C) == 0 then return -1 end
local off = redis.call('HINCRBY', C, 'off', 1)
local skip = ARGV[3]
if redis.call('HGET', C, 'refl') == '1' then skip = '' end
publish(C, ARGV[2], ARGV[1], {off, 'P', skip, ARGV[4]}, ARGV[5])
append(C, H, off, ARGV[7], ARGV[6], tonumber(ARGV[8]))
return off
