//! A trivial web application on loopback that answers the server's webhooks.
//!
//! Minimal HTTP/1.1 with keep-alive, enough for the server's pooled webhook client:
//! `connect` names the user after the `u=<n>` cookie, `create_channel` answers the channel
//! options chosen on the command line, every other hook (subscribe, unsubscribe, publish,
//! destroy_channel, disconnect, …) is approved with `[true, {}]`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

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
        let create_reply: Arc<str> =
            format!("[true, {{\"moderated\": {moderated}, \"history_size\": 0}}]").into();
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
            let cookie = header(head, b"cookie").unwrap_or(b"");
            let reply = answer(body, cookie, &stats, &create_reply);
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                reply.len(),
                reply
            );
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
            format!("[true, {{\"name\": \"u{n}\"}}]")
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
            header(
                b"POST / HTTP/1.1\r\nContent-Length: 12\r\nCookie: u=1",
                b"cookie"
            ),
            Some(&b"u=1"[..])
        );
    }
}
