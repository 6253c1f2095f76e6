//! hookbox's Comet Session Protocol, client side: a handshake, `send` requests carrying RTJP
//! text as URL-safe base64 packets, and `comet` long polls whose packets are acknowledged by the
//! next one. What the original `hookbox.js` does without a WebSocket.

use base64::Engine;
use std::time::{Duration, Instant};

/// One CSP session.
pub struct CspLink {
    http: reqwest::Client,
    /// `http://host:port/csp`.
    base: String,
    key: String,
    /// Highest server packet received (acknowledged by the next request).
    acked: u64,
    /// Last client packet id used.
    sent: u64,
}

/// Longest a comet waits on the server (hookbox caps it at `--csp-poll-timeout`).
const POLL: Duration = Duration::from_secs(25);

fn body_inner(text: &str) -> Option<&str> {
    let t = text.trim().trim_end_matches(';');
    t.strip_prefix('(')?.strip_suffix(')')
}

impl CspLink {
    /// Handshakes a new session.
    pub async fn open(
        http: reqwest::Client,
        base: String,
        deadline: Instant,
    ) -> Result<CspLink, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let resp = http
            .post(format!("{base}/handshake"))
            .body("{}")
            .timeout(left)
            .send()
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let text = resp.text().await.map_err(|e| format!("handshake: {e}"))?;
        let v: serde_json::Value = body_inner(&text)
            .and_then(|b| serde_json::from_str(b).ok())
            .ok_or_else(|| format!("handshake: {text:.100}"))?;
        let key = v["session"]
            .as_str()
            .ok_or_else(|| format!("handshake: {text:.100}"))?
            .to_owned();
        Ok(CspLink {
            http,
            base,
            key,
            acked: 0,
            sent: 0,
        })
    }

    /// Sends RTJP text as one packet.
    pub async fn send(&mut self, text: &str, deadline: Instant) -> Result<(), String> {
        self.sent += 1;
        let data = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let body = format!("[[{}, 1, \"{data}\"]]", self.sent);
        let left = deadline.saturating_duration_since(Instant::now());
        let resp = self
            .http
            .post(format!(
                "{}/send?s={}&a={}",
                self.base, self.key, self.acked
            ))
            .body(body)
            .timeout(left)
            .send()
            .await
            .map_err(|e| format!("send: {e}"))?;
        if resp.status().as_u16() != 200 {
            return Err(format!("send: HTTP {}", resp.status()));
        }
        Ok(())
    }

    /// One long poll: the text of the new packets, concatenated (empty if none came). Err once
    /// the server closed the session.
    pub async fn next(&mut self) -> Result<Vec<u8>, String> {
        let url = format!(
            "{}/comet?s={}&a={}&du={}",
            self.base,
            self.key,
            self.acked,
            POLL.as_secs()
        );
        let resp = self
            .http
            .get(url)
            .timeout(POLL + Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("comet: {e}"))?;
        if resp.status().as_u16() != 200 {
            return Err(format!("closed by server: HTTP {}", resp.status()));
        }
        let text = resp.text().await.map_err(|e| format!("comet: {e}"))?;
        let packets: Vec<(u64, u8, Option<String>)> = body_inner(&text)
            .and_then(|b| serde_json::from_str(b).ok())
            .ok_or_else(|| format!("comet: {text:.100}"))?;
        let mut out = Vec::new();
        for (id, encoding, data) in packets {
            if id <= self.acked {
                continue; // sent again: the previous reply's acknowledgement did not arrive yet
            }
            self.acked = id;
            let Some(data) = data else {
                return Err("closed by server".into());
            };
            if encoding == 1 {
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(data.trim_end_matches('='))
                    .map_err(|e| format!("comet: bad base64: {e}"))?;
                out.extend_from_slice(&bytes);
            } else {
                out.extend_from_slice(data.as_bytes());
            }
        }
        Ok(out)
    }
}
