//! Transports carry RTJP bytes between a client and its [`Session`](crate::session::Session).
//! They know nothing about channels or users.

pub mod csp;
pub mod hixie;
pub mod websocket;

use axum::http::HeaderMap;
use std::net::SocketAddr;

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
