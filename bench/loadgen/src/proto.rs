//! Client-side protocol adapters: everything that depends on which server we talk to.
//!
//! One enum variant per server protocol: hookbox's RTJP, Nchan's plain WebSocket messages and
//! Socket.IO's Engine.IO v4 packets. Each fills in: the subscriber URL, the login/subscribe
//! handshake (may be empty), how messages split into frames, how a data frame is recognised,
//! and how the publisher's HTTP request is built and acknowledged. The workloads only use these
//! methods (peer servers: `bench/peers/`).

use crate::net::Link;
use futures_util::{SinkExt, StreamExt};
use std::time::Instant;
use tokio::time::timeout_at;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// hookbox / HookBox 0.3.4a1: RTJP frames over WebSocket at /ws, Web API /web/publish.
    Hookbox,
    /// Nchan: `ws://…/sub?id=CHANNEL`, one message per publication, `POST /pub?id=CHANNEL`.
    Nchan,
    /// Socket.IO 4 (Engine.IO v4 over WebSocket) with `bench/peers/socketio/server.js`.
    Socketio,
    /// Pushpin (`bench/peers/pushpin.sh`) with HTTP streaming subscribers: `GET /stream?id=…`,
    /// held by our GRIP backend (the loadgen's web app), one `\r\n`-ended line per publication;
    /// `POST :PORT+1/publish/` (JSON items).
    Pushpin,
    /// Pushpin with WebSocket subscribers (WebSocket-over-HTTP to the GRIP backend), one
    /// message per publication.
    PushpinWs,
    /// hookbox's RTJP over CSP (`/csp`: HTTP long polls), as the original client without
    /// WebSocket.
    Csp,
}

/// Where the server under test listens.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Web API secret (hookbox `-r`).
    pub token: String,
    /// Workload D: subscribers go where each connect is authorized by the web app (Nchan's
    /// `/gsub`, Socket.IO's `gate=1`; hookbox and Pushpin ask it for every connection anyway).
    pub gated: bool,
}

/// Timings of one subscriber's login + subscribe, in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct Handshake {
    /// TCP connect + WebSocket upgrade.
    pub open_ns: u64,
    /// Login request → login confirmed (hookbox: CONNECT → CONNECTED).
    pub login_ns: u64,
    /// Subscribe request → subscription confirmed.
    pub subscribe_ns: u64,
    /// Complete lines that arrived after the subscription was confirmed (usually none).
    pub leftover: Vec<Vec<u8>>,
    /// hookbox: the resume ticket CONNECTED carried, if it asked for one.
    pub ticket: Option<String>,
    /// hookbox: CONNECTED said `resumed` (no connect webhook was asked).
    pub resumed: bool,
}

/// What a receive loop should do after looking at one line.
enum Step {
    Continue,
    Done,
    Fail(String),
}

impl Proto {
    /// The WebSocket URL a subscriber of `channels` (one name, or several joined by `,`) opens.
    pub fn ws_url(&self, t: &Target, channels: &str) -> String {
        match self {
            Proto::Hookbox => format!("ws://{}:{}/ws", t.host, t.port),
            Proto::Csp => format!("http://{}:{}/csp", t.host, t.port),
            // Nchan splits the id at `,` (nchan_channel_id_split_delimiter); our GRIP backend too.
            Proto::Nchan if t.gated => format!("ws://{}:{}/gsub?id={channels}", t.host, t.port),
            Proto::Nchan | Proto::PushpinWs => {
                format!("ws://{}:{}/sub?id={channels}", t.host, t.port)
            }
            Proto::Pushpin => format!("http://{}:{}/stream?id={channels}", t.host, t.port),
            Proto::Socketio => format!(
                "ws://{}:{}/socket.io/?EIO=4&transport=websocket{}",
                t.host,
                t.port,
                if t.gated { "&gate=1" } else { "" }
            ),
        }
    }

    /// How the server's messages split into frames: `\r\n`-ended lines (RTJP, several per
    /// message), or one frame per message.
    pub fn lines(&self) -> LineBuf {
        LineBuf {
            carry: Vec::new(),
            per_message: !matches!(self, Proto::Hookbox | Proto::Csp | Proto::Pushpin),
        }
    }

    /// Log in as user number `user` and subscribe to `channels` (one name, or several joined
    /// by `,`), on an open socket. hookbox: with `tickets`, asks for a resume ticket, or
    /// presents `ticket`.
    pub async fn handshake(
        &self,
        ws: &mut Link,
        lines: &mut LineBuf,
        user: u64,
        channels: &str,
        (tickets, ticket): (bool, Option<&str>),
        deadline: Instant,
    ) -> Result<Handshake, String> {
        let channels: Vec<&str> = channels.split(',').collect();
        match self {
            Proto::Hookbox | Proto::Csp => {
                let mut hs = Handshake::default();
                // Tickets are base64url and dots: no escaping needed.
                let resume = match (tickets, ticket) {
                    (_, Some(t)) => format!(", \"resume\": \"{t}\""),
                    (true, None) => ", \"resume\": true".to_owned(),
                    (false, None) => String::new(),
                };
                let connect =
                    format!("[1, \"CONNECT\", {{\"cookie_string\": \"u={user}\"{resume}}}]\r\n");
                let t0 = Instant::now();
                send_text(ws, connect, deadline).await?;
                let (mut ticket, mut resumed) = (None, false);
                recv_until(
                    ws,
                    lines,
                    deadline,
                    &mut hs.leftover,
                    |line| match rtjp_name(line) {
                        Some("CONNECTED") => {
                            (ticket, resumed) = ticket_of(line);
                            Step::Done
                        }
                        Some("ERROR") => Step::Fail(lossy(line)),
                        _ => Step::Continue,
                    },
                )
                .await
                .map_err(|e| format!("login: {e}"))?;
                hs.ticket = ticket;
                hs.resumed = resumed;
                hs.login_ns = t0.elapsed().as_nanos() as u64;
                // A user that is in a channel already (a reconnect while its previous
                // connection is still being closed) gets its own SUBSCRIBE for it right after
                // CONNECTED, and the SUBSCRIBE sent below answers nothing: those count.
                let replayed = hs
                    .leftover
                    .iter()
                    .filter(|l| rtjp_name(l) == Some("SUBSCRIBE"))
                    .count();
                hs.leftover.clear();
                let t1 = Instant::now();
                for (k, channel) in channels.iter().enumerate() {
                    let sub = format!(
                        "[{}, \"SUBSCRIBE\", {{\"channel_name\": \"{channel}\"}}]\r\n",
                        k + 2
                    );
                    send_text(ws, sub, deadline).await?;
                }
                let mut need = channels.len().saturating_sub(replayed);
                if need > 0 {
                    recv_until(ws, lines, deadline, &mut hs.leftover, |line| {
                        match rtjp_name(line) {
                            // Presence is off in our channels: each SUBSCRIBE is one of ours.
                            Some("SUBSCRIBE") => {
                                need -= 1;
                                if need == 0 {
                                    Step::Done
                                } else {
                                    Step::Continue
                                }
                            }
                            Some("ERROR") => Step::Fail(lossy(line)),
                            _ => Step::Continue,
                        }
                    })
                    .await
                    .map_err(|e| format!("subscribe: {e}"))?;
                }
                hs.subscribe_ns = t1.elapsed().as_nanos() as u64;
                Ok(hs)
            }
            // Subscribed by opening the socket.
            Proto::Nchan | Proto::Pushpin | Proto::PushpinWs => Ok(Handshake::default()),
            Proto::Socketio => {
                let mut hs = Handshake::default();
                let t0 = Instant::now();
                // The Engine.IO open packet, then connecting to the default namespace.
                recv_until(ws, lines, deadline, &mut hs.leftover, |m| match m.first() {
                    Some(b'0') => Step::Done,
                    _ => Step::Fail(lossy(m)),
                })
                .await?;
                send_text(ws, "40".into(), deadline).await?;
                recv_until(ws, lines, deadline, &mut hs.leftover, |m| {
                    if m.starts_with(b"40") {
                        Step::Done
                    } else if m.starts_with(b"44") {
                        Step::Fail(lossy(m))
                    } else {
                        Step::Continue
                    }
                })
                .await?;
                hs.login_ns = t0.elapsed().as_nanos() as u64;
                hs.leftover.clear();
                let t1 = Instant::now();
                for channel in &channels {
                    send_text(ws, format!("42[\"subscribe\",\"{channel}\"]"), deadline).await?;
                }
                let mut need = channels.len();
                recv_until(ws, lines, deadline, &mut hs.leftover, |m| {
                    if m.starts_with(b"42[\"subscribed\"") {
                        need -= 1;
                        if need == 0 {
                            return Step::Done;
                        }
                    }
                    Step::Continue
                })
                .await?;
                hs.subscribe_ns = t1.elapsed().as_nanos() as u64;
                Ok(hs)
            }
        }
    }

    /// If `line` is a data frame carrying one of our payloads, its (send time ns, sequence).
    #[inline]
    pub fn data_stamp(&self, line: &[u8]) -> Option<(u64, u64)> {
        match self {
            Proto::Hookbox | Proto::Csp => {
                if rtjp_name(line) != Some("PUBLISH") {
                    return None;
                }
                payload_stamp(line)
            }
            Proto::Nchan | Proto::Pushpin | Proto::PushpinWs => payload_stamp(line),
            Proto::Socketio if line.starts_with(b"42[\"message\"") => payload_stamp(line),
            Proto::Socketio => None,
        }
    }

    /// The publisher's HTTP request: (URL, form body) for one payload on `channel`.
    pub fn publish_request(&self, t: &Target, channel: &str, payload: &str) -> (String, String) {
        match self {
            Proto::Hookbox | Proto::Csp => {
                let url = format!("http://{}:{}/web/publish", t.host, t.port);
                let mut body = String::with_capacity(payload.len() * 2 + 64);
                body.push_str("security_token=");
                url_encode_into(&t.token, &mut body);
                body.push_str("&channel_name=");
                url_encode_into(channel, &mut body);
                body.push_str("&payload=");
                url_encode_into(payload, &mut body);
                (url, body)
            }
            Proto::Nchan => (
                format!("http://{}:{}/pub?id={channel}", t.host, t.port),
                payload.to_owned(),
            ),
            Proto::Socketio => (
                format!("http://{}:{}/publish?room={channel}", t.host, t.port),
                payload.to_owned(),
            ),
            Proto::Pushpin | Proto::PushpinWs => {
                let mut body = String::with_capacity(payload.len() * 2 + 128);
                body.push_str("{\"items\":[{\"channel\":\"");
                json_escape_into(channel, &mut body);
                body.push_str("\",\"formats\":{\"ws-message\":{\"content\":\"");
                json_escape_into(payload, &mut body);
                body.push_str("\"},\"http-stream\":{\"content\":\"");
                json_escape_into(payload, &mut body);
                body.push_str("\\r\\n\"}}}]}");
                (format!("http://{}:{}/publish/", t.host, t.port + 1), body)
            }
        }
    }

    /// The publish request's Content-Type.
    pub fn publish_content_type(&self) -> &'static str {
        match self {
            Proto::Hookbox | Proto::Csp => "application/x-www-form-urlencoded",
            Proto::Pushpin | Proto::PushpinWs => "application/json",
            Proto::Nchan | Proto::Socketio => "text/plain",
        }
    }

    /// Whether the server accepted a publish request.
    pub fn publish_ok(&self, status: u16, body: &[u8]) -> bool {
        match self {
            Proto::Hookbox | Proto::Csp => status == 200 && body.starts_with(b"[true"),
            // 201: delivered to subscribers, 202: queued with none.
            Proto::Nchan => status == 201 || status == 202,
            Proto::Socketio | Proto::Pushpin | Proto::PushpinWs => status == 200,
        }
    }
}

/// The frame name of an RTJP line `[id, "NAME", {...}]`.
#[inline]
pub fn rtjp_name(line: &[u8]) -> Option<&str> {
    let head = &line[..line.len().min(32)];
    let q1 = head.iter().position(|&b| b == b'"')?;
    let rest = &head[q1 + 1..];
    let q2 = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..q2]).ok()
}

/// Our payload is `{"t": <ns>, "s": <seq>, "p": "xxx…"}`, possibly re-spaced by the server.
#[inline]
pub fn payload_stamp(line: &[u8]) -> Option<(u64, u64)> {
    let i = find(line, b"\"t\":")?;
    let (t, used) = parse_u64(&line[i + 4..])?;
    let rest = &line[i + 4 + used..];
    let j = find(rest, b"\"s\":")?;
    let (s, _) = parse_u64(&rest[j + 4..])?;
    Some((t, s))
}

/// A payload of exactly `size` bytes (or the minimum, if `size` is smaller).
pub fn make_payload(t_ns: u64, seq: u64, size: usize) -> String {
    let mut p = format!("{{\"t\":{t_ns},\"s\":{seq},\"p\":\"");
    let fixed = p.len() + 2;
    for _ in fixed..size.max(fixed) {
        p.push('x');
    }
    p.push_str("\"}");
    p
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_u64(b: &[u8]) -> Option<(u64, usize)> {
    let mut i = 0;
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    let start = i;
    let mut v: u64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add((b[i] - b'0') as u64)?;
        i += 1;
    }
    if i == start {
        None
    } else {
        Some((v, i))
    }
}

fn lossy(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(300)]).into_owned()
}

/// Appends `s` as the inside of a JSON string.
pub fn json_escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

pub fn url_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Splits a stream of WebSocket messages into `\r\n`-terminated lines (a line may span
/// messages), or, for protocols framed by messages, hands over each message.
#[derive(Default)]
pub struct LineBuf {
    carry: Vec<u8>,
    per_message: bool,
}

impl LineBuf {
    /// Calls `f` on every complete, non-empty line (without its `\r\n`).
    #[inline]
    pub fn feed(&mut self, data: &[u8], mut f: impl FnMut(&[u8])) {
        if self.per_message {
            if !data.is_empty() {
                f(data);
            }
            return;
        }
        if self.carry.is_empty() {
            let rest = split_lines(data, &mut f);
            if !rest.is_empty() {
                self.carry.extend_from_slice(rest);
            }
        } else {
            self.carry.extend_from_slice(data);
            let carry = std::mem::take(&mut self.carry);
            let rest = split_lines(&carry, &mut f);
            self.carry = rest.to_vec();
        }
    }
}

fn split_lines<'a>(mut data: &'a [u8], f: &mut impl FnMut(&[u8])) -> &'a [u8] {
    while let Some(i) = data.windows(2).position(|w| w == b"\r\n") {
        if i > 0 {
            f(&data[..i]);
        }
        data = &data[i + 2..];
    }
    data
}

/// The bytes of a data-bearing WebSocket message; `Err` for a close (with its code).
pub fn message_bytes(m: &Message) -> Result<Option<&[u8]>, String> {
    match m {
        Message::Text(t) => Ok(Some(t.as_bytes())),
        Message::Binary(b) => Ok(Some(b)),
        Message::Close(c) => Err(match c {
            Some(c) => format!("closed by server: {} {}", u16::from(c.code), c.reason),
            None => "closed by server".into(),
        }),
        _ => Ok(None),
    }
}

async fn send_text(link: &mut Link, text: String, deadline: Instant) -> Result<(), String> {
    match link {
        Link::Ws(ws) => {
            match timeout_at(deadline.into(), ws.send(Message::Text(text.into()))).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("send: {e}")),
                Err(_) => Err("send: timeout".into()),
            }
        }
        Link::Http(c) => c.send(&text, deadline).await,
    }
}

/// The next data of a link during a handshake (copied: handshakes only).
async fn recv_data(link: &mut Link, deadline: Instant) -> Result<Option<Vec<u8>>, String> {
    match link {
        Link::Ws(ws) => {
            let m = match timeout_at(deadline.into(), ws.next()).await {
                Err(_) => return Err("handshake timeout".into()),
                Ok(None) => return Err("connection closed".into()),
                Ok(Some(Err(e))) => return Err(format!("read: {e}")),
                Ok(Some(Ok(m))) => m,
            };
            Ok(message_bytes(&m)?.map(<[u8]>::to_vec))
        }
        Link::Http(c) => match timeout_at(deadline.into(), c.next()).await {
            Err(_) => Err("handshake timeout".into()),
            Ok(r) => r.map(Some),
        },
    }
}

/// The resume ticket in a CONNECTED or RESUME line, and whether CONNECTED said `resumed`.
pub fn ticket_of(line: &[u8]) -> (Option<String>, bool) {
    let Ok(serde_json::Value::Array(frame)) = serde_json::from_slice(line) else {
        return (None, false);
    };
    let args = frame.get(2);
    let ticket = args
        .and_then(|a| a.get("resume"))
        .and_then(|t| t.as_str())
        .map(str::to_owned);
    let resumed = args.and_then(|a| a.get("resumed")) == Some(&serde_json::Value::Bool(true));
    (ticket, resumed)
}

/// Reads until a RESUME frame (a ticket renewed after a SUBSCRIBE), looking first at `held`
/// (lines that already came); its ticket.
pub async fn next_ticket(
    ws: &mut Link,
    lines: &mut LineBuf,
    held: &[Vec<u8>],
    deadline: Instant,
) -> Result<String, String> {
    if let Some(t) = held
        .iter()
        .filter(|l| rtjp_name(l) == Some("RESUME"))
        .find_map(|l| ticket_of(l).0)
    {
        return Ok(t);
    }
    let mut ticket = None;
    let mut rest = Vec::new();
    recv_until(ws, lines, deadline, &mut rest, |line| {
        if rtjp_name(line) == Some("RESUME") {
            ticket = ticket_of(line).0;
            Step::Done
        } else {
            Step::Continue
        }
    })
    .await?;
    ticket.ok_or_else(|| "RESUME without a ticket".to_owned())
}

async fn recv_until(
    ws: &mut Link,
    lines: &mut LineBuf,
    deadline: Instant,
    leftover: &mut Vec<Vec<u8>>,
    mut step: impl FnMut(&[u8]) -> Step,
) -> Result<(), String> {
    let mut done = false;
    let mut fail = None;
    // Bounded by the deadline.
    loop {
        if let Some(data) = recv_data(ws, deadline).await? {
            lines.feed(&data, |line| {
                if done || fail.is_some() {
                    leftover.push(line.to_vec());
                    return;
                }
                match step(line) {
                    Step::Continue => {}
                    Step::Done => done = true,
                    Step::Fail(e) => fail = Some(e),
                }
            });
        }
        if let Some(e) = fail {
            return Err(e);
        }
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_names() {
        let line = br#"[7, "PUBLISH", {"channel_name": "b", "payload": {"t": 123, "s": 45, "p": "xx"}, "datetime": "2020", "user": null}]"#;
        assert_eq!(rtjp_name(line), Some("PUBLISH"));
        assert_eq!(Proto::Hookbox.data_stamp(line), Some((123, 45)));
        assert_eq!(
            payload_stamp(make_payload(9, 8, 100).as_bytes()),
            Some((9, 8))
        );
        assert_eq!(make_payload(1, 2, 100).len(), 100);
    }

    #[test]
    fn lines_across_messages() {
        let mut lb = LineBuf::default();
        let mut got = Vec::new();
        lb.feed(b"a\r\nb", |l| got.push(l.to_vec()));
        lb.feed(b"c\r\n\r\nd\r\n", |l| got.push(l.to_vec()));
        assert_eq!(got, vec![b"a".to_vec(), b"bc".to_vec(), b"d".to_vec()]);
    }
}
