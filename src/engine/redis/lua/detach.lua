local U, UC, REC = KEYS[1], KEYS[2], KEYS[3]
local conn = ARGV[1]
if redis.call('HDEL', UC, conn) == 0 then
  if redis.call('EXISTS', U) == 1 and redis.call('HLEN', UC) == 0 then return {1} end
  return {0}
end
local opts = cjson.decode(redis.call('HGET', U, 'opts') or '{}')
local per = opts['per_connection_subscriptions'] == true
local global = opts['global_unsubscriptions'] == true
local out = {0}
for _, ch in ipairs(redis.call('HKEYS', REC)) do
  local ids = cjson.decode(redis.call('HGET', REC, ch))
  local kept, found = {}, false
  for _, id in ipairs(ids) do
    if id == conn then found = true else table.insert(kept, id) end
  end
  if found then
    if global then kept = {} end
    if #kept == 0 then
      redis.call('HDEL', REC, ch)
      if per or global then table.insert(out, ch) end
    else
      redis.call('HSET', REC, ch, cjson.encode(kept))
    end
  end
end
if redis.call('HLEN', UC) == 0 then
  out[1] = 1
  redis.call('HSET', U, 'cookie', ARGV[2])
end
return out
