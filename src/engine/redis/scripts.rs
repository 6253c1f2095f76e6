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
//!
//! The Lua is in `lua/`, one file per script, embedded at build time; each script's reply is
//! read by a type of `replies`, named in its doc below.

use redis::Script;
use std::sync::LazyLock;

/// A script from `lua/`, embedded in the binary; `common` puts the shared helpers
/// (`lua/common.lua`) in front of it.
macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(include_str!(concat!("lua/", $file))))
    };
    (common, $file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/common.lua"),
                "\n",
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

/// Creates a channel unless it exists. KEYS: C, H, ST. ARGV: the settings fields (see
/// `settings_args`), epoch, max bytes, now, the number of state pairs, the pairs, the history
/// entries (`secs json` each). Returns 1 if created.
/// Read as `bool`.
pub static CREATE: LazyLock<Script> = script!(common, "create.lua");

/// Replaces a channel's settings, and optionally its history and state. KEYS: C, H, ST.
/// ARGV: settings fields (6) and an unused slot, trim (0/1), replace history (0/1), replace state (0/1), event
/// channel, pub command, STATE_UPDATE frame ('' if none), now, npairs, pairs…, entries…
/// Returns 0 if the channel does not exist.
/// Read as `bool`.
pub static UPDATE: LazyLock<Script> = script!(common, "update.lua");

/// A user joins. KEYS: C, H, M, ST. ARGV: user, node, event channel, pub command, presence
/// frame, history entry json ('' for none), secs, now. Returns `{0}` (no channel), `{1}`
/// (already a member) or a snapshot of the channel before the join (see [`SNAPSHOT`]) whose
/// offset is the join's, with the members only for a presence channel (the joiner's own
/// SUBSCRIBE shows them; otherwise a crowd joining one channel read every member each, a
/// quadratic cost).
/// Read as [`JoinReply`](super::replies::JoinReply).
pub static JOIN: LazyLock<Script> = script!(common, "join.lua");

/// A member leaves. KEYS: C, H, M. ARGV: user, event channel, pub command, UNSUBSCRIBE frame,
/// history entry json, secs, now. Returns -1 if not a member, else the members left.
/// Read as [`OrMissing`](super::replies::OrMissing).
pub static LEAVE: LazyLock<Script> = script!(common, "leave.lua");

/// A publication. KEYS: C, H. ARGV: event channel, pub command, skip conn, recipients ('*'
/// every subscriber, 'u:<name>' one user, '-' nobody), frame, history entry json ('' for none),
/// secs, now. Returns the offset, or -1 without such a channel.
/// Read as [`OrMissing`](super::replies::OrMissing).
pub static PUBLISH: LazyLock<Script> = script!(common, "publish.lua");

/// Sets (ARGV[3] = '1') or deletes one state key, broadcasting the frame if it changed anything.
/// KEYS: C, ST. ARGV: key, json value, set?, event channel, pub command, frame. Returns -1
/// without such a channel, 0 if nothing changed, 1 if changed.
/// Read as [`StateReply`](super::replies::StateReply).
pub static STATE: LazyLock<Script> = script!(common, "state.lua");

/// Removes a channel: only if it has no member (ARGV[3] = '1'), or whatever its members
/// (the Web API's destroy, whose members each get an UNSUBSCRIBE stamped ARGV[4]). KEYS: C, H,
/// M, ST. ARGV: event channel, pub command, empty only?, stamp. Returns -1 if not removed
/// (missing or not empty), else the list of members it had.
/// Read as [`DestroyReply`](super::replies::DestroyReply).
pub static DESTROY: LazyLock<Script> = script!(common, "destroy.lua");

/// A consistent read of a channel. KEYS: C, H, M, ST. ARGV: '1' for the members in any case,
/// '0' for them only in a presence channel (see [`JOIN`]). Returns `{}` without such a
/// channel, else `{2, offset, epoch, settings, floor, n, n history entries, 2m, m state pairs,
/// members…}`.
/// Read as [`SnapshotReply`](super::replies::SnapshotReply).
pub static SNAPSHOT: LazyLock<Script> = script!("snapshot.lua");

/// Attaches a connection to a user. KEYS: U, UC, UCH. ARGV: conn, node, options json. Returns
/// `{created (0/1), channel…}`.
/// Read as [`FlagAndNames`](super::replies::FlagAndNames).
pub static ATTACH: LazyLock<Script> = script!("attach.lua");

/// Detaches a connection. KEYS: U, UC, REC. ARGV: conn, cookie. Returns `{last (0/1),
/// emptied channel…}`: channels whose last recorded connection this was, in per-connection or
/// global-unsubscription mode. A connection already detached (a retry whose first answer was
/// lost) is `last` again if the user still exists with no connection: its cascade is still due,
/// and removing the user happens once however many cascades run.
/// Read as [`FlagAndNames`](super::replies::FlagAndNames).
pub static DETACH: LazyLock<Script> = script!("detach.lua");

/// Records a connection for a channel (per-connection subscriptions). KEYS: REC. ARGV: channel,
/// conn.
pub static RECORD: LazyLock<Script> = script!("record.lua");

/// Removes a user with no connection left. KEYS: U, UC, UCH, REC. Returns 1 if removed.
/// Read as `bool`.
pub static REMOVE_USER: LazyLock<Script> = script!("remove_user.lua");

/// Publishes a user event if the user exists. KEYS: U, UC. ARGV: event channel, pub command,
/// message. Returns -1 without such a user, else the number of its connections.
/// Read as [`OrMissing`](super::replies::OrMissing).
pub static USER_EVENT: LazyLock<Script> = script!("user_event.lua");

/// Adds a channel to a user's channels, keeping the order they were joined in, if the user still
/// has a connection. KEYS: U, UCH, UC. ARGV: channel. Returns 0 (nothing done) if it has none: its
/// last connection closed after the join was decided, and its close cascade may already have read
/// its channels, so the joiner must leave again.
/// Read as `bool`.
pub static USER_CHANNEL: LazyLock<Script> = script!("user_channel.lua");

/// Takes or renews a lease. KEYS: the lease key. ARGV: node, ttl in ms. Returns 1 if the node
/// holds it.
/// Read as `bool`.
pub static LEASE: LazyLock<Script> = script!("lease.lua");

/// Gives a lease back if the node holds it. KEYS: the lease key. ARGV: node.
pub static RELEASE: LazyLock<Script> = script!("release.lua");
