//! The in-memory engine: one node, everything in this process.
//!
//! Channels live in [`SHARDS`] independently locked maps, so no global lock is taken per message:
//! a publication locks only its channel's shard. Each decision (join, leave, publish, state,
//! destroy) is made under that lock, and its event handed at once, still under it, to this
//! node's delivery index ([`LocalIndex`], the one fan-out every engine uses): the lock is what
//! gives every subscriber the same order. The index's users are the engine's users.
//!
//! Lock order, to stay deadlock-free: a channel shard, then `presence_watch` or an index shard,
//! then the index's users, then one user's state, then an outbox. Never two shards of one kind,
//! never two users' states at once, and no lock is held across an `.await` (nothing here
//! awaits).

mod keys;
mod revoked;
mod users;

use super::delivery::{Event, Kind, LocalIndex, SnapshotView, UserEvent};
use super::history::{self, now_stamp, Entry, History};
use super::options::{state_diff, ChannelSettings, ChannelUpdate, OptionError, Polling};
use super::{
    frames, Channels, Claim, Emptied, EngineError, Expiring, Flags, Join, Joined, LeaseKind, Left,
    Membership, NodeInfo, Nodes, Publication, Reaped, Recipients, RelayHandler, RelayRequest,
    Relayed, Subscribers, User,
};
use crate::engine::Conn;
use crate::protocol::{OutFrame, Position};
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

/// One channel: settings, data, and its members (users' names in join order).
struct Channel {
    name: Arc<str>,
    settings: ChannelSettings,
    history: History,
    state: Map<String, Value>,
    /// Found by name: a storm of 5,000 returning users in one channel looked each one up, and a
    /// list made that quadratic (14 % of the storm's CPU). Kept in join order (`shift_remove`).
    members: IndexSet<Arc<str>>,
    /// Position in the channel's stream of events: each publication, join, leave and state
    /// change takes the next one. History entries keep theirs.
    offset: u64,
    /// Drawn at creation: a channel destroyed and created again is another stream, and a client's
    /// position in the old one cannot be recovered in it.
    epoch: Box<str>,
    /// Users whose presence this channel tracks (§9.3), fixed at creation like the original.
    watched: Vec<String>,
}

impl Channel {
    fn next_offset(&mut self) -> u64 {
        self.offset += 1;
        self.offset
    }

    /// The channel's next event, with its frame, handed to this node's delivery.
    fn emit(&mut self, index: &LocalIndex, kind: Kind, frame: Option<OutFrame>) -> u64 {
        let offset = self.next_offset();
        let ev = Event {
            epoch: (&*self.epoch).into(),
            offset,
            kind,
            frame,
        };
        // One node: nothing the index hands back needs doing (no subscription to keep).
        let _ = index.on_channel_event(&self.name, ev);
        offset
    }

    fn broadcast_state(
        &mut self,
        index: &LocalIndex,
        updates: Map<String, Value>,
        deletes: Vec<String>,
    ) {
        let frame = frames::state_update(&self.name, updates, deletes);
        let kind = Kind::Broadcast {
            skip_user: String::new(),
        };
        self.emit(index, kind, Some(frame));
    }

    /// Records an event of the channel in its history (with its offset), if it keeps history.
    fn record(&mut self, mut entry: Entry, offset: u64) {
        entry.offset = offset;
        history::record(&mut self.history, &self.settings, entry);
    }

    /// The channel as a catch-up shows it, as it is now.
    fn view(&self) -> SnapshotView<'_> {
        SnapshotView {
            epoch: &self.epoch,
            offset: self.offset,
            floor: self.history.floor(),
            settings: &self.settings,
            history: &self.history,
            state: &self.state,
            presence: if self.settings.presenceful {
                self.members.iter().map(|m| &**m).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// `conns` of member `user` get their place in the channel, starting with their own
    /// SUBSCRIBE (history sized for each); `asking`, the connection that gave a position, gets
    /// its recovery instead.
    fn catch_up(
        &self,
        index: &LocalIndex,
        user: &Arc<User>,
        conns: &[Arc<Conn>],
        initial_data: Option<&Value>,
        asking: Option<(&Arc<Conn>, &Position)>,
    ) {
        let (mut added, _) = index.begin_catch_up(&self.name, user, conns);
        if let Some((conn, pos)) = asking {
            let repended = index.request_recovery(&self.name, &user.name, conn, pos);
            if repended == Some(true) && !added.iter().any(|c| Arc::ptr_eq(c, conn)) {
                added.push(conn.clone());
            }
        }
        index.finish_catch_up(&self.name, user, &added, &self.view(), initial_data);
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
    /// This node's delivery, and its users (`index.users`).
    index: LocalIndex,
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
            index: LocalIndex::new(Arc::from("memory")),
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
                    c.broadcast_state(&self.index, updates, Vec::new());
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
        (self.index.users.lock().len(), channels)
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
            let users = self.index.users.lock();
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
                c.broadcast_state(&self.index, updates, deletes);
            }
            Ok(polling_changed)
        }))
    }

    async fn channel_info(&self, ch: &str) -> R<Option<Value>> {
        Ok(self.with_channel(ch, |c| {
            json!({
                "name": &*c.name,
                "options": c.settings.to_json(c.history.to_json(), &c.state),
                "subscribers": c.members.iter().map(|m| &**m).collect::<Vec<_>>(),
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
        Ok(self.with_channel(ch, |c| c.members.iter().cloned().collect()))
    }

    async fn set_state(&self, ch: &str, key: &str, val: Value) -> R<bool> {
        let found = self.with_channel(ch, |c| {
            if c.state.get(key) != Some(&val) {
                c.state.insert(key.to_owned(), val.clone());
                let mut updates = Map::new();
                updates.insert(key.to_owned(), val);
                c.broadcast_state(&self.index, updates, Vec::new());
            }
        });
        Ok(found.is_some())
    }

    async fn delete_state(&self, ch: &str, key: &str) -> R<bool> {
        let found = self.with_channel(ch, |c| {
            if c.state.shift_remove(key).is_some() {
                c.broadcast_state(&self.index, Map::new(), vec![key.to_owned()]);
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
        let mut shard = self.shard(ch).lock();
        let Some(mut c) = shard.remove(ch) else {
            return Ok(false);
        };
        let stamp = now_stamp();
        let kind = Kind::Destroy {
            stamp: stamp.clone(),
        };
        c.emit(&self.index, kind, None);
        // A member none of whose connections receives the channel (none left, or none recorded
        // for it) forgets it too; under the lock, so a channel created again meanwhile keeps
        // its members.
        for name in &c.members {
            if let Some(u) = self.index.user(name) {
                u.state.lock().channels.shift_remove(&*c.name);
            }
        }
        drop(shard);
        self.forget(c);
        Ok(true)
    }
}

#[async_trait]
impl Subscribers for MemoryEngine {
    async fn membership(&self, ch: &str, user: &str, conn: Option<&Arc<str>>) -> R<Membership> {
        let found = self.with_channel(ch, |c| {
            if !c.members.contains(user) {
                return Membership::NotMember(Flags::of(&c.settings));
            }
            if let Some(u) = self.index.user(user) {
                let recorded = {
                    let mut st = u.state.lock();
                    st.record(&c.name, conn);
                    conn.and_then(|id| st.conn(id))
                };
                // A tab recorded for the channel receives it from now on (no own SUBSCRIBE).
                if let Some(recorded) = recorded {
                    self.index.add_slot(&c.name, user, &recorded);
                    self.drop_closed(&u, std::slice::from_ref(&recorded));
                }
            }
            Membership::Member
        });
        Ok(found.unwrap_or(Membership::NoChannel))
    }

    async fn member_flags(&self, ch: &str, user: &str) -> R<Option<Flags>> {
        let flags = self.with_channel(ch, |c| {
            c.members.contains(user).then(|| Flags::of(&c.settings))
        });
        Ok(flags.flatten())
    }

    async fn join(&self, ch: &str, name: &str, join: Join<'_>) -> R<Joined> {
        let mut shard = self.shard(ch).lock();
        let Some(c) = shard.get_mut(ch) else {
            return Ok(Joined::NoChannel);
        };
        let Some(user) = self.index.user(name) else {
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
        if c.members.contains(name) {
            return Ok(Joined::AlreadyMember);
        }
        // All the user's connections, those that get the own SUBSCRIBE (in per-connection mode
        // only the recorded ones; the others still receive the channel should they be recorded
        // later), and the one that asked.
        let (conns, receiving, asking) = {
            let st = user.state.lock();
            let receiving: Vec<Arc<Conn>> = st.channel_conns(&c.name, None).cloned().collect();
            let asking = join.conn.and_then(|id| st.conn(id));
            (st.conns.clone(), receiving, asking)
        };
        c.members.insert(user.name.clone());
        let stamp = now_stamp();
        // The others see the join (on a presence channel).
        let presence = c
            .settings
            .presenceful
            .then(|| frames::membership("SUBSCRIBE", &c.name, name, &stamp));
        let kind = Kind::Join {
            user: name.to_owned(),
        };
        let offset = c.emit(&self.index, kind, presence);
        let asking = asking.as_ref().zip(join.recover);
        c.catch_up(&self.index, &user, &receiving, join.initial_data, asking);
        for other in conns
            .iter()
            .filter(|x| !receiving.iter().any(|r| Arc::ptr_eq(r, x)))
        {
            self.index.add_slot(&c.name, name, other);
        }
        self.drop_closed(&user, &conns);
        if !c.settings.history_publish_only {
            c.record(Entry::membership("SUBSCRIBE", name, &stamp), offset);
        }
        Ok(Joined::Joined)
    }

    async fn recover(&self, ch: &str, user: &str, conn_id: &Arc<str>, pos: &Position) -> R<bool> {
        let recovered = self.with_channel(ch, |c| {
            if !c.members.contains(user) {
                return false;
            }
            let Some(u) = self.index.user(user) else {
                return false;
            };
            let Some(conn) = u.state.lock().conn(conn_id) else {
                return false;
            };
            match self.index.request_recovery(&c.name, user, &conn, pos) {
                Some(_) => {
                    self.index
                        .finish_catch_up(&c.name, &u, &[conn], &c.view(), None);
                    true
                }
                None => false,
            }
        });
        Ok(recovered.unwrap_or(false))
    }

    async fn leave(&self, ch: &str, name: &str) -> R<Left> {
        let left = self.with_channel(ch, |c| {
            if !c.members.shift_remove(name) {
                return None;
            }
            let stamp = now_stamp();
            // To the others on a presence channel; to the user's connections in any case.
            let frame = frames::membership("UNSUBSCRIBE", &c.name, name, &stamp);
            let kind = Kind::Leave {
                user: name.to_owned(),
                presence: c.settings.presenceful,
            };
            let offset = c.emit(&self.index, kind, Some(frame));
            if !c.settings.history_publish_only {
                c.record(Entry::membership("UNSUBSCRIBE", name, &stamp), offset);
            }
            Some(Emptied(c.members.is_empty()))
        });
        Ok(left.flatten())
    }

    async fn publish(&self, ch: &str, p: Publication<'_>) -> R<bool> {
        let found = self.with_channel(ch, |c| {
            let skip = if c.settings.reflective {
                None
            } else {
                p.skip_conn
            };
            // only_to_sender to a publisher that is not a member: through its own events, as
            // every broker does (its connections do not receive the channel).
            let sender = match p.to {
                Recipients::User(n) if !c.members.contains(n) => Some(n),
                _ => None,
            };
            let to = match p.to {
                Recipients::Subscribers => "*".to_owned(),
                Recipients::User(n) if sender.is_none() => format!("u:{n}"),
                Recipients::User(_) | Recipients::Nobody => "-".to_owned(),
            };
            let kind = Kind::Publish {
                skip_conn: skip.unwrap_or("").to_owned(),
                to,
            };
            let sender_frame = sender.map(|_| p.frame.clone());
            let offset = c.emit(&self.index, kind, Some(p.frame));
            if let (Some(sender), Some(frame)) = (sender, sender_frame) {
                let event = UserEvent::Publication {
                    channel: ch.to_owned(),
                    frame: frame.at_offset(offset),
                    skip_conn: skip.map(str::to_owned),
                };
                self.index.on_user_event(sender, event);
            }
            match p.entry {
                Some(entry) => c.record(entry, offset),
                None => c.history.skip(offset),
            }
        });
        Ok(found.is_some())
    }
}
