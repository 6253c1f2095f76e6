local C, H, M = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', C) == 0 then return {-1} end
local off = redis.call('HINCRBY', C, 'off', 1)
local skip = ARGV[3]
if redis.call('HGET', C, 'refl') == '1' then skip = '' end
local to = ARGV[4]
-- only_to_sender to a publisher that is not a member: no member receives it, and the publisher's
-- connections (on any node, listening to the channel or not) get it through its own events.
local sender = ''
if string.sub(to, 1, 2) == 'u:' and not redis.call('ZSCORE', M, string.sub(to, 3)) then
  sender = string.sub(to, 3)
  to = '-'
end
publish(C, ARGV[2], ARGV[1], {off, 'P', skip, to}, ARGV[5])
append(C, H, off, ARGV[7], ARGV[6], tonumber(ARGV[8]))
return {off, sender, skip}
