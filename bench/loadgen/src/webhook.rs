//! A trivial web application on loopback that answers the server's webhooks.
//!
//! Minimal HTTP/1.1 with keep-alive, enough for the server's pooled webhook client:
//! `connect` names the user after the `u=<n>` cookie, `create_channel` answers the channel
//! options chosen on the command line, every other hook (subscribe, unsubscribe, publish,
//! destroy_channel, disconnect, …) is approved with `[true, {}]`.
//!
//! It is also Pushpin's GRIP backend (WebSocket-over-HTTP, `bench/peers/pushpin.sh`): a
//! request of type `application/websocket-events` whose body opens with `OPEN` is accepted and
//! subscribed to every channel of its `?id=a,b` query; a `CLOSE` is acknowledged.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// Options added to every connect reply (workload E with tickets: `, "resume_ttl": 300`); set
/// once, before the web app starts.
pub static CONNECT_EXTRA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The `history_size` every create_channel reply gives (0 unless set, before the web app
/// starts: workload R recovers from the history).
pub static CHANNEL_HISTORY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

#[derive(Default, Debug)]
pub struct HookStats {
    pub connect: AtomicU64,
    pub create_channel: AtomicU64,
    pub subscribe: AtomicU64,
    pub unsubscribe: AtomicU64,
    pub destroy_channel: AtomicU64,
    pub disconnect: AtomicU64,
    pub other: AtomicU64,
    pub bad_request: AtomicU64,
    /// GRIP WebSocket-over-HTTP requests (Pushpin).
    pub grip: AtomicU64,
}

impl HookStats {
    pub fn total(&self) -> u64 {
        [
            &self.connect,
            &self.create_channel,
            &self.subscribe,
            &self.unsubscribe,
            &self.destroy_channel,
            &self.disconnect,
            &self.other,
        ]
        .iter()
        .map(|a| a.load(Relaxed))
        .sum()
    }
}

pub struct WebApp {
    pub stats: Arc<HookStats>,
    stop: watch::Sender<bool>,
}

impl WebApp {
    /// Binds 127.0.0.1:`port` and serves until `stop()` (or the runtime ends).
    /// `moderated` is the `moderated` option create_channel answers.
    pub async fn start(port: u16, moderated: bool) -> Result<WebApp, String> {
        // A deep accept queue: the server opens up to its webhook concurrency in one burst.
        let listener = (|| {
            let sock = TcpSocket::new_v4()?;
            sock.set_reuseaddr(true)?;
            sock.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
            sock.listen(4096)
        })()
        .map_err(|e| format!("webhook app: bind 127.0.0.1:{port}: {e}"))?;
        let stats = Arc::new(HookStats::default());
        let (stop, stop_rx) = watch::channel(false);
        let create_reply: Arc<str> = format!(
            "[true, {{\"moderated\": {moderated}, \"history_size\": {}}}]",
            CHANNEL_HISTORY.get().copied().unwrap_or(0)
        )
        .into();
        let st = stats.clone();
        tokio::spawn(async move {
            let mut stop_rx = stop_rx;
            loop {
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    a = listener.accept() => {
                        let Ok((sock, _)) = a else {
                            // e.g. EMFILE: back off briefly instead of spinning.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        let _ = sock.set_nodelay(true);
                        tokio::spawn(serve_conn(sock, st.clone(), create_reply.clone(), stop_rx.clone()));
                    }
                }
            }
        });
        Ok(WebApp { stats, stop })
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

async fn serve_conn(
    mut sock: TcpStream,
    stats: Arc<HookStats>,
    create_reply: Arc<str>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        // Answer every complete request in the buffer.
        while let Some(hend) = find(&buf, b"\r\n\r\n") {
            let head = &buf[..hend];
            let clen = header(head, b"content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if clen > 1 << 20 {
                stats.bad_request.fetch_add(1, Relaxed);
                return;
            }
            let total = hend + 4 + clen;
            if buf.len() < total {
                break;
            }
            let body = &buf[hend + 4..total];
            let resp = if head.starts_with(b"GET /stream?") {
                // GRIP HTTP streaming: hold the response open on the request's channels.
                stats.grip.fetch_add(1, Relaxed);
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nGrip-Hold: stream\r\n\
                     Grip-Channel: {}\r\nContent-Length: 0\r\n\r\n",
                    grip_channels(head).join(", ")
                )
            } else if header(head, b"content-type") == Some(&b"application/websocket-events"[..]) {
                stats.grip.fetch_add(1, Relaxed);
                let reply = grip_answer(head, body);
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/websocket-events\r\n\
                     Sec-WebSocket-Extensions: grip\r\nContent-Length: {}\r\n\r\n{}",
                    reply.len(),
                    reply
                )
            } else {
                let cookie = header(head, b"cookie").unwrap_or(b"");
                let reply = answer(body, cookie, &stats, &create_reply);
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                    reply.len(),
                    reply
                )
            };
            if sock.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
            buf.drain(..total);
        }
        if buf.len() > 2 << 20 {
            stats.bad_request.fetch_add(1, Relaxed);
            return;
        }
        let n = tokio::select! {
            _ = stop.changed() => return,
            r = sock.read(&mut chunk) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn answer(body: &[u8], cookie: &[u8], stats: &HookStats, create_reply: &str) -> String {
    let action = form_field(body, b"action").unwrap_or(b"");
    match action {
        b"connect" => {
            stats.connect.fetch_add(1, Relaxed);
            // Cookie "u=<n>" → user "u<n>"; digits only, so no JSON escaping needed.
            let n: String = cookie_value(cookie, b"u")
                .unwrap_or(b"0")
                .iter()
                .filter(|b| b.is_ascii_digit())
                .map(|&b| b as char)
                .collect();
            let extra = CONNECT_EXTRA.get().map_or("", String::as_str);
            format!("[true, {{\"name\": \"u{n}\"{extra}}}]")
        }
        b"create_channel" => {
            stats.create_channel.fetch_add(1, Relaxed);
            create_reply.to_owned()
        }
        other => {
            match other {
                b"subscribe" => &stats.subscribe,
                b"unsubscribe" => &stats.unsubscribe,
                b"destroy_channel" => &stats.destroy_channel,
                b"disconnect" => &stats.disconnect,
                _ => &stats.other,
            }
            .fetch_add(1, Relaxed);
            "[true, {}]".to_owned()
        }
    }
}

/// The GRIP reply to a WebSocket-over-HTTP request: `OPEN` plus one `subscribe` control message
/// per channel of the request's `id` query (`a,b`); `CLOSE` acknowledged; anything else (the
/// client's own messages) answered with no events.
fn grip_answer(head: &[u8], body: &[u8]) -> String {
    let mut out = String::new();
    if body.starts_with(b"OPEN") {
        out.push_str("OPEN\r\n");
        for ch in grip_channels(head) {
            let msg = format!("c:{{\"type\": \"subscribe\", \"channel\": \"{ch}\"}}");
            out.push_str(&format!("TEXT {:x}\r\n{msg}\r\n", msg.len()));
        }
    } else if find(body, b"CLOSE").is_some() {
        out.push_str("CLOSE\r\n");
    }
    out
}

/// The channels of a GRIP request's `id` query (`?id=a,b`), restricted to [A-Za-z0-9_-] (our
/// channel names) so they need no escaping.
fn grip_channels(head: &[u8]) -> Vec<String> {
    // Request line: `POST /sub?id=a,b HTTP/1.1`.
    let line = head.split(|&b| b == b'\r').next().unwrap_or(b"");
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or(b"");
    let query = target.splitn(2, |&b| b == b'?').nth(1).unwrap_or(b"");
    let ids = form_field(query, b"id").unwrap_or(b"");
    ids.split(|&b| b == b',')
        .filter(|c| !c.is_empty())
        .map(|ch| {
            ch.iter()
                .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                .map(|&b| b as char)
                .collect()
        })
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A header's value (case-insensitive name), trimmed.
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()] == b':'
        {
            return Some(line[name.len() + 1..].trim_ascii());
        }
    }
    None
}

fn form_field<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    body.split(|&b| b == b'&').find_map(|kv| {
        let mut it = kv.splitn(2, |&b| b == b'=');
        (it.next()? == key).then(|| it.next().unwrap_or(b""))
    })
}

fn cookie_value<'a>(cookie: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    cookie.split(|&b| b == b';').find_map(|kv| {
        let kv = kv.trim_ascii();
        let mut it = kv.splitn(2, |&b| b == b'=');
        (it.next()? == key).then(|| it.next().unwrap_or(b""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms_and_cookies() {
        let st = HookStats::default();
        assert_eq!(
            answer(b"action=connect&conn_id=ab&payload=null", b"u=42", &st, "x"),
            "[true, {\"name\": \"u42\"}]"
        );
        assert_eq!(
            answer(b"action=create_channel&channel_name=c", b"", &st, "CR"),
            "CR"
        );
        assert_eq!(answer(b"action=subscribe", b"", &st, "CR"), "[true, {}]");
        assert_eq!(st.subscribe.load(Relaxed), 1);
        assert_eq!(
            grip_answer(b"POST /sub?id=p1,g0 HTTP/1.1\r\nHost: x", b"OPEN\r\n"),
            "OPEN\r\nTEXT 28\r\nc:{\"type\": \"subscribe\", \"channel\": \"p1\"}\r\n\
             TEXT 28\r\nc:{\"type\": \"subscribe\", \"channel\": \"g0\"}\r\n"
        );
        assert_eq!(
            header(
                b"POST / HTTP/1.1\r\nContent-Length: 12\r\nCookie: u=1",
                b"cookie"
            ),
            Some(&b"u=1"[..])
        );
    }
}
