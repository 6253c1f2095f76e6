//! This node in the cluster: its heartbeat in Redis, and the reaper that cleans up after nodes
//! that stopped beating (killed, or cut off from Redis for longer than `--node-timeout`).
//!
//! Each node records its connections (`<prefix>:n:<node>:conns`). A node whose heartbeat is older
//! than the timeout is dead: the first survivor to take its reaper lock hands each of its
//! connections to the hub as closed (so the usual unsubscribe, destroy_channel and disconnect
//! webhooks fire, once), adopts its pollers, and deletes its records.
//!
//! A node that finds its own record gone (it was cut off for longer than the timeout and reaped,
//! or Redis restarted without its data) closes every connection it has: the cluster no longer
//! knows them, and their clients must connect again.

use super::wire::ConnRecord;
use super::{unavailable, Inner};
use crate::engine::{Conn, EngineError, NodeInfo, Reaped};
use crate::net::Transport;
use crate::outbox::{CloseReason, Outbox};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Registers this node and keeps its heartbeat fresh (every third of `timeout`), and reaps dead
/// nodes, until shutdown.
pub(super) async fn start(
    inner: Arc<Inner>,
    timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), EngineError> {
    let since = chrono::Utc::now().timestamp_millis();
    beat(&inner, since).await?; // creates the record
    let period = (timeout / 3).max(Duration::from_millis(50));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        // Since when this node's beats have been getting through. After an outage every node's
        // heartbeat is stale: nobody reaps until the others have had `timeout` to beat again.
        let mut healthy_since = tokio::time::Instant::now();
        let mut healthy = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match beat(&inner, since).await {
                Err(e) => {
                    if healthy {
                        tracing::warn!("Redis heartbeat failed: {e}");
                    }
                    healthy = false;
                    continue;
                }
                Ok(Record::Missing) => {
                    // Whatever Redis knew of this node's users is gone, so they cannot go on as
                    // if nothing happened: their clients connect again and start afresh.
                    let closed = inner.index.close_all(CloseReason::Unavailable);
                    tracing::warn!(
                        "this node's record in Redis was gone (Redis lost its data, or the other \
                         nodes gave this node up for dead): closed its {closed} connections"
                    );
                    crate::metrics::state_loss();
                }
                Ok(Record::Kept) => {}
            }
            // The beat pinged the pub/sub connection: if it had dropped, it is back now (and
            // resubscribed), and what was published meanwhile must be caught up with.
            if inner.pubsub_lost.swap(false, Ordering::Relaxed) {
                let inner = inner.clone();
                tokio::spawn(async move { inner.resync_all().await });
            }
            if !healthy {
                healthy = true;
                healthy_since = tokio::time::Instant::now();
                tracing::info!("Redis heartbeat restored");
            }
            if healthy_since.elapsed() < timeout {
                continue;
            }
            if let Err(e) = reap(&inner, timeout).await {
                tracing::warn!("reaping dead nodes failed: {e}");
            }
        }
    });
    Ok(())
}

/// Every node's heartbeat record and connection count.
pub(super) async fn nodes(inner: &Inner) -> Result<Vec<NodeInfo>, EngineError> {
    let records: HashMap<String, String> = inner
        .query(redis::cmd("HGETALL").arg(inner.keys.nodes()))
        .await?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut out = Vec::with_capacity(records.len());
    for (id, record) in records {
        let v: Value = serde_json::from_str(&record).unwrap_or(Value::Null);
        let seen = v["seen"].as_i64().unwrap_or(0);
        let connections: usize = inner
            .query(redis::cmd("HLEN").arg(inner.keys.node_conns(&id)))
            .await?;
        out.push(NodeInfo {
            this: id == *inner.node,
            alive: now - seen < inner.node_timeout.as_millis() as i64,
            address: v["addr"].as_str().unwrap_or("").to_owned(),
            since: v["since"].as_i64().unwrap_or(0),
            seen,
            connections,
            id,
        });
    }
    out.sort_by(|a, b| (a.since, &a.id).cmp(&(b.since, &b.id)));
    Ok(out)
}

/// What a heartbeat found of this node's record.
enum Record {
    Kept,
    /// Not there: created again.
    Missing,
}

async fn beat(inner: &Inner, since: i64) -> Result<Record, EngineError> {
    // The pub/sub connection only receives; a command now and then is what makes it notice a
    // lost connection, reconnect and resubscribe.
    let _: () = redis::cmd("PING")
        .query_async(&mut inner.pubsub.clone())
        .await
        .map_err(unavailable)?;
    let now = chrono::Utc::now().timestamp_millis();
    let value = json!({"since": since, "seen": now, "addr": inner.address}).to_string();
    let added: i64 = redis::cmd("HSET")
        .arg(inner.keys.nodes())
        .arg(&*inner.node)
        .arg(value)
        .query_async(&mut inner.conn())
        .await
        .map_err(unavailable)?;
    Ok(if added == 1 {
        Record::Missing
    } else {
        Record::Kept
    })
}

/// Cleans up after every node whose heartbeat is older than `timeout`.
async fn reap(inner: &Inner, timeout: Duration) -> Result<(), EngineError> {
    let nodes: HashMap<String, String> = inner
        .query(redis::cmd("HGETALL").arg(inner.keys.nodes()))
        .await?;
    let now = chrono::Utc::now().timestamp_millis();
    for (node, info) in nodes {
        let seen = serde_json::from_str::<Value>(&info)
            .ok()
            .and_then(|v| v["seen"].as_i64())
            .unwrap_or(0);
        if node == *inner.node || now - seen < timeout.as_millis() as i64 {
            continue;
        }
        // One survivor cleans up; the lock outlives the cleanup of a large node.
        let took: Option<String> = inner
            .query(
                redis::cmd("SET")
                    .arg(inner.keys.node_reaper(&node))
                    .arg(&*inner.node)
                    .arg("NX")
                    .arg("PX")
                    .arg(timeout.as_millis() as u64 * 6),
            )
            .await?;
        if took.is_none() {
            continue;
        }
        let conns: HashMap<String, String> = inner
            .query(redis::cmd("HGETALL").arg(inner.keys.node_conns(&node)))
            .await?;
        tracing::warn!(
            "node {node} stopped beating {} ms ago: closing its {} connections",
            now - seen,
            conns.len()
        );
        for (id, record) in conns {
            let Some(r) = ConnRecord::parse(&record) else {
                continue;
            };
            // A stand-in for the dead node's connection: nothing is ever written to it.
            let conn = Arc::new(Conn {
                id: Arc::from(id.as_str()),
                cookie: r.cookie,
                remote_addr: r.addr,
                outbox: Arc::new(Outbox::new(1)),
                transport: r.transport.unwrap_or(Transport::WebSocket),
                since_ms: r.since_ms,
            });
            let _ = inner
                .reaped_tx
                .send(Reaped::Connection(conn, Arc::from(r.user.as_str())));
        }
        inner
            .run_all(vec![
                redis::Cmd::del(inner.keys.node_conns(&node)),
                redis::Cmd::hdel(inner.keys.nodes(), &node),
            ])
            .await?;
        let _ = inner.reaped_tx.send(Reaped::Pollers);
    }
    Ok(())
}
