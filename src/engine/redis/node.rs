//! This node in the cluster: its heartbeat in Redis, refreshed while it runs.

use super::{unavailable, Inner};
use crate::engine::EngineError;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What `/web/get_server_info` and the console show of a node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub since: i64,
}

/// Registers this node and keeps its heartbeat fresh (every third of `timeout`) until shutdown.
pub(super) async fn start(
    inner: Arc<Inner>,
    timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), EngineError> {
    let since = chrono::Utc::now().timestamp_millis();
    beat(&inner, since).await?;
    let period = (timeout / 3).max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(e) = beat(&inner, since).await {
                tracing::warn!("Redis heartbeat failed: {e}");
            }
        }
    });
    Ok(())
}

async fn beat(inner: &Inner, since: i64) -> Result<(), EngineError> {
    let now = chrono::Utc::now().timestamp_millis();
    let value = json!({"since": since, "seen": now}).to_string();
    let _: () = redis::cmd("HSET")
        .arg(inner.keys.nodes())
        .arg(&*inner.node)
        .arg(value)
        .query_async(&mut inner.conn())
        .await
        .map_err(unavailable)?;
    Ok(())
}
