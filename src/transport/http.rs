//! Serves a router on a [`TimedListener`], one HTTP/1.1 connection per accepted socket, with the
//! bounds that hold for every request of every connection (not only its first):
//! - each request's headers must be complete within `--header-timeout` of the connection
//!   becoming ready for it (hyper's header timer, given a timer here: a kept-alive connection
//!   whose next request trickles in is closed at the deadline, and so is one left idle between
//!   requests for that long);
//! - request headers are at most `--max-header-bytes` (431 past it), which is also about what
//!   hyper buffers for an unfinished request;
//! - one client address may hold at most `--max-http-connections-per-ip` plain HTTP
//!   connections; a connection that becomes a WebSocket or a stream leaves that count for the
//!   transports' own (`--max-connections-per-ip`). Peers in `--trusted-proxies` are not counted
//!   here: each carries many clients, and those are counted by the address it forwards.

use super::listener::{PeerAddr, TimedListener};
use super::quota::Quota;
use crate::net::IpRange;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// The bounds [`serve`] puts on every connection, from the configuration. One per server,
/// shared by its listeners: an address's plain HTTP connections are counted over all of them.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// `--header-timeout`.
    pub header_timeout: Duration,
    /// `--max-header-bytes`.
    pub max_header_bytes: usize,
    /// `--max-http-connections-per-ip`.
    pub per_address: Arc<Quota>,
    /// `--trusted-proxies`: peers not counted per address.
    pub trusted_proxies: Vec<IpRange>,
}

impl HttpLimits {
    pub fn new(
        header_timeout: Duration,
        max_header_bytes: usize,
        max_per_address: usize,
        trusted_proxies: Vec<IpRange>,
    ) -> HttpLimits {
        HttpLimits {
            header_timeout,
            max_header_bytes,
            per_address: Quota::per_address(usize::MAX, max_per_address, "http_connections_per_ip"),
            trusted_proxies,
        }
    }
}

/// hyper's smallest read buffer bound.
const MIN_BUFFER: usize = 8192;

/// Serves `router` on `listener` until `shutdown`; then finishes the requests in progress
/// (each connection is told to close after its current one) and returns once every connection
/// is done. Upgraded connections (WebSocket, hixie-75) live on in their own tasks.
pub async fn serve(
    mut listener: TimedListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        // Room for the headers and a little more: what an unfinished request may park.
        .max_buf_size((limits.max_header_bytes + 4096).max(MIN_BUFFER));
    let builder = Arc::new(builder);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let switch = stream.switch();
        let ip = peer.ip();
        if !limits.trusted_proxies.iter().any(|r| r.contains(ip)) {
            match limits.per_address.take(ip) {
                Ok(slot) => switch.hold_http_slot(slot),
                // Dropped at once (the refusal is counted): a refused socket must not hold
                // anything for long.
                Err(_) => continue,
            }
        }
        let peer = PeerAddr(peer, switch);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            // A clone per request: the router is a few reference counts.
            let mut router = router.clone();
            router.call(req.map(Body::new))
        });
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_end(result),
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    log_end(conn.await);
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!("HTTP connection ended: {e}");
    }
}
