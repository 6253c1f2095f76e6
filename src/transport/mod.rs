//! Transports carry RTJP bytes between a client and its [`Session`](crate::session::Session).
//! They know nothing about channels or users.

pub mod csp;
pub mod hixie;
pub mod websocket;

use crate::session::{CloseReason, Drained, Outbox};
use axum::http::HeaderMap;
use futures_util::FutureExt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A peer that accepts no bytes for this long is treated as gone. Without it, a client that
/// stopped reading would hold its connection (and user) forever once its outbox overflowed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until the outbox has something to write (or closes), then takes all of it.
/// `None` once the connection is done; at shutdown the outbox is closed so its close is written.
pub(crate) async fn next_batch(
    outbox: &Outbox,
    done: &CancellationToken,
    shutdown: &CancellationToken,
) -> Option<Drained> {
    tokio::select! {
        _ = outbox.ready() => {}
        _ = done.cancelled() => return None,
        _ = shutdown.cancelled() => outbox.close(CloseReason::Shutdown),
    }
    Some(outbox.drain())
}

/// Runs one socket write under [`WRITE_TIMEOUT`]; false if it failed or timed out.
/// A write that completes at once (the usual case) arms no timer.
pub(crate) async fn write_within<E>(write: impl Future<Output = Result<(), E>>) -> bool {
    let mut write = std::pin::pin!(write);
    if let Some(done) = write.as_mut().now_or_never() {
        return done.is_ok();
    }
    matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
}

/// The client address given to webhooks as X-Real-IP: the request's X-Forwarded-For if present
/// (a proxy in front of hookbox), else the socket's peer address.
pub fn client_address(headers: &HeaderMap, peer: SocketAddr) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map_or_else(|| peer.ip().to_string(), str::to_owned)
}
