//! The Lua scripts the Redis engine runs. Each touches the keys of one channel or of one user
//! only (all hash-tagged alike), so that it is atomic on a single Redis and on Redis Cluster.
//!
//! A channel's event messages are published from inside the scripts that change the channel, so
//! their order on the channel's pub/sub channel is the order of the changes. Every message starts
//! with a JSON header line `[epoch, offset, kind, …]`; the rest of the message is a frame,
//! encoded once by the node that asked. The epoch is a random id drawn when the channel is
//! created: offsets count from 1 within it, and a channel destroyed and created again (or lost
//! with Redis's data) has a new one.
//!
//! History entries are stored as `"<offset> <unix seconds or -1> <json>"`.

use redis::Script;
use std::sync::LazyLock;

/// Shared Lua helpers, prepended to the scripts that need them.
const COMMON: &str = r#"
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
"#;

fn with_common(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

/// Creates a channel unless it exists. KEYS: C, H, ST. ARGV: the settings fields (see
/// `settings_args`), epoch, max bytes, now, the number of state pairs, the pairs, the history
/// entries (`secs json` each). Returns 1 if created.
pub static CREATE: LazyLock<Script> = LazyLock::new(|| {
    with_common(
        r#"
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
"#,
    )
});

/// Replaces a channel's settings, and optionally its history and state. KEYS: C, H, ST.
/// ARGV: settings fields (6) and an unused slot, trim (0/1), replace history (0/1), replace state (0/1), event
/// channel, pub command, STATE_UPDATE frame ('' if none), now, npairs, pairs…, entries…
/// Returns 0 if the channel does not exist.
pub static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    with_common(
        r#"
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
"#,
    )
});

/// A user joins. KEYS: C, H, M, ST. ARGV: user, node, event channel, pub command, presence
/// frame, history entry json ('' for none), secs, now. Returns `{0}` (no channel), `{1}`
/// (already a member) or a snapshot of the channel before the join (see [`SNAPSHOT`]) whose
/// offset is the join's, with the members only for a presence channel (the joiner's own
/// SUBSCRIBE shows them; otherwise a crowd joining one channel read every member each, a
/// quadratic cost).
pub static JOIN: LazyLock<Script> = LazyLock::new(|| {
    with_common(
        r#"
local C, H, M, ST = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user, node, chan, cmd = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', C) == 0 then return {0} end
if redis.call('ZSCORE', M, user) then return {1} end
local history = redis.call('LRANGE', H, 0, -1)
local off = redis.call('HINCRBY', C, 'off', 1)
redis.call('ZADD', M, off, user)
local presence = ''
if redis.call('HGET', C, 'pres') == '1' then presence = ARGV[5] end
publish(C, cmd, chan, {off, 'J', user, node}, presence)
if redis.call('HGET', C, 'po') ~= '1' then
  append(C, H, off, ARGV[7], ARGV[6], tonumber(ARGV[8]))
end
local out = {2, off, redis.call('HGET', C, 'epoch'), redis.call('HGET', C, 's'),
  redis.call('HGET', C, 'floor'), #history}
for _, e in ipairs(history) do table.insert(out, e) end
local state = redis.call('HGETALL', ST)
table.insert(out, #state)
for _, v in ipairs(state) do table.insert(out, v) end
if redis.call('HGET', C, 'pres') == '1' then
  for _, v in ipairs(redis.call('ZRANGE', M, 0, -1)) do table.insert(out, v) end
end
return out
"#,
    )
});

/// A member leaves. KEYS: C, H, M. ARGV: user, event channel, pub command, UNSUBSCRIBE frame,
/// history entry json, secs, now. Returns -1 if not a member, else the members left.
pub static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    with_common(
        r#"
local C, H, M = KEYS[1], KEYS[2], KEYS[3]
local user, chan, cmd = ARGV[1], ARGV[2], ARGV[3]
if not redis.call('ZSCORE', M, user) then return -1 end
local off = redis.call('HINCRBY', C, 'off', 1)
redis.call('ZREM', M, user)
local pres = redis.call('HGET', C, 'pres') == '1' and 1 or 0
publish(C, cmd, chan, {off, 'L', user, pres}, ARGV[4])
if redis.call('HGET', C, 'po') ~= '1' then
  append(C, H, off, ARGV[6], ARGV[5], tonumber(ARGV[7]))
end
return redis.call('ZCARD', M)
"#,
    )
});

/// A publication. KEYS: C, H. ARGV: event channel, pub command, skip conn, recipients ('*'
/// every subscriber, 'u:<name>' one user, '-' nobody), frame, history entry json ('' for none),
/// secs, now. Returns the offset, or -1 without such a channel.
pub static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    with_common(
        r#"
local C, H = KEYS[1], KEYS[2]
if redis.call('EXISTS', C) == 0 then return -1 end
local off = redis.call('HINCRBY', C, 'off', 1)
local skip = ARGV[3]
if redis.call('HGET', C, 'refl') == '1' then skip = '' end
publish(C, ARGV[2], ARGV[1], {off, 'P', skip, ARGV[4]}, ARGV[5])
append(C, H, off, ARGV[7], ARGV[6], tonumber(ARGV[8]))
return off
"#,
    )
});

/// Sets (ARGV[3] = '1') or deletes one state key, broadcasting the frame if it changed anything.
/// KEYS: C, ST. ARGV: key, json value, set?, event channel, pub command, frame. Returns -1
/// without such a channel, 0 if nothing changed, 1 if changed.
pub static STATE: LazyLock<Script> = LazyLock::new(|| {
    with_common(
        r#"
local C, ST = KEYS[1], KEYS[2]
if redis.call('EXISTS', C) == 0 then return -1 end
local key, val = ARGV[1], ARGV[2]
local old = redis.call('HGET', ST, key)
if ARGV[3] == '1' then
  if old == val then return 0 end
  redis.call('HSET', ST, key, val)
else
  if not old then return 0 end
  redis.call('HDEL', ST, key)
end
local off = redis.call('HINCRBY', C, 'off', 1)
publish(C, ARGV[5], ARGV[4], {off, 'B', ''}, ARGV[6])
return 1
"#,
    )
});

/// Removes a channel: only if it has no member (ARGV[3] = '1'), or whatever its members
/// (the Web API's destroy, whose members each get an UNSUBSCRIBE stamped ARGV[4]). KEYS: C, H,
/// M, ST. ARGV: event channel, pub command, empty only?, stamp. Returns -1 if not removed
/// (missing or not empty), else the list of members it had.
pub static DESTROY: LazyLock<Script> = LazyLock::new(|| {
    with_common(
        r#"
local C, H, M, ST = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', C) == 0 then return -1 end
if ARGV[3] == '1' and redis.call('ZCARD', M) > 0 then return -1 end
local members = redis.call('ZRANGE', M, 0, -1)
local off = redis.call('HINCRBY', C, 'off', 1)
publish(C, ARGV[2], ARGV[1], {off, 'X', ARGV[4]}, '')
redis.call('DEL', C, H, M, ST)
return members
"#,
    )
});

/// A consistent read of a channel. KEYS: C, H, M, ST. ARGV: '1' for the members in any case,
/// '0' for them only in a presence channel (see [`JOIN`]). Returns `{}` without such a
/// channel, else `{2, offset, epoch, settings, floor, n, n history entries, 2m, m state pairs,
/// members…}`.
pub static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local C, H, M, ST = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', C) == 0 then return {} end
local history = redis.call('LRANGE', H, 0, -1)
local out = {2, tonumber(redis.call('HGET', C, 'off')), redis.call('HGET', C, 'epoch'),
  redis.call('HGET', C, 's'), redis.call('HGET', C, 'floor'), #history}
for _, e in ipairs(history) do table.insert(out, e) end
local state = redis.call('HGETALL', ST)
table.insert(out, #state)
for _, v in ipairs(state) do table.insert(out, v) end
if ARGV[1] == '1' or redis.call('HGET', C, 'pres') == '1' then
  for _, v in ipairs(redis.call('ZRANGE', M, 0, -1)) do table.insert(out, v) end
end
return out
"#,
    )
});

/// Attaches a connection to a user. KEYS: U, UC, UCH. ARGV: conn, node, options json. Returns
/// `{created (0/1), channel…}`.
pub static ATTACH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local U, UC, UCH = KEYS[1], KEYS[2], KEYS[3]
local created = redis.call('EXISTS', U) == 0 and 1 or 0
redis.call('HSET', UC, ARGV[1], ARGV[2])
redis.call('HSET', U, 'opts', ARGV[3])
local out = {created}
for _, c in ipairs(redis.call('ZRANGE', UCH, 0, -1)) do table.insert(out, c) end
return out
"#,
    )
});

/// Detaches a connection. KEYS: U, UC, REC. ARGV: conn, cookie. Returns `{last (0/1),
/// emptied channel…}`: channels whose last recorded connection this was, in per-connection or
/// global-unsubscription mode. A connection already detached (a retry whose first answer was
/// lost) is `last` again if the user still exists with no connection: its cascade is still due,
/// and removing the user happens once however many cascades run.
pub static DETACH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
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
"#,
    )
});

/// Records a connection for a channel (per-connection subscriptions). KEYS: REC. ARGV: channel,
/// conn.
pub static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local ids = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1]) or '[]')
for _, id in ipairs(ids) do if id == ARGV[2] then return 0 end end
table.insert(ids, ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(ids))
return 1
"#,
    )
});

/// Removes a user with no connection left. KEYS: U, UC, UCH, REC. Returns 1 if removed.
pub static REMOVE_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HLEN', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
return 1
"#,
    )
});

/// Publishes a user event if the user exists. KEYS: U, UC. ARGV: event channel, pub command,
/// message. Returns -1 without such a user, else the number of its connections.
pub static USER_EVENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call(ARGV[2], ARGV[1], ARGV[3])
return redis.call('HLEN', KEYS[2])
"#,
    )
});

/// Adds a channel to a user's channels, keeping the order they were joined in, if the user still
/// has a connection. KEYS: U, UCH, UC. ARGV: channel. Returns 0 (nothing done) if it has none: its
/// last connection closed after the join was decided, and its close cascade may already have read
/// its channels, so the joiner must leave again.
pub static USER_CHANNEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HLEN', KEYS[3]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], 'NX', n, ARGV[1])
return 1
"#,
    )
});

/// Takes or renews a lease. KEYS: the lease key. ARGV: node, ttl in ms. Returns 1 if the node
/// holds it.
pub static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#,
    )
});

/// Gives a lease back if the node holds it. KEYS: the lease key. ARGV: node.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"#,
    )
});
