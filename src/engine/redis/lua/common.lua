-- Publishes a channel event: the header gets the channel's epoch (key C) in front.
local function publish(C, cmd, chan, header, body)
  table.insert(header, 1, redis.call('HGET', C, 'epoch'))
  redis.call(cmd, chan, cjson.encode(header) .. '\n' .. (body or ''))
end
local function entry_offset(e)
  return tonumber(string.match(e, '^(%d+) '))
end
local function is_publication(e)
  return string.match(e, '^%d+ %-?%d+ %["PUBLISH"') ~= nil
end
-- The floor after entry e is dropped: only publications count (see History::floor).
local function floor_after(floor, e)
  if is_publication(e) then return math.max(floor, entry_offset(e)) end
  return floor
end
-- Drops the oldest entries past history_size and the byte bound, and (by_age) those older than
-- history_duration; keeps `floor`, the highest offset dropped.
local function prune(C, H, now, by_age)
  local size = tonumber(redis.call('HGET', C, 'size') or '0')
  local dur = tonumber(redis.call('HGET', C, 'dur') or '0')
  local maxb = tonumber(redis.call('HGET', C, 'maxb') or '0')
  local hb = tonumber(redis.call('HGET', C, 'hb') or '0')
  local floor = tonumber(redis.call('HGET', C, 'floor') or '0')
  if by_age and dur > 0 then
    local kept, changed = {}, false
    for _, e in ipairs(redis.call('LRANGE', H, 0, -1)) do
      local secs = tonumber(string.match(e, '^%d+ (%-?%d+) '))
      if secs >= 0 and secs < now - dur then
        changed = true
        hb = hb - #e
        floor = floor_after(floor, e)
      else
        table.insert(kept, e)
      end
    end
    if changed then
      redis.call('DEL', H)
      if #kept > 0 then redis.call('RPUSH', H, unpack(kept)) end
    end
  end
  local n = redis.call('LLEN', H)
  while (size > 0 and n > size) or (hb > maxb and n > 0) do
    local e = redis.call('LPOP', H)
    hb = hb - #e
    floor = floor_after(floor, e)
    n = n - 1
  end
  redis.call('HSET', C, 'hb', hb, 'floor', floor)
end
-- Appends an entry if the channel keeps history; a publication it does not keep (json '' is
-- one the node did not encode) raises `floor`: a client from before it cannot recover.
local function append(C, H, off, secs, json, now)
  if json == '' or tonumber(redis.call('HGET', C, 'size')) == 0 then
    if json == '' or string.sub(json, 1, 10) == '["PUBLISH"' then
      redis.call('HSET', C, 'floor', off)
    end
    return
  end
  local e = off .. ' ' .. secs .. ' ' .. json
  redis.call('RPUSH', H, e)
  redis.call('HINCRBY', C, 'hb', #e)
  prune(C, H, now, true)
end
