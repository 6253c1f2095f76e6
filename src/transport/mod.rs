//! Transports carry RTJP bytes between a client and its [`Session`](crate::session::Session).
//! They know nothing about channels or users.

pub mod csp;
mod driver;
pub mod hixie;
pub mod http;
mod listener;
pub mod quota;
pub mod sse;
pub mod tls;
pub mod websocket;

pub use listener::{Deadlines, IdleSwitch, PeerAddr, TimedListener};

use crate::hub::Hub;
use crate::session::SessionLimits;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// What the transports need, and all they get: the hub their sessions talk to, the CSP sessions,
/// their limits, and the shutdown signal with the tracker of connection tasks.
pub struct Shared {
    pub hub: Arc<Hub>,
    pub csp: Arc<csp::Registry>,
    /// WebSocket and hixie-75 connections, in all and per address.
    pub quota: Arc<quota::Quota>,
    pub limits: Limits,
    pub shutdown: CancellationToken,
    /// Every client connection's task (WebSocket, hixie-75, CSP session). At shutdown the app
    /// waits for them: each tells its client and runs its close handling, webhooks included.
    pub connections: TaskTracker,
}

/// The transports' bounds, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest inbound client message (`--max-message-size`).
    pub max_message: usize,
    /// Byte budget of each connection's outbox (`--outbox-bytes`).
    pub outbox_bytes: usize,
    pub session: SessionLimits,
    /// Longest a CSP comet waits (`--csp-poll-timeout`).
    pub csp_poll_timeout: Duration,
    /// How long WebSocket and hixie writers gather frames before writing
    /// (`--write-coalesce-ms`; zero: at once).
    pub write_coalesce: Duration,
    /// WebSocket ping period (`--ping-interval`); `None`: no pings.
    pub ping_interval: Option<Duration>,
    /// How long a WebSocket or hixie-75 connection may go without CONNECT (`--connect-timeout`).
    pub connect_timeout: Duration,
    /// Peers whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: Vec<IpRange>,
    /// Pages that may use the transports (`--allowed-origins`); `None`: any.
    pub allowed_origins: Option<Vec<String>>,
    /// The web app's origins (where the webhooks go), whose pages may hand their cookies over
    /// when `allowed_origins` is not set (see `forwarded_cookie`).
    pub web_app_origins: Vec<String>,
    /// hookbox serves TLS itself (`--tls-cert`): its own origin is https.
    pub tls: bool,
}

impl Limits {
    /// Whether a request may use a client transport: it carries no `Origin` (not a browser
    /// page: python-hookboxclient, a server), or one on the allow-list. A refusal is counted.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(allowed) = &self.allowed_origins else {
            return true;
        };
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
            return true;
        };
        let ok = origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)));
        if !ok {
            crate::metrics::refused("origin");
        }
        ok
    }

    /// Whether the page behind a request may hand the browser's cookies for hookbox (its
    /// session, HttpOnly cookies included) to the web app's webhooks: its `Origin` is on
    /// `--allowed-origins`, or, when that list is not set, the page is on hookbox's own origin
    /// or the web app's (where the webhooks go). Never for a page elsewhere, even on the same
    /// host and another port (cookies ignore ports): that would be cross-site WebSocket
    /// hijacking. Requests without `Origin` are not from a page: no.
    pub fn cookie_origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers
            .get(axum::http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        else {
            return false;
        };
        if let Some(allowed) = &self.allowed_origins {
            return allowed.iter().any(|a| a.eq_ignore_ascii_case(origin));
        }
        // hookbox's own origin, scheme included: a plain-http page of hookbox's host (an
        // injected one) is not the https origin hookbox serves (itself, or behind a proxy).
        let https = self.tls
            || headers
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
        let own = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| {
                let scheme = if https { "https" } else { "http" };
                origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
            });
        own || self
            .web_app_origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(origin))
    }

    /// The browser's own cookies of a request, for the connect webhook, when its page may hand
    /// them over (see `cookie_origin_allowed`).
    pub fn forwarded_cookie(&self, headers: &HeaderMap) -> Option<String> {
        if !self.cookie_origin_allowed(headers) {
            return None;
        }
        // Several Cookie headers (HTTP/2 splits them) are one cookie string.
        let cookie = headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        (!cookie.is_empty()).then_some(cookie)
    }
}

use crate::net::IpRange;
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};
use tokio_util::sync::CancellationToken;

/// The client's address: the socket's peer, unless that peer is a trusted proxy
/// (`--trusted-proxies`), in which case the proxy's `X-Forwarded-For` names it. Of that list,
/// the rightmost address that is not itself a trusted proxy is taken: the entries to its left
/// were written by the client and prove nothing. It is given to webhooks as `X-Real-IP` and is
/// what per-address limits count.
pub fn client_address(headers: &HeaderMap, peer: SocketAddr, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    let peer = peer.ip().to_canonical();
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical());
    let mut client = peer;
    for ip in forwarded.collect::<Vec<_>>().into_iter().rev() {
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = crate::config::Config::default().trusted_proxies;
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.7".parse().unwrap(),
        );
        let from = |h: &HeaderMap, peer: &str| {
            client_address(h, peer.parse().unwrap(), &trusted).to_string()
        };
        assert_eq!(from(&h, "127.0.0.1:5000"), "203.0.113.7");
        assert_eq!(from(&h, "[::ffff:127.0.0.1]:5000"), "203.0.113.7");
        assert_eq!(from(&h, "192.0.2.9:5000"), "192.0.2.9");
        // Proxies in the chain are skipped; junk entries are ignored.
        h.insert(
            "x-forwarded-for",
            "10.9.9.9, nonsense, 127.0.0.2".parse().unwrap(),
        );
        assert_eq!(from(&h, "127.0.0.1:1"), "10.9.9.9");
        h.clear();
        assert_eq!(from(&h, "127.0.0.1:1"), "127.0.0.1");
    }
}
