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
//!   and to the user channels of its users, parses their messages into the events of
//!   [`crate::engine::delivery`] and hands them to this node's local index: one encode per
//!   publication for the whole cluster.
//! - Commands go through one multiplexed connection (pipelined by the client library).
//!
//! Files: this one holds the connections and the cluster-wide leases; `channels` (existence,
//! settings, state, destroy), `membership` (join, leave, recovery, publish), `users` (users
//! across nodes), `subscriptions` (this node's pub/sub subscriptions, catch-ups,
//! resynchronisations), `link` (the connections, and the dispatcher of pub/sub messages), `node`
//! (heartbeat and reaper), `scripts` with `lua/` and `replies` (the Lua and its typed answers),
//! `wire` and `keys` (formats and key names).

mod channels;
mod keys;
mod link;
mod membership;
mod node;
mod relay;
mod replies;
mod scripts;
mod sentinel;
mod subscriptions;
mod users;
mod wire;

use crate::engine::delivery::{Followup, LocalIndex};
use crate::engine::{
    Conn, EngineError, LeaseKind, NodeInfo, Nodes, Reaped, RelayHandler, RelayRequest, Relayed,
};
use async_trait::async_trait;
use link::{Dispatcher, Link};
use parking_lot::Mutex;
use redis::{Cmd, Value as RValue};
use relay::Relays;
use sentinel::Sentinels;
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wire::Keys;

/// How to reach Redis (`--engine redis`).
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://host:port` of the server, or seed nodes of a Redis Cluster.
    pub urls: Vec<String>,
    /// A Redis Cluster (sharded pub/sub, `SSUBSCRIBE`/`SPUBLISH`, Redis ≥ 7).
    pub cluster: bool,
    /// The master's name in Redis Sentinel: `urls` are then the Sentinels, asked where the
    /// master is, and again after a failover (see `sentinel`).
    pub sentinel: Option<String>,
    /// The password the Sentinels ask for (their `requirepass`), if any; the master's is in
    /// the URL.
    pub sentinel_password: Option<String>,
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

fn lease_kind(kind: LeaseKind) -> &'static str {
    match kind {
        LeaseKind::Create => "create",
        LeaseKind::Poll => "poll",
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
    /// Requests relayed to other nodes, waiting for their replies; the handler of ours.
    relays: Arc<Relays>,
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
        let index = Arc::new(LocalIndex::new(node.clone()));
        let (followups, mut followups_rx) = tokio::sync::mpsc::unbounded_channel::<Followup>();
        // Set when the pub/sub connection drops; the heartbeat resynchronises once it is back.
        let pubsub_lost = Arc::new(AtomicBool::new(false));
        let (relays, relays_asked) = Relays::new(relay::MAX_RUNNING);
        let relays = Arc::new(relays);
        let dispatch = Dispatcher {
            index: index.clone(),
            keys: keys.clone(),
            relays: relays.clone(),
            relay_channel: keys.relay(&node).into(),
            followups: followups.clone(),
            pubsub_lost: pubsub_lost.clone(),
        };
        let mut followed = None;
        let (cmd, pubsub) = if config.cluster {
            link::cluster(&config.urls, dispatch).await?
        } else if let Some(name) = &config.sentinel {
            let password = config.sentinel_password.as_deref();
            let sentinels = Sentinels::new(&config.urls, name, password)?;
            let master = sentinels.master().await?;
            let links = link::followed(&master, dispatch.clone()).await?;
            followed = Some((sentinels, master, dispatch));
            links
        } else {
            link::single(config.urls.first().map_or("", String::as_str), dispatch).await?
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
            relays,
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
        relay::run(Arc::downgrade(&inner), relays_asked);
        if let Some((sentinels, master, dispatch)) = followed {
            sentinel::follow(
                Arc::downgrade(&inner),
                sentinels,
                master,
                dispatch,
                shutdown.clone(),
            );
        }
        // This node's relay channel: requests other nodes relay to it, and their replies.
        inner.subscribe(&inner.keys.relay(&inner.node)).await?;
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
            Link::Single(_) | Link::Followed(_) => {
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
            Link::Single(_) | Link::Followed(_) => "PUBLISH",
            Link::Cluster(_) => "SPUBLISH",
        }
    }
}

impl RedisEngine {
    fn k(&self) -> &Keys {
        &self.inner.keys
    }
}

#[async_trait]
impl Nodes for RedisEngine {
    async fn lease(&self, kind: LeaseKind, name: &str, ttl: Duration) -> Result<bool, EngineError> {
        let held: bool = self
            .inner
            .invoke(
                scripts::LEASE
                    .key(self.k().lease(name, lease_kind(kind)))
                    .arg(&*self.inner.node)
                    .arg(ttl.as_millis() as u64),
            )
            .await?;
        Ok(held)
    }

    async fn release(&self, kind: LeaseKind, name: &str) -> Result<(), EngineError> {
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

    fn counts(&self) -> (usize, usize) {
        self.inner.index.counts()
    }

    /// Every node's heartbeat record (`local` is in them).
    async fn nodes(&self, _local: NodeInfo) -> Result<Vec<NodeInfo>, EngineError> {
        node::nodes(&self.inner).await
    }

    /// Whether Redis answers a PING within a second.
    async fn ping(&self) -> Result<(), EngineError> {
        let ping = redis::cmd("PING");
        match tokio::time::timeout(Duration::from_secs(1), self.inner.query::<String>(&ping)).await
        {
            Ok(r) => r.map(drop),
            Err(_) => Err(EngineError::Unavailable(
                "no answer to PING within 1s".into(),
            )),
        }
    }

    fn node_id(&self) -> Option<&str> {
        Some(&self.inner.node)
    }

    /// Relays `req` to node `node` (see `relay`).
    async fn relay(
        &self,
        node: &str,
        req: RelayRequest,
        wait: Duration,
    ) -> Result<Relayed, EngineError> {
        self.inner.relay(node, req, wait).await
    }

    fn serve_relays(&self, handler: RelayHandler) {
        self.inner.relays.serve(handler);
    }

    fn take_reaped(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Reaped>> {
        self.inner.reaped.lock().take()
    }
}
