//! The Redis engine: several hookbox nodes share channels and users through Redis (or Valkey,
//! or a Redis Cluster).
//!
//! - Every decision is one Lua script on the keys of one channel or one user (hash-tagged, so
//!   one slot): create-if-absent, join, leave, publish (offset and history append), state
//!   changes, destroy-if-empty, attach, detach-reporting-the-last-connection, remove-if-idle.
//!   Only the node whose script decided fires the webhook, so each fires once per cluster.
//! - Each channel's events are published by those same scripts, in the order of the changes,
//!   on the channel's pub/sub channel. Each node subscribes (one pub/sub connection per node,
//!   subscriptions reference-counted by local interest) to the channels its connections are in,
//!   and to the user channels of its users, and delivers locally ([`local`]): one encode per
//!   publication for the whole cluster.
//! - Commands go through one multiplexed connection (pipelined by the client library).

mod keys;
mod local;
mod node;
mod scripts;
mod users;
mod wire;

use super::frames;
use super::options::{state_diff, ChannelUpdate, OptionError, Polling};
use super::{Emptied, Flags, Joined, Left, Membership, Publication, Recipients};
use crate::engine::{Conn, EngineError, User};
use crate::protocol::Position;
use local::{Followup, LocalIndex};
use parking_lot::Mutex;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, PushInfo, PushKind, RedisFuture, Value as RValue};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wire::{now_secs, Keys, Snapshot};

/// How to reach Redis (`--engine redis`).
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://host:port` of the server, or seed nodes of a Redis Cluster.
    pub urls: Vec<String>,
    /// A Redis Cluster (sharded pub/sub, `SSUBSCRIBE`/`SPUBLISH`, Redis ≥ 7).
    pub cluster: bool,
    /// Prefix of every key and pub/sub channel: servers sharing one Redis must differ.
    pub prefix: String,
    /// A node that has not refreshed its heartbeat for this long is dead; the others clean up
    /// after it.
    pub node_timeout: Duration,
}

/// Which members a channel snapshot carries.
#[derive(Debug, Clone, Copy)]
enum Members {
    /// All (the channel's info, checking this node's members after lost events).
    All,
    /// Only a presence channel's, whose own SUBSCRIBE shows them.
    ForPresence,
}

/// A connection for commands or for pub/sub: to one Redis, or to a Redis Cluster.
#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, RValue> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<RValue>> {
        match self {
            Link::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

fn lease_kind(kind: super::LeaseKind) -> &'static str {
    match kind {
        super::LeaseKind::Create => "create",
        super::LeaseKind::Poll => "poll",
    }
}

/// A failed Redis command, counted.
fn unavailable(e: redis::RedisError) -> EngineError {
    crate::metrics::engine_error();
    EngineError::Unavailable(e.to_string())
}

pub struct RedisEngine {
    inner: Arc<Inner>,
}

struct Inner {
    cmd: Link,
    pubsub: Link,
    keys: Keys,
    node: Arc<str>,
    index: Arc<LocalIndex>,
    /// The pub/sub channels this node is subscribed to. Changes go one at a time (the async
    /// lock), so that a subscribe and an unsubscribe of one channel cannot cross.
    subscribed: tokio::sync::Mutex<HashSet<String>>,
    history_max_bytes: usize,
    /// The pub/sub connection dropped since the last resynchronisation.
    pubsub_lost: Arc<AtomicBool>,
    /// Where this node listens, for its heartbeat record.
    address: String,
    node_timeout: Duration,
    /// Connections of this node, for its heartbeat record (see `node`).
    conns: Mutex<HashSet<Arc<str>>>,
    /// Work for the follow-up task (what must wait on Redis).
    followups: tokio::sync::mpsc::UnboundedSender<Followup>,
    /// What the reaper found of dead nodes, for the hub (taken once by the app).
    reaped: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<super::Reaped>>>,
    reaped_tx: tokio::sync::mpsc::UnboundedSender<super::Reaped>,
}

impl RedisEngine {
    /// Connects to Redis and starts this node's dispatcher and heartbeat.
    /// `address` is where this node listens (shown to the other nodes' admin consoles).
    pub async fn connect(
        config: &RedisConfig,
        address: &str,
        history_max_bytes: usize,
        shutdown: CancellationToken,
    ) -> Result<RedisEngine, EngineError> {
        let keys = Keys::new(&config.prefix);
        let node: Arc<str> = super::random_id().into();
        let index = Arc::new(LocalIndex::new(keys.clone(), node.clone()));
        let (followups, mut followups_rx) = tokio::sync::mpsc::unbounded_channel::<Followup>();
        // Set when the pub/sub connection drops; the heartbeat resynchronises once it is back.
        let pubsub_lost = Arc::new(AtomicBool::new(false));
        // The dispatcher: runs in the pub/sub connection's reader, one message at a time.
        let dispatch = {
            let index = index.clone();
            let followups = followups.clone();
            let pubsub_lost = pubsub_lost.clone();
            move |info: PushInfo| -> Result<(), std::convert::Infallible> {
                if matches!(info.kind, PushKind::Message | PushKind::SMessage) {
                    if let [chan, msg, ..] = info.data.as_slice() {
                        if let (RValue::BulkString(chan), RValue::BulkString(msg)) = (chan, msg) {
                            let chan = String::from_utf8_lossy(chan);
                            if let Some(f) = index.on_message(&chan, msg) {
                                let _ = followups.send(f);
                            }
                        }
                    }
                } else if info.kind == PushKind::Disconnection {
                    tracing::warn!("Redis pub/sub connection lost; reconnecting");
                    crate::metrics::redis_reconnect();
                    pubsub_lost.store(true, Ordering::Relaxed);
                }
                Ok(())
            }
        };
        let (cmd, pubsub) = if config.cluster {
            let client = redis::cluster::ClusterClientBuilder::new(config.urls.clone())
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(dispatch)
                .build()
                .map_err(unavailable)?;
            let pubsub = client.get_async_connection().await.map_err(unavailable)?;
            let cmd_client = redis::cluster::ClusterClientBuilder::new(config.urls.clone())
                .use_protocol(redis::ProtocolVersion::RESP3)
                .build()
                .map_err(unavailable)?;
            let cmd = cmd_client
                .get_async_connection()
                .await
                .map_err(unavailable)?;
            (Link::Cluster(cmd), Link::Cluster(pubsub))
        } else {
            let url = config.urls.first().cloned().unwrap_or_default();
            let url = if url.contains("protocol=") {
                url
            } else if url.contains('?') {
                format!("{url}&protocol=resp3")
            } else {
                format!("{url}?protocol=resp3")
            };
            let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
            let retry = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(5)))
                .set_max_delay(Duration::from_secs(2));
            let cmd = ConnectionManager::new_with_config(client.clone(), retry.clone())
                .await
                .map_err(unavailable)?;
            let pubsub = ConnectionManager::new_with_config(
                client,
                retry
                    .set_push_sender(dispatch)
                    .set_automatic_resubscription(),
            )
            .await
            .map_err(unavailable)?;
            (Link::Single(cmd), Link::Single(pubsub))
        };
        let (reaped_tx, reaped_rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            cmd,
            pubsub,
            keys,
            node,
            index,
            subscribed: tokio::sync::Mutex::new(HashSet::new()),
            history_max_bytes,
            pubsub_lost,
            address: address.to_owned(),
            node_timeout: config.node_timeout,
            conns: Mutex::new(HashSet::new()),
            followups,
            reaped: Mutex::new(Some(reaped_rx)),
            reaped_tx,
        });
        // What the dispatcher hands over: catch-ups (they read Redis) and unsubscribes.
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(f) = followups_rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                match f {
                    Followup::CatchUp { channel, user } => {
                        tokio::spawn(async move {
                            let conns: Vec<Arc<Conn>> = user
                                .state
                                .lock()
                                .channel_conns(&channel, None)
                                .cloned()
                                .collect();
                            let _ = inner.catch_up(&channel, &user, &conns, None).await;
                        });
                    }
                    Followup::Unsubscribe(channel) => {
                        let events = inner.keys.channel(&channel).events;
                        let index = inner.index.clone();
                        inner
                            .unsubscribe(&events, move || !index.has_channel(&channel))
                            .await;
                    }
                    Followup::Lost(channel) => {
                        tokio::spawn(async move { inner.resync(&channel).await });
                    }
                }
            }
        });
        node::start(inner.clone(), config.node_timeout, shutdown).await?;
        // Debug: the first line of output must be the startup line.
        tracing::debug!(
            "engine: redis {} (node {})",
            config.urls.join(","),
            inner.node
        );
        Ok(RedisEngine { inner })
    }
}

impl Inner {
    fn followups(&self, f: Followup) -> bool {
        self.followups.send(f).is_ok()
    }

    fn node_conns_key(&self) -> String {
        self.keys.node_conns(&self.node)
    }

    fn conn(&self) -> Link {
        self.cmd.clone()
    }

    /// Runs a command (failures are counted, see `unavailable`).
    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, EngineError> {
        cmd.query_async(&mut self.conn()).await.map_err(unavailable)
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, EngineError> {
        inv.invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    /// Runs commands whose keys may be in different slots: one pipeline on a single Redis,
    /// one after the other on a Redis Cluster (which refuses cross-slot pipelines).
    async fn run_all(&self, cmds: Vec<Cmd>) -> Result<(), EngineError> {
        match self.cmd {
            Link::Single(_) => {
                let mut p = redis::pipe();
                for c in &cmds {
                    p.add_command(c.clone()).ignore();
                }
                let _: () = p.query_async(&mut self.conn()).await.map_err(unavailable)?;
            }
            Link::Cluster(_) => {
                for c in &cmds {
                    let _: RValue = self.query(c).await?;
                }
            }
        }
        Ok(())
    }

    fn pub_cmd(&self) -> &'static str {
        match self.cmd {
            Link::Single(_) => "PUBLISH",
            Link::Cluster(_) => "SPUBLISH",
        }
    }

    /// Subscribes this node's pub/sub connection to `chan` unless it is already.
    async fn subscribe(&self, chan: &str) -> Result<(), EngineError> {
        let mut subscribed = self.subscribed.lock().await;
        if subscribed.contains(chan) {
            return Ok(());
        }
        let mut link = self.pubsub.clone();
        let r = match &mut link {
            Link::Single(c) => c.subscribe(chan).await,
            Link::Cluster(c) => c.ssubscribe(chan).await,
        };
        r.map_err(unavailable)?;
        subscribed.insert(chan.to_owned());
        Ok(())
    }

    /// Unsubscribes from `chan` if `unused` still holds once it is this call's turn.
    async fn unsubscribe(&self, chan: &str, unused: impl FnOnce() -> bool) {
        let mut subscribed = self.subscribed.lock().await;
        if !subscribed.contains(chan) || !unused() {
            return;
        }
        let mut link = self.pubsub.clone();
        let r = match &mut link {
            Link::Single(c) => c.unsubscribe(chan).await,
            Link::Cluster(c) => c.sunsubscribe(chan).await,
        };
        match r {
            Ok(()) => {
                subscribed.remove(chan);
            }
            Err(e) => {
                crate::metrics::engine_error();
                tracing::warn!("unsubscribing from {chan} failed: {e}");
            }
        }
    }

    /// The snapshot of a channel, `None` if it does not exist. Its members are read only when
    /// `members` asks for them or the channel has presence (a catch-up shows them then): a
    /// storm of returns to one channel of thousands would read them all each time.
    async fn snapshot(
        &self,
        channel: &str,
        members: Members,
    ) -> Result<Option<Snapshot>, EngineError> {
        let k = self.keys.channel(channel);
        let items: Vec<RValue> = self
            .invoke(
                scripts::SNAPSHOT
                    .key(&k.meta)
                    .key(&k.history)
                    .key(&k.members)
                    .key(&k.state)
                    .arg(match members {
                        Members::All => "1",
                        Members::ForPresence => "0",
                    }),
            )
            .await?;
        Ok(wire::parse_snapshot(&items, self.history_max_bytes))
    }

    /// Brings `conns` of `user` into `channel`: pending slots, the subscription, a snapshot
    /// (`snap`, or one read now), then their own SUBSCRIBE and what arrived meanwhile.
    async fn catch_up(
        &self,
        channel: &str,
        user: &Arc<User>,
        conns: &[Arc<Conn>],
        initial_data: Option<&Value>,
    ) -> Result<(), EngineError> {
        let (added, _) = self.index.begin_catch_up(channel, user, conns);
        if added.is_empty() {
            return Ok(());
        }
        let events = self.keys.channel(channel).events;
        let result = async {
            self.subscribe(&events).await?;
            self.snapshot(channel, Members::ForPresence).await
        }
        .await;
        match result {
            Ok(Some(snap)) => {
                self.index
                    .finish_catch_up(channel, user, &added, &snap, initial_data);
                Ok(())
            }
            Ok(None) => {
                self.abandon(channel, &user.name, &added).await;
                Ok(())
            }
            Err(e) => {
                self.abandon(channel, &user.name, &added).await;
                Err(e)
            }
        }
    }

    /// Brings this node's view of `channel` in line with Redis after some of its events were
    /// lost: a snapshot, then (once the events up to it have had a moment to arrive) the members
    /// checked against it; see [`LocalIndex::reconcile`].
    async fn resync(&self, channel: &str) {
        let snap = match self.snapshot(channel, Members::All).await {
            Ok(snap) => snap,
            Err(e) => {
                tracing::warn!("resynchronising channel {channel} failed: {e}");
                return;
            }
        };
        if let Some(snap) = &snap {
            let same_epoch = self
                .index
                .position(channel)
                .is_some_and(|(epoch, _)| epoch.as_deref() == Some(snap.epoch.as_str()));
            if same_epoch {
                self.index
                    .delivered(channel, snap.offset, Duration::from_secs(1))
                    .await;
            }
        }
        if self.index.reconcile(channel, snap.as_ref()) {
            let events = self.keys.channel(channel).events;
            let index = self.index.clone();
            let channel = channel.to_owned();
            self.unsubscribe(&events, move || !index.has_channel(&channel))
                .await;
        }
    }

    /// After the pub/sub connection was lost and is back: every channel this node delivers is
    /// resynchronised, since events published meanwhile never came.
    async fn resync_all(&self) {
        for channel in self.index.channels() {
            self.resync(&channel).await;
        }
    }

    async fn abandon(&self, channel: &str, user: &str, conns: &[Arc<Conn>]) {
        if self.index.abandon_catch_up(channel, user, conns) {
            let events = self.keys.channel(channel).events;
            let index = self.index.clone();
            let channel = channel.to_owned();
            self.unsubscribe(&events, move || !index.has_channel(&channel))
                .await;
        }
    }
}

/// The tail of CREATE's and UPDATE's arguments: the state's key count and pairs, then the
/// preset history entries.
fn state_and_history_args(
    inv: &mut redis::ScriptInvocation<'_>,
    state: &Map<String, Value>,
    history: Option<&[Value]>,
) {
    inv.arg(state.len());
    for (key, v) in state {
        inv.arg(key.as_str()).arg(v.to_string());
    }
    for e in history.into_iter().flatten() {
        inv.arg(wire::preset_entry(e));
    }
}

impl RedisEngine {
    fn k(&self) -> &Keys {
        &self.inner.keys
    }

    pub async fn lease(
        &self,
        kind: super::LeaseKind,
        name: &str,
        ttl: Duration,
    ) -> Result<bool, EngineError> {
        let held: i64 = self
            .inner
            .invoke(
                scripts::LEASE
                    .key(self.k().lease(name, lease_kind(kind)))
                    .arg(&*self.inner.node)
                    .arg(ttl.as_millis() as u64),
            )
            .await?;
        Ok(held == 1)
    }

    pub async fn release(&self, kind: super::LeaseKind, name: &str) -> Result<(), EngineError> {
        let _: i64 = self
            .inner
            .invoke(
                scripts::RELEASE
                    .key(self.k().lease(name, lease_kind(kind)))
                    .arg(&*self.inner.node),
            )
            .await?;
        Ok(())
    }

    pub fn counts(&self) -> (usize, usize) {
        self.inner.index.counts()
    }

    pub async fn nodes(&self) -> Result<Vec<super::NodeInfo>, EngineError> {
        node::nodes(&self.inner).await
    }

    /// Whether Redis answers a PING within a second.
    pub async fn ping(&self) -> Result<(), EngineError> {
        let ping = redis::cmd("PING");
        match tokio::time::timeout(Duration::from_secs(1), self.inner.query::<String>(&ping)).await
        {
            Ok(r) => r.map(drop),
            Err(_) => Err(EngineError::Unavailable(
                "no answer to PING within 1s".into(),
            )),
        }
    }

    pub fn take_reaped(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<super::Reaped>> {
        self.inner.reaped.lock().take()
    }

    /// Channels whose settings poll, for adopting a dead node's pollers.
    pub async fn polling_channels(&self) -> Result<Vec<String>, EngineError> {
        let mut out = Vec::new();
        for name in self.channel_names().await? {
            let Some(name) = name.as_str().map(str::to_owned) else {
                continue;
            };
            if self.polling(&name).await?.is_some_and(|p| p.is_active()) {
                out.push(name);
            }
        }
        Ok(out)
    }

    pub async fn channel_exists(&self, ch: &str) -> Result<bool, EngineError> {
        self.inner
            .query(redis::cmd("EXISTS").arg(self.k().channel(ch).meta))
            .await
    }

    async fn settings(&self, ch: &str) -> Result<Option<super::ChannelSettings>, EngineError> {
        let s: Option<String> = self
            .inner
            .query(redis::cmd("HGET").arg(self.k().channel(ch).meta).arg("s"))
            .await?;
        Ok(s.map(|s| wire::parse_settings(&s)))
    }

    pub async fn flags(&self, ch: &str) -> Result<Option<Flags>, EngineError> {
        Ok(self.settings(ch).await?.map(|s| Flags::of(&s)))
    }

    pub async fn polling(&self, ch: &str) -> Result<Option<Polling>, EngineError> {
        Ok(self.settings(ch).await?.map(|s| s.polling))
    }

    pub async fn create_channel(
        &self,
        name: &str,
        update: ChannelUpdate,
    ) -> Result<bool, EngineError> {
        let k = self.k().channel(name);
        let settings = update.settings;
        let mut state = update.state.unwrap_or_default();
        // Server presence (§9.3): the watched users' flags start as they are now.
        let watched = if settings.server_presenceful {
            settings.server_user_presence.clone()
        } else {
            Vec::new()
        };
        for u in &watched {
            let online = self.user_exists(u).await?;
            state.insert(u.clone(), Value::Bool(online));
        }
        let mut inv = scripts::CREATE.key(&k.meta);
        inv.key(&k.history).key(&k.state);
        for a in wire::settings_args(&settings) {
            inv.arg(a);
        }
        inv.arg(super::random_id())
            .arg(self.inner.history_max_bytes)
            .arg(now_secs());
        state_and_history_args(&mut inv, &state, update.history.as_deref());
        let created: i64 = self.inner.invoke(&inv).await?;
        if created == 1 {
            let mut cmds = vec![redis::Cmd::sadd(self.k().channel_names(), name)];
            for u in &watched {
                cmds.push(redis::Cmd::sadd(self.k().user(u).watchers, name));
            }
            self.inner.run_all(cmds).await?;
            tracing::debug!("created channel {name}");
        }
        Ok(created == 1)
    }

    pub async fn update_channel(
        &self,
        name: &str,
        opts: &Map<String, Value>,
    ) -> Result<Option<Result<bool, OptionError>>, EngineError> {
        let Some(snap) = self.inner.snapshot(name, Members::ForPresence).await? else {
            return Ok(None);
        };
        let update = match snap.settings.update(opts) {
            Ok(u) => u,
            Err(e) => return Ok(Some(Err(e))),
        };
        let frame = match &update.state {
            Some(new) => {
                let (updates, deletes) = state_diff(&snap.state, new);
                if updates.is_empty() && deletes.is_empty() {
                    Vec::new()
                } else {
                    frames::state_update(name, updates, deletes).tail().to_vec()
                }
            }
            None => Vec::new(),
        };
        let k = self.k().channel(name);
        let mut inv = scripts::UPDATE.key(&k.meta);
        inv.key(&k.history).key(&k.state);
        for a in wire::settings_args(&update.settings) {
            inv.arg(a);
        }
        let flag = |b: bool| if b { "1" } else { "0" };
        let state = update.state.clone().unwrap_or_default();
        inv.arg("")
            .arg(flag(update.trim_history))
            .arg(flag(update.history.is_some()))
            .arg(flag(update.state.is_some()))
            .arg(&k.events)
            .arg(self.inner.pub_cmd())
            .arg(frame)
            .arg(now_secs());
        state_and_history_args(&mut inv, &state, update.history.as_deref());
        let done: i64 = self.inner.invoke(&inv).await?;
        Ok((done == 1).then_some(Ok(update.polling_changed)))
    }

    pub async fn channel_info(&self, ch: &str) -> Result<Option<Value>, EngineError> {
        Ok(self.inner.snapshot(ch, Members::All).await?.map(|s| {
            json!({
                "name": ch,
                "options": s.settings.to_json(s.history.to_json(), &s.state),
                "subscribers": s.members,
            })
        }))
    }

    pub async fn channel_names(&self) -> Result<Vec<Value>, EngineError> {
        let names: Vec<String> = self
            .inner
            .query(redis::cmd("SMEMBERS").arg(self.k().channel_names()))
            .await?;
        Ok(names.into_iter().map(Value::from).collect())
    }

    pub async fn members(&self, ch: &str) -> Result<Option<Vec<Arc<str>>>, EngineError> {
        if !self.channel_exists(ch).await? {
            return Ok(None);
        }
        let m: Vec<String> = self
            .inner
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.k().channel(ch).members)
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        Ok(Some(m.into_iter().map(Arc::from).collect()))
    }

    async fn state_change(
        &self,
        ch: &str,
        key: &str,
        val: Option<Value>,
    ) -> Result<bool, EngineError> {
        let k = self.k().channel(ch);
        let frame = match &val {
            Some(v) => {
                let mut updates = Map::new();
                updates.insert(key.to_owned(), v.clone());
                frames::state_update(ch, updates, Vec::new())
            }
            None => frames::state_update(ch, Map::new(), vec![key.to_owned()]),
        };
        let r: i64 = self
            .inner
            .invoke(
                scripts::STATE
                    .key(&k.meta)
                    .key(&k.state)
                    .arg(key)
                    .arg(val.as_ref().map(Value::to_string).unwrap_or_default())
                    .arg(if val.is_some() { "1" } else { "0" })
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(frame.tail()),
            )
            .await?;
        Ok(r >= 0)
    }

    pub async fn set_state(&self, ch: &str, key: &str, val: Value) -> Result<bool, EngineError> {
        self.state_change(ch, key, Some(val)).await
    }

    pub async fn delete_state(&self, ch: &str, key: &str) -> Result<bool, EngineError> {
        self.state_change(ch, key, None).await
    }

    /// Runs `DESTROY`; the members it had if removed.
    async fn destroy(
        &self,
        ch: &str,
        empty_only: bool,
    ) -> Result<Option<Vec<String>>, EngineError> {
        let k = self.k().channel(ch);
        let r: RValue = self
            .inner
            .invoke(
                scripts::DESTROY
                    .key(&k.meta)
                    .key(&k.history)
                    .key(&k.members)
                    .key(&k.state)
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(if empty_only { "1" } else { "0" })
                    .arg(super::now_stamp()),
            )
            .await?;
        let members: Vec<String> = match r {
            RValue::Int(_) => return Ok(None),
            other => redis::from_redis_value(other)
                .map_err(|e| EngineError::Unavailable(e.to_string()))?,
        };
        let mut cmds = vec![redis::Cmd::srem(self.k().channel_names(), ch)];
        for m in &members {
            cmds.push(redis::Cmd::zrem(self.k().user(m).channels, ch));
        }
        self.inner.run_all(cmds).await?;
        tracing::debug!("destroyed channel {ch}");
        Ok(Some(members))
    }

    pub async fn destroy_if_empty(&self, ch: &str) -> Result<bool, EngineError> {
        Ok(self.destroy(ch, true).await?.is_some())
    }

    pub async fn destroy_channel(&self, ch: &str) -> Result<bool, EngineError> {
        Ok(self.destroy(ch, false).await?.is_some())
    }

    async fn record(
        &self,
        ch: &str,
        user: &str,
        conn: Option<&Arc<str>>,
    ) -> Result<(), EngineError> {
        if let Some(local) = self.inner.index.user(user) {
            let found = {
                let mut st = local.state.lock();
                st.record(&Arc::from(ch), conn);
                conn.and_then(|id| st.conn(id))
            };
            if let Some(c) = found {
                self.inner.index.add_slot(ch, user, &c);
            }
        }
        if let Some(conn) = conn {
            let _: i64 = self
                .inner
                .invoke(
                    scripts::RECORD
                        .key(self.k().user(user).recorded)
                        .arg(ch)
                        .arg(&**conn),
                )
                .await?;
        }
        Ok(())
    }

    pub async fn membership(
        &self,
        ch: &str,
        user: &str,
        conn: Option<&Arc<str>>,
    ) -> Result<Membership, EngineError> {
        let k = self.k().channel(ch);
        let (score, settings): (Option<f64>, Option<String>) = redis::pipe()
            .zscore(&k.members, user)
            .hget(&k.meta, "s")
            .query_async(&mut self.inner.conn())
            .await
            .map_err(unavailable)?;
        let Some(settings) = settings else {
            return Ok(Membership::NoChannel);
        };
        if score.is_some() {
            self.record(ch, user, conn).await?;
            return Ok(Membership::Member);
        }
        Ok(Membership::NotMember(Flags::of(&wire::parse_settings(
            &settings,
        ))))
    }

    pub async fn recover(
        &self,
        ch: &str,
        user: &str,
        conn: &Arc<str>,
        pos: &Position,
    ) -> Result<bool, EngineError> {
        let Some(u) = self.inner.index.user(user) else {
            return Ok(false);
        };
        let Some(c) = u.state.lock().conn(conn) else {
            return Ok(false);
        };
        match self.inner.index.request_recovery(ch, user, &c, pos) {
            None => Ok(false),
            Some(false) => Ok(true), // the catch-up under way answers it
            Some(true) => match self.inner.snapshot(ch, Members::ForPresence).await {
                Ok(Some(snap)) => {
                    self.inner.index.finish_catch_up(ch, &u, &[c], &snap, None);
                    Ok(true)
                }
                Ok(None) => {
                    self.inner.index.cancel_recovery(ch, user, &c);
                    Ok(false)
                }
                Err(e) => {
                    self.inner.index.cancel_recovery(ch, user, &c);
                    Err(e)
                }
            },
        }
    }

    pub async fn member_flags(&self, ch: &str, user: &str) -> Result<Option<Flags>, EngineError> {
        Ok(match self.membership_read(ch, user).await? {
            (true, Some(s)) => Some(Flags::of(&s)),
            _ => None,
        })
    }

    async fn membership_read(
        &self,
        ch: &str,
        user: &str,
    ) -> Result<(bool, Option<super::ChannelSettings>), EngineError> {
        let k = self.k().channel(ch);
        let (score, settings): (Option<f64>, Option<String>) = redis::pipe()
            .zscore(&k.members, user)
            .hget(&k.meta, "s")
            .query_async(&mut self.inner.conn())
            .await
            .map_err(unavailable)?;
        Ok((score.is_some(), settings.map(|s| wire::parse_settings(&s))))
    }

    pub async fn join(
        &self,
        ch: &str,
        user: &str,
        conn: Option<&Arc<str>>,
        initial_data: Option<&Value>,
        recover: Option<&Position>,
    ) -> Result<Joined, EngineError> {
        if !self.has_connections(user).await? {
            return Ok(Joined::UserGone);
        }
        let k = self.k().channel(ch);
        // This node's connections of the user wait for their own SUBSCRIBE from here on.
        let local = self.inner.index.user(user);
        let mut pending = Vec::new();
        if let Some(u) = &local {
            // Recorded first: in per-connection mode only the recorded connections get the
            // own SUBSCRIBE.
            let conns: Vec<Arc<Conn>> = {
                let mut st = u.state.lock();
                st.record(&Arc::from(ch), conn);
                st.channel_conns(ch, None).cloned().collect()
            };
            pending = self.inner.index.begin_catch_up(ch, u, &conns).0;
            // The asking connection's own SUBSCRIBE carries its recovery.
            let asking = conn.and_then(|id| conns.iter().find(|c| c.id == *id));
            if let (Some(c), Some(pos)) = (asking, recover) {
                let repended = self.inner.index.request_recovery(ch, user, c, pos);
                if repended == Some(true) && !pending.iter().any(|p| Arc::ptr_eq(p, c)) {
                    pending.push(c.clone());
                }
            }
            if let Err(e) = self.inner.subscribe(&k.events).await {
                self.inner.abandon(ch, user, &pending).await;
                return Err(e);
            }
        }
        let stamp = super::now_stamp();
        let presence = frames::membership("SUBSCRIBE", ch, user, &stamp);
        let entry = crate::protocol::to_ascii_string(
            &json!(["SUBSCRIBE", {"user": user, "datetime": stamp}]),
        );
        let reply: Result<Vec<RValue>, EngineError> = self
            .inner
            .invoke(
                scripts::JOIN
                    .key(&k.meta)
                    .key(&k.history)
                    .key(&k.members)
                    .key(&k.state)
                    .arg(user)
                    .arg(&*self.inner.node)
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(presence.tail())
                    .arg(entry)
                    .arg(now_secs())
                    .arg(now_secs()),
            )
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.inner.abandon(ch, user, &pending).await;
                return Err(e);
            }
        };
        let status = reply
            .first()
            .map(|v| matches!(v, RValue::Int(n) if *n == 2));
        match (
            status,
            wire::parse_snapshot(&reply, self.inner.history_max_bytes),
        ) {
            (Some(true), Some(snap)) => {
                let uk = self.k().user(user);
                let still_there: Result<i64, EngineError> = self
                    .inner
                    .invoke(
                        scripts::USER_CHANNEL
                            .key(&uk.meta)
                            .key(&uk.channels)
                            .key(&uk.conns)
                            .arg(ch),
                    )
                    .await;
                if !matches!(still_there, Ok(1)) {
                    // The user's last connection closed meanwhile (its cascade cannot see this
                    // channel), or the answer is unknown: take the membership back.
                    self.inner.abandon(ch, user, &pending).await;
                    self.leave(ch, user).await?;
                    still_there?;
                    return Ok(Joined::UserGone);
                }
                if let Some(u) = &local {
                    self.inner
                        .index
                        .finish_catch_up(ch, u, &pending, &snap, initial_data);
                }
                self.record(ch, user, conn).await?;
                let _: RValue = self
                    .inner
                    .query(
                        redis::cmd(self.inner.pub_cmd())
                            .arg(&uk.events)
                            .arg(format!("{}\n", json!(["J", ch, &*self.inner.node]))),
                    )
                    .await?;
                Ok(Joined::Joined)
            }
            _ => {
                self.inner.abandon(ch, user, &pending).await;
                let already = matches!(reply.first(), Some(RValue::Int(1)));
                if already {
                    self.record(ch, user, conn).await?;
                    Ok(Joined::AlreadyMember)
                } else {
                    Ok(Joined::NoChannel)
                }
            }
        }
    }

    pub async fn leave(&self, ch: &str, user: &str) -> Result<Left, EngineError> {
        let k = self.k().channel(ch);
        let stamp = super::now_stamp();
        let frame = frames::membership("UNSUBSCRIBE", ch, user, &stamp);
        let entry = crate::protocol::to_ascii_string(
            &json!(["UNSUBSCRIBE", {"user": user, "datetime": stamp}]),
        );
        let left: i64 = self
            .inner
            .invoke(
                scripts::LEAVE
                    .key(&k.meta)
                    .key(&k.history)
                    .key(&k.members)
                    .arg(user)
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(frame.tail())
                    .arg(entry)
                    .arg(now_secs())
                    .arg(now_secs()),
            )
            .await?;
        if left < 0 {
            return Ok(None);
        }
        let uk = self.k().user(user);
        let _: () = redis::pipe()
            .zrem(&uk.channels, ch)
            .ignore()
            .hdel(&uk.recorded, ch)
            .ignore()
            .query_async(&mut self.inner.conn())
            .await
            .map_err(unavailable)?;
        Ok(Some(Emptied(left == 0)))
    }

    pub async fn publish(&self, ch: &str, p: Publication<'_>) -> Result<bool, EngineError> {
        let k = self.k().channel(ch);
        let to = match p.to {
            Recipients::Subscribers => "*".to_owned(),
            Recipients::User(u) => format!("u:{u}"),
            Recipients::Nobody => "-".to_owned(),
        };
        let entry = p.entry.as_ref().map(|e| e.json()).unwrap_or_default();
        let off: i64 = self
            .inner
            .invoke(
                scripts::PUBLISH
                    .key(&k.meta)
                    .key(&k.history)
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(p.skip_conn.unwrap_or(""))
                    .arg(to)
                    .arg(p.frame.tail())
                    .arg(entry)
                    .arg(now_secs())
                    .arg(now_secs()),
            )
            .await?;
        if off > 0 {
            // Read your own writes: the answer comes once this node's subscribers have it.
            self.inner
                .index
                .delivered(ch, off as u64, Duration::from_secs(1))
                .await;
        }
        Ok(off >= 0)
    }
}
