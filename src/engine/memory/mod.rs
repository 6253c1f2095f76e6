//! The in-memory engine: one node, everything in this process.
//!
//! Channels live in [`SHARDS`] independently locked maps, so no global lock is taken per message:
//! a publication locks only its channel's shard, then each subscriber's user lock for a few
//! pointer moves. Each channel's frames are pushed into the outboxes under that shard lock, which
//! is what gives every subscriber the same order. Users and connections are in their own maps,
//! touched only on connect and disconnect.
//!
//! Lock order, to stay deadlock-free: a channel shard, then `presence_watch` or `users`, then one
//! user's state, then an outbox. Never two shards, never two users' states at once, and no lock is
//! held across an `.await` (nothing here awaits).

mod keys;
mod revoked;
mod users;

use super::frames::{self, history_room, Shown, SubscribeView};
use super::history::{self, now_stamp, Entry, History};
use super::options::{state_diff, ChannelSettings, ChannelUpdate, OptionError, Polling};
use super::{
    Channels, Claim, Emptied, EngineError, Expiring, Flags, Join, Joined, LeaseKind, Left,
    Membership, NodeInfo, Nodes, Publication, Reaped, Recipients, RelayHandler, RelayRequest,
    Relayed, Subscribers, User,
};
use crate::engine::Conn;
use crate::protocol::Position;
use async_trait::async_trait;
use indexmap::{IndexMap, IndexSet};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

type R<T> = Result<T, EngineError>;

/// Number of channel shards. A power of two well above the core count keeps two publications on
/// different channels from contending.
const SHARDS: usize = 32;

/// One channel: settings, data, and its subscribers (users in join order).
struct Channel {
    name: Arc<str>,
    settings: ChannelSettings,
    history: History,
    state: Map<String, Value>,
    /// Found by name: a storm of 5,000 returning users in one channel looked each one up, and a
    /// list made that quadratic (14 % of the storm's CPU). Kept in join order (`shift_remove`).
    members: IndexSet<Member>,
    /// Position in the channel's stream of events: each publication, join, leave and state
    /// change takes the next one. History entries keep theirs.
    offset: u64,
    /// Drawn at creation: a channel destroyed and created again is another stream, and a client's
    /// position in the old one cannot be recovered in it.
    epoch: Box<str>,
    /// Users whose presence this channel tracks (§9.3), fixed at creation like the original.
    watched: Vec<String>,
}

/// A channel's member, hashed and compared by its user's name, so that the channel's set finds
/// it by name.
struct Member(Arc<User>);

impl PartialEq for Member {
    fn eq(&self, other: &Member) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Member {}

impl std::hash::Hash for Member {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes: `Borrow<str>` requires the same hash.
        (*self.0.name).hash(state);
    }
}

impl std::borrow::Borrow<str> for Member {
    fn borrow(&self) -> &str {
        &self.0.name
    }
}

impl Channel {
    fn is_member(&self, user: &str) -> bool {
        self.members.contains(user)
    }

    fn next_offset(&mut self) -> u64 {
        self.offset += 1;
        self.offset
    }

    /// Sends a frame to every subscriber's connections for this channel.
    fn broadcast(
        &self,
        frame: &crate::protocol::OutFrame,
        skip_user: Option<&str>,
        skip_conn: Option<&str>,
    ) {
        for Member(user) in &self.members {
            if skip_user == Some(&*user.name) {
                continue;
            }
            user.state.lock().send_channel(&self.name, frame, skip_conn);
        }
    }

    fn broadcast_state(&mut self, updates: Map<String, Value>, deletes: Vec<String>) {
        self.next_offset();
        self.broadcast(
            &frames::state_update(&self.name, updates, deletes),
            None,
            None,
        );
    }

    /// Records an event of the channel in its history (with its offset), if it keeps history.
    fn record(&mut self, mut entry: Entry, offset: u64) {
        entry.offset = offset;
        history::record(&mut self.history, &self.settings, entry);
    }

    /// Sends `user` its own-SUBSCRIBE frame on every connection that receives this channel,
    /// its history sized for the fullest of them (the frames count against the outbox budget like
    /// any other). The connection that gave a position (`asking`) gets its recovery instead.
    fn send_own_subscribe(
        &self,
        user: &User,
        initial_data: Option<&Value>,
        asking: Option<(&str, &Position)>,
    ) {
        let st = user.state.lock();
        let room = st
            .channel_conns(&self.name, None)
            .map(|c| history_room(&c.outbox))
            .min()
            .unwrap_or(0);
        // At most two encodings: with positions and without.
        let mut frames: [Option<crate::protocol::OutFrame>; 2] = [None, None];
        for conn in st.channel_conns(&self.name, None) {
            if let Some((_, pos)) = asking.filter(|(id, _)| *id == &*conn.id) {
                self.send_recovery(&user.name, conn, pos, initial_data);
                continue;
            }
            let shown = Shown::to(&conn.outbox, None);
            let frame = frames[usize::from(shown != Shown::Nothing)].get_or_insert_with(|| {
                frames::own_subscribe(&self.name, &user.name, self.view(room), initial_data, shown)
            });
            conn.outbox.push(frame);
        }
    }

    /// Sends `conn` its own SUBSCRIBE with `recovered`, followed (if recovered) by the
    /// publications it missed after `pos`, oldest first. The history in the frame and the missed
    /// publications each take at most a quarter of the connection's room.
    fn send_recovery(&self, user: &str, conn: &Conn, pos: &Position, initial_data: Option<&Value>) {
        let quarter = frames::recovery_room(&conn.outbox);
        let missed = self.history.missed(
            (&self.epoch, self.offset),
            self.history.floor(),
            pos,
            quarter,
            frames::replay_overhead(&self.name),
        );
        let view = self.view(quarter);
        frames::push_recovery(&conn.outbox, &self.name, user, view, initial_data, missed);
    }

    fn view(&self, history_room: usize) -> SubscribeView<'_> {
        SubscribeView {
            epoch: &self.epoch,
            offset: self.offset,
            history: self.history.newest_within(history_room),
            history_size: self.settings.history_size,
            history_duration: self.settings.history_duration,
            state: &self.state,
            presence: if self.settings.presenceful {
                self.members.iter().map(|Member(u)| &*u.name).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Applies a validated update; returns the state diff to broadcast, if any.
    fn apply(&mut self, update: ChannelUpdate) -> Option<(Map<String, Value>, Vec<String>)> {
        self.settings = update.settings;
        if let Some(h) = &update.history {
            self.history.replace(h);
        }
        if update.trim_history {
            history::prune(&mut self.history, &self.settings, false);
        }
        let diff = update.state.map(|new| {
            let diff = state_diff(&self.state, &new);
            self.state = new;
            diff
        });
        diff.filter(|(u, d)| !u.is_empty() || !d.is_empty())
    }
}

/// One lock's worth of channels.
type Shard = Mutex<HashMap<Arc<str>, Channel>>;

pub struct MemoryEngine {
    shards: Box<[Shard]>,
    hasher: RandomState,
    users: Mutex<HashMap<Arc<str>, Arc<User>>>,
    /// Connected connections by id, in connection order (`/web/get_server_info`).
    conns: Mutex<IndexMap<Arc<str>, Arc<Conn>>>,
    /// Server presence (§9.3): user name → channels that track whether that user is online.
    presence_watch: Mutex<HashMap<Arc<str>, Vec<Arc<str>>>>,
    /// Bytes of history each channel keeps at most (`--history-max-bytes`).
    history_max_bytes: usize,
    /// Idempotency keys of the Web API.
    idempotency: keys::Keys,
    /// Revoked resume tickets.
    revoked: revoked::Revocations,
}

impl MemoryEngine {
    pub fn new(history_max_bytes: usize) -> MemoryEngine {
        MemoryEngine {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            users: Mutex::new(HashMap::new()),
            conns: Mutex::new(IndexMap::new()),
            presence_watch: Mutex::new(HashMap::new()),
            history_max_bytes,
            idempotency: keys::Keys::default(),
            revoked: revoked::Revocations::default(),
        }
    }

    fn shard(&self, channel: &str) -> &Shard {
        let i = self.hasher.hash_one(channel) as usize % SHARDS;
        &self.shards[i]
    }

    /// Runs `f` on a channel under its shard lock. `None` if the channel does not exist.
    fn with_channel<R>(&self, name: &str, f: impl FnOnce(&mut Channel) -> R) -> Option<R> {
        self.shard(name).lock().get_mut(name).map(f)
    }

    /// Drops what a removed channel registered: its server-presence watches.
    fn forget(&self, c: Channel) {
        if !c.watched.is_empty() {
            let mut pw = self.presence_watch.lock();
            for u in &c.watched {
                if let Some(list) = pw.get_mut(u.as_str()) {
                    list.retain(|n| **n != *c.name);
                    if list.is_empty() {
                        pw.remove(u.as_str());
                    }
                }
            }
        }
        tracing::debug!("destroyed channel {}", c.name);
    }

    /// Sets a server-presence flag on every channel that watches `user` (§9.3).
    fn server_presence(&self, user: &str, online: bool) {
        let channels = match self.presence_watch.lock().get(user) {
            Some(chs) => chs.clone(),
            None => return,
        };
        for channel in channels {
            self.with_channel(&channel, |c| {
                if c.state.get(user) != Some(&Value::Bool(online)) {
                    c.state.insert(user.to_owned(), Value::Bool(online));
                    let mut updates = Map::new();
                    updates.insert(user.to_owned(), Value::Bool(online));
                    c.broadcast_state(updates, Vec::new());
                }
            });
        }
    }
}

// The engine's calls never wait: each future is ready at once.

#[async_trait]
impl Nodes for MemoryEngine {
    async fn lease(&self, _: LeaseKind, _: &str, _: Duration) -> R<bool> {
        Ok(true)
    }

    async fn release(&self, _: LeaseKind, _: &str) -> R<()> {
        Ok(())
    }

    /// Users with a connection, and channels (what `/metrics` reports).
    fn counts(&self) -> (usize, usize) {
        let channels = self.shards.iter().map(|s| s.lock().len()).sum();
        (self.users.lock().len(), channels)
    }

    async fn nodes(&self, local: NodeInfo) -> R<Vec<NodeInfo>> {
        let connections = self.conns.lock().len();
        Ok(vec![NodeInfo {
            connections,
            ..local
        }])
    }

    async fn ping(&self) -> R<()> {
        Ok(())
    }

    fn node_id(&self) -> Option<&str> {
        None
    }

    async fn relay(&self, _: &str, _: RelayRequest, _: Duration) -> R<Relayed> {
        Ok(Relayed::Gone)
    }

    fn serve_relays(&self, _: RelayHandler) {}

    fn take_reaped(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Reaped>> {
        None
    }
}

#[async_trait]
impl Expiring for MemoryEngine {
    async fn claim_key(&self, key: &str, ttl: Duration) -> R<Claim> {
        Ok(self.idempotency.claim(key, ttl))
    }

    async fn settle_key(&self, key: &str, answer: Option<&str>, ttl: Duration) -> R<()> {
        self.idempotency.settle(key, answer, ttl);
        Ok(())
    }

    async fn revoke_tickets(&self, user: &str, at_ms: i64, keep: Duration) -> R<()> {
        self.revoked.revoke(user, at_ms, keep);
        Ok(())
    }

    async fn tickets_revoked(&self, user: &str) -> R<Option<i64>> {
        Ok(self.revoked.revoked_at(user))
    }
}

#[async_trait]
impl Channels for MemoryEngine {
    async fn channel_exists(&self, ch: &str) -> R<bool> {
        Ok(self.shard(ch).lock().contains_key(ch))
    }

    async fn flags(&self, ch: &str) -> R<Option<Flags>> {
        Ok(self.with_channel(ch, |c| Flags::of(&c.settings)))
    }

    async fn polling(&self, ch: &str) -> R<Option<Polling>> {
        Ok(self.with_channel(ch, |c| c.settings.polling.clone()))
    }

    async fn polling_channels(&self) -> R<Vec<String>> {
        Ok(Vec::new()) // one node: no dead node's pollers to adopt
    }

    async fn create_channel(&self, name: &str, update: ChannelUpdate) -> R<bool> {
        let name: Arc<str> = Arc::from(name);
        let mut history = History::default();
        history.set_max_bytes(self.history_max_bytes);
        let mut ch = Channel {
            name: name.clone(),
            settings: ChannelSettings::default(),
            history,
            state: Map::new(),
            members: IndexSet::new(),
            offset: 0,
            epoch: super::random_id().into(),
            watched: Vec::new(),
        };
        ch.apply(update);
        if ch.settings.server_presenceful {
            ch.watched = ch.settings.server_user_presence.clone();
        }
        let mut shard = self.shard(&name).lock();
        if shard.contains_key(&name) {
            return Ok(false);
        }
        // Server presence: register the watch before reading who is online, both under the shard
        // lock, so a user arriving or leaving meanwhile is applied after the insert.
        if !ch.watched.is_empty() {
            let mut pw = self.presence_watch.lock();
            for u in &ch.watched {
                pw.entry(Arc::from(u.as_str()))
                    .or_default()
                    .push(name.clone());
            }
            drop(pw);
            let users = self.users.lock();
            for u in &ch.watched {
                let online = users.contains_key(u.as_str());
                ch.state.insert(u.clone(), Value::Bool(online));
            }
        }
        shard.insert(name.clone(), ch);
        tracing::debug!("created channel {name}");
        Ok(true)
    }

    async fn update_channel(
        &self,
        ch: &str,
        opts: &Map<String, Value>,
    ) -> R<Option<Result<bool, OptionError>>> {
        Ok(self.with_channel(ch, |c| {
            let update = c.settings.update(opts)?;
            let polling_changed = update.polling_changed;
            if let Some((updates, deletes)) = c.apply(update) {
                c.broadcast_state(updates, deletes);
            }
            Ok(polling_changed)
        }))
    }

    async fn channel_info(&self, ch: &str) -> R<Option<Value>> {
        Ok(self.with_channel(ch, |c| {
            json!({
                "name": &*c.name,
                "options": c.settings.to_json(c.history.to_json(), &c.state),
                "subscribers": c.members.iter().map(|Member(u)| &*u.name).collect::<Vec<_>>(),
            })
        }))
    }

    async fn channel_names(&self) -> R<Vec<Value>> {
        let mut names = Vec::new();
        for shard in self.shards.iter() {
            names.extend(shard.lock().keys().map(|k| Value::from(&**k)));
        }
        Ok(names)
    }

    async fn members(&self, ch: &str) -> R<Option<Vec<Arc<str>>>> {
        Ok(self.with_channel(ch, |c| {
            c.members.iter().map(|Member(u)| u.name.clone()).collect()
        }))
    }

    async fn set_state(&self, ch: &str, key: &str, val: Value) -> R<bool> {
        let found = self.with_channel(ch, |c| {
            if c.state.get(key) != Some(&val) {
                c.state.insert(key.to_owned(), val.clone());
                let mut updates = Map::new();
                updates.insert(key.to_owned(), val);
                c.broadcast_state(updates, Vec::new());
            }
        });
        Ok(found.is_some())
    }

    async fn delete_state(&self, ch: &str, key: &str) -> R<bool> {
        let found = self.with_channel(ch, |c| {
            if c.state.shift_remove(key).is_some() {
                c.broadcast_state(Map::new(), vec![key.to_owned()]);
            }
        });
        Ok(found.is_some())
    }

    async fn destroy_if_empty(&self, ch: &str) -> R<bool> {
        // Checked and removed under one lock, so nobody can join in between.
        let taken = {
            let mut shard = self.shard(ch).lock();
            match shard.get(ch) {
                Some(c) if c.members.is_empty() => shard.remove(ch),
                _ => None,
            }
        };
        Ok(taken.map(|c| self.forget(c)).is_some())
    }

    async fn destroy_channel(&self, ch: &str) -> R<bool> {
        // Taken out under its lock: whoever subscribed until now is unsubscribed, nobody after.
        let Some(c) = self.shard(ch).lock().remove(ch) else {
            return Ok(false);
        };
        let stamp = now_stamp();
        for Member(user) in &c.members {
            user.removed_from(&c.name, &stamp);
        }
        self.forget(c);
        Ok(true)
    }
}

#[async_trait]
impl Subscribers for MemoryEngine {
    async fn membership(&self, ch: &str, user: &str, conn: Option<&Arc<str>>) -> R<Membership> {
        let found = self.with_channel(ch, |c| match c.members.get(user) {
            Some(Member(u)) => {
                u.state.lock().record(&c.name, conn);
                Membership::Member
            }
            None => Membership::NotMember(Flags::of(&c.settings)),
        });
        Ok(found.unwrap_or(Membership::NoChannel))
    }

    async fn member_flags(&self, ch: &str, user: &str) -> R<Option<Flags>> {
        let flags = self.with_channel(ch, |c| c.is_member(user).then(|| Flags::of(&c.settings)));
        Ok(flags.flatten())
    }

    async fn join(&self, ch: &str, name: &str, join: Join<'_>) -> R<Joined> {
        let mut shard = self.shard(ch).lock();
        let Some(c) = shard.get_mut(ch) else {
            return Ok(Joined::NoChannel);
        };
        let Some(user) = self.users.lock().get(name).cloned() else {
            return Ok(Joined::UserGone);
        };
        {
            let mut st = user.state.lock();
            if st.gone || st.conns.is_empty() {
                // The user's last connection closed meanwhile: its cascade owns the user.
                return Ok(Joined::UserGone);
            }
            st.record(&c.name, join.conn);
        }
        if c.is_member(name) {
            return Ok(Joined::AlreadyMember);
        }
        c.members.insert(Member(user.clone()));
        let offset = c.next_offset();
        let stamp = now_stamp();
        if c.settings.presenceful {
            let presence = frames::membership("SUBSCRIBE", &c.name, name, &stamp);
            c.broadcast(&presence, Some(name), None);
        }
        let asking = join.conn.map(|id| &**id).zip(join.recover);
        c.send_own_subscribe(&user, join.initial_data, asking);
        if !c.settings.history_publish_only {
            c.record(Entry::membership("SUBSCRIBE", name, &stamp), offset);
        }
        Ok(Joined::Joined)
    }

    async fn recover(&self, ch: &str, user: &str, conn_id: &Arc<str>, pos: &Position) -> R<bool> {
        let recovered = self.with_channel(ch, |c| {
            let Some(Member(u)) = c.members.get(user) else {
                return false;
            };
            let conn = u.state.lock().conn(conn_id);
            match conn {
                Some(conn) => {
                    c.send_recovery(user, &conn, pos, None);
                    true
                }
                None => false,
            }
        });
        Ok(recovered.unwrap_or(false))
    }

    async fn leave(&self, ch: &str, name: &str) -> R<Left> {
        let left = self.with_channel(ch, |c| {
            let Member(user) = c.members.shift_take(name)?;
            let offset = c.next_offset();
            let stamp = now_stamp();
            let frame = frames::membership("UNSUBSCRIBE", &c.name, name, &stamp);
            if c.settings.presenceful {
                c.broadcast(&frame, Some(name), None);
            }
            user.left(&c.name, &frame);
            if !c.settings.history_publish_only {
                c.record(Entry::membership("UNSUBSCRIBE", name, &stamp), offset);
            }
            Some(Emptied(c.members.is_empty()))
        });
        Ok(left.flatten())
    }

    async fn publish(&self, ch: &str, p: Publication<'_>) -> R<bool> {
        // The publisher's user, for only_to_sender, looked up before the channel lock (the lock
        // order puts `users` after a shard, and this needs no shard).
        let sender = match p.to {
            Recipients::User(n) => self.users.lock().get(n).cloned(),
            _ => None,
        };
        let found = self.with_channel(ch, |c| {
            let offset = c.next_offset();
            let frame = p.frame.at_offset(offset);
            let skip = if c.settings.reflective {
                None
            } else {
                p.skip_conn
            };
            match (p.to, &sender) {
                (Recipients::Subscribers, _) => c.broadcast(&frame, None, skip),
                (Recipients::User(_), Some(user)) => {
                    user.state.lock().send_channel_or_all(&c.name, &frame, skip)
                }
                (Recipients::User(_), None) | (Recipients::Nobody, _) => {}
            }
            match p.entry {
                Some(entry) => c.record(entry, offset),
                None => c.history.skip(offset),
            }
        });
        Ok(found.is_some())
    }
}
