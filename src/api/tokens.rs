//! Wrong API tokens are limited per client address (`--max-wrong-tokens-per-ip` a minute): past
//! it, the address's calls are answered 429 before their token is even compared, so guessing a
//! token is slow whoever does it.
//!
//! The web app must keep working even if an attacker shares its address, and the right token
//! cannot be let through a held-back address (a guesser would then learn when it guessed
//! right). So the web app's own addresses are never held back: loopback, the addresses of the
//! webhook host, which is where the web app lives (resolved at startup), and those the operator
//! names (`--api-exempt-ips`: the web app's other servers). Whoever calls from those already
//! runs on the web app's machines.

use crate::hub::limits::{whole_seconds, AddressRates, Rate};
use crate::net::{address_group, IpRange};
use crate::protocol::to_ascii_string;
use crate::transport::client_address;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};

pub struct WrongTokens {
    rates: AddressRates,
    trusted_proxies: Vec<IpRange>,
    /// The webhook host's addresses (loopback is always exempt).
    web_app: Vec<IpAddr>,
    /// `--api-exempt-ips`.
    exempt: Vec<IpRange>,
}

impl WrongTokens {
    pub fn new(
        per_minute: u32,
        trusted_proxies: Vec<IpRange>,
        web_app: Vec<IpAddr>,
        exempt: Vec<IpRange>,
    ) -> Self {
        WrongTokens {
            rates: AddressRates::new(Rate::per_minute(per_minute)),
            trusted_proxies,
            web_app: web_app.iter().map(IpAddr::to_canonical).collect(),
            exempt,
        }
    }

    /// The caller's address, or `None` for the web app's own (never held back).
    pub fn address(&self, headers: &HeaderMap, peer: SocketAddr) -> Option<IpAddr> {
        let ip = client_address(headers, peer, &self.trusted_proxies);
        let own = ip.is_loopback()
            || self.web_app.contains(&ip)
            || self.exempt.iter().any(|r| r.contains(ip));
        (!own).then(|| address_group(ip))
    }

    /// The 429 answer, if `address` is held back now.
    pub fn refusal(&self, address: Option<IpAddr>) -> Option<Response> {
        let wait = self.rates.wait(&address?);
        if wait.is_zero() {
            return None;
        }
        crate::metrics::refused("wrong_tokens_per_ip");
        let secs = whole_seconds(wait);
        let body = json!([false, {
            "msg": format!("Too many wrong tokens from your address: try again in {secs} s")
        }]);
        let headers = [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::RETRY_AFTER, secs.to_string()),
        ];
        Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                headers,
                to_ascii_string(&body),
            )
                .into_response(),
        )
    }

    /// A call from `address` carried a wrong token.
    pub fn record(&self, address: Option<IpAddr>) {
        if let Some(address) = address {
            tracing::info!("Web API call with a wrong token from {address}");
            self.rates.take(&address);
        }
    }
}

/// The addresses of the hosts in `targets` (the webhook targets), looked up now: literal
/// addresses as they are, names through the resolver, bounded to a few seconds in all.
pub async fn web_app_addresses(targets: &[crate::net::HostRule]) -> Vec<IpAddr> {
    let mut found = Vec::new();
    let lookups = async {
        for t in targets {
            if let Ok(ip) = t.host.parse::<IpAddr>() {
                found.push(ip);
                continue;
            }
            let port = t.port.unwrap_or(80);
            match tokio::net::lookup_host((t.host.as_str(), port)).await {
                Ok(addrs) => found.extend(addrs.map(|a| a.ip())),
                Err(e) => tracing::debug!("cannot resolve webhook host {}: {e}", t.host),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), lookups).await;
    found
}
