//! The engine's two connections, for commands and for pub/sub: to one Redis, to the master
//! Redis Sentinel names (replaced after a failover), or to a Redis Cluster; and the dispatcher
//! that hands the pub/sub connection's messages to this node's local index.

use super::relay::Relays;
use super::unavailable;
use super::wire::{self, Keys};
use crate::engine::delivery::{Followup, LocalIndex};
use crate::engine::EngineError;
use parking_lot::RwLock;
use redis::aio::{
    AsyncPushSender, ConnectionLike, ConnectionManager, ConnectionManagerConfig, SendError,
};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, PushInfo, PushKind, RedisFuture, Value as RValue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A connection for commands or for pub/sub.
#[derive(Clone)]
pub(super) enum Link {
    Single(ConnectionManager),
    /// To the master Redis Sentinel names; replaced when it names another (`sentinel`).
    Followed(Arc<Followed>),
    Cluster(ClusterConnection),
}

/// The connection to the current master. A plain lock: it is held only to clone the handle out
/// (a few reference counts) or to put a new one in, never across an await.
pub(super) struct Followed(RwLock<ConnectionManager>);

impl Followed {
    /// A handle on the current master's connection.
    pub fn current(&self) -> ConnectionManager {
        self.0.read().clone()
    }

    /// From now on, commands go to `to`; those already sent finish on the old connection.
    pub fn replace(&self, to: ConnectionManager) {
        *self.0.write() = to;
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, RValue> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Followed(f) => {
                let mut c = f.current();
                Box::pin(async move { c.req_packed_command(cmd).await })
            }
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
            Link::Followed(f) => {
                let mut c = f.current();
                Box::pin(async move { c.req_packed_commands(pipeline, offset, count).await })
            }
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Followed(f) => f.current().get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// Hands the pub/sub connection's messages to the local index, in the connection's reader, one
/// message at a time; notes a dropped connection for the heartbeat's resynchronisation.
#[derive(Clone)]
pub(super) struct Dispatcher {
    pub index: Arc<LocalIndex>,
    pub keys: Keys,
    pub relays: Arc<Relays>,
    /// This node's relay channel.
    pub relay_channel: Arc<str>,
    pub followups: tokio::sync::mpsc::UnboundedSender<Followup>,
    /// Set when the pub/sub connection drops; the heartbeat resynchronises once it is back.
    pub pubsub_lost: Arc<AtomicBool>,
}

impl Dispatcher {
    /// A message on a channel's or a user's pub/sub channel, parsed and handed to the index.
    fn on_event(&self, chan: &str, msg: &[u8]) -> Option<Followup> {
        let name = Keys::untag(chan)?;
        if self.keys.is_channel_events(chan) {
            self.index
                .on_channel_event(&name, wire::parse_event(&name, msg)?)
        } else {
            self.index
                .on_user_event(&name, wire::parse_user_event(msg)?)
        }
    }
}

impl AsyncPushSender for Dispatcher {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        if matches!(info.kind, PushKind::Message | PushKind::SMessage) {
            if let [RValue::BulkString(chan), RValue::BulkString(msg), ..] = info.data.as_slice() {
                let chan = String::from_utf8_lossy(chan);
                if *chan == *self.relay_channel {
                    self.relays.on_message(msg);
                } else if let Some(f) = self.on_event(&chan, msg) {
                    let _ = self.followups.send(f);
                }
            }
        } else if info.kind == PushKind::Disconnection {
            tracing::warn!("Redis pub/sub connection lost; reconnecting");
            crate::metrics::redis_reconnect();
            self.pubsub_lost.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A reconnecting connection to one Redis, in RESP3 (pub/sub messages arrive as pushes on it);
/// with `push`, the pub/sub connection, resubscribed after each reconnection.
pub(super) async fn manager(
    url: &str,
    push: Option<Dispatcher>,
) -> Result<ConnectionManager, EngineError> {
    let url = if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    };
    let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
    let mut config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_max_delay(Duration::from_secs(2));
    if let Some(push) = push {
        config = config.set_push_sender(push).set_automatic_resubscription();
    }
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(unavailable)
}

/// The command and pub/sub connections to one Redis.
pub(super) async fn single(url: &str, push: Dispatcher) -> Result<(Link, Link), EngineError> {
    Ok((
        Link::Single(manager(url, None).await?),
        Link::Single(manager(url, Some(push)).await?),
    ))
}

/// The command and pub/sub connections to the master at `url`, to be followed (`sentinel`).
pub(super) async fn followed(url: &str, push: Dispatcher) -> Result<(Link, Link), EngineError> {
    let follow = |m| Link::Followed(Arc::new(Followed(RwLock::new(m))));
    Ok((
        follow(manager(url, None).await?),
        follow(manager(url, Some(push)).await?),
    ))
}

/// The command and pub/sub connections to a Redis Cluster, from its seed nodes.
pub(super) async fn cluster(
    urls: &[String],
    push: Dispatcher,
) -> Result<(Link, Link), EngineError> {
    let client = redis::cluster::ClusterClientBuilder::new(urls.to_vec())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(push)
        .build()
        .map_err(unavailable)?;
    let pubsub = client.get_async_connection().await.map_err(unavailable)?;
    let cmd_client = redis::cluster::ClusterClientBuilder::new(urls.to_vec())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .build()
        .map_err(unavailable)?;
    let cmd = cmd_client
        .get_async_connection()
        .await
        .map_err(unavailable)?;
    Ok((Link::Cluster(cmd), Link::Cluster(pubsub)))
}
