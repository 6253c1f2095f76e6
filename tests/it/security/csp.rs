//! Attacks on the Comet Session Protocol transport and the HTTP surface, each reproduced and held
//! to its bounded outcome:
//!
//! - memory amplification through echoed frame names and through many comets that never read
//!   (ERROR texts cut; one comet reply carrying packets in flight per session; packets acked
//!   mid-write still counted against the session's budget);
//! - locking other clients out by filling the session table (per-address quota, eviction of
//!   sessions that never completed CONNECT, a short life for unconnected ones, `X-Forwarded-For`
//!   believed only from trusted proxies);
//! - script gadgets on hookbox's origin (JSONP wrappers limited to identifiers and `;`, no
//!   `reflect`, `X-Content-Type-Options: nosniff` on every response).
//!
//! Waiting is on responses and webhooks only. Where a comet reply must be stuck mid-write, a raw
//! socket with a tiny receive buffer stops reading, and the backlog is made larger than everything
//! the kernel and the HTTP layer can buffer, so the write cannot finish by itself.

use crate::common;
use common::csp::*;
use common::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client, to hold a response half-read

/// The status and headers of a response read off a raw socket, and the bytes read past them.
struct RawHead {
    status: u16,
    headers: Vec<(String, String)>,
    rest: Vec<u8>,
}

impl RawHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_more(sock: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 16 * 1024];
    let n = tokio::time::timeout(GUARD, sock.read(&mut chunk))
        .await
        .expect("timed out reading a raw response")
        .expect("raw read failed");
    assert!(n > 0, "connection closed mid-response");
    buf.extend_from_slice(&chunk[..n]);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Opens a socket whose receive buffer is tiny, so the server's writes stall as soon as the
/// test stops reading.
async fn tiny_window_socket(s: &Server) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(s.addr).await.unwrap()
}

/// Sends `GET <target>` and reads only the status line and headers.
async fn send_and_read_head(sock: &mut TcpStream, host: &str, target: &str) -> RawHead {
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        read_more(sock, &mut buf).await;
    };
    let head = String::from_utf8(buf[..end].to_vec()).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    RawHead {
        status,
        headers,
        rest: buf[end + 4..].to_vec(),
    }
}

/// Reads the body that follows `head`: by Content-Length, or chunked.
async fn read_body(sock: &mut TcpStream, head: RawHead) -> String {
    let mut buf = head.rest.clone();
    if let Some(len) = head.header("content-length") {
        let len: usize = len.parse().unwrap();
        while buf.len() < len {
            read_more(sock, &mut buf).await;
        }
        assert_eq!(buf.len(), len, "bytes past the body");
        return String::from_utf8(buf).expect("UTF-8 body");
    }
    assert_eq!(
        head.header("transfer-encoding"),
        Some("chunked"),
        "neither Content-Length nor chunked: {:?}",
        head.headers
    );
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(&buf, b"\r\n") {
                break pos;
            }
            read_more(sock, &mut buf).await;
        };
        let size_text = String::from_utf8(buf[..line_end].to_vec()).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            read_more(sock, &mut buf).await;
        }
        assert_eq!(&buf[size..size + 2], b"\r\n", "chunk not followed by CRLF");
        if size == 0 {
            assert!(buf.len() == 2, "bytes past the last chunk");
            break;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
    String::from_utf8(body).expect("UTF-8 body")
}

/// Asserts a 200 answering the empty batch, quoting at most the start of anything else (a
/// backlog reply is megabytes long).
fn assert_empty_batch((status, body): (u16, String)) {
    assert_eq!(
        (status, body.as_str()),
        (200, "([])"),
        "expected the empty batch, got {} bytes: {:?}…",
        body.len(),
        &body[..body.len().min(200)]
    );
}

/// A whole raw `GET`: status and body.
async fn raw_get(s: &Server, target: &str) -> (u16, String) {
    let mut sock = tiny_window_socket(s).await;
    let head = send_and_read_head(&mut sock, &s.addr.to_string(), target).await;
    let status = head.status;
    (status, read_body(&mut sock, head).await)
}

// ---------------------------------------------------------------------------------------------
// A backlog big enough that its comet reply cannot be written while nobody reads

/// Bytes of payload per publication when building a backlog.
const BIG_PAYLOAD: usize = 512 * 1024;

/// The most a TCP send buffer may grow to here (`tcp_wmem`'s maximum), 4 MiB when unknown.
fn tcp_send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(4 << 20)
}

/// How many `BIG_PAYLOAD` publications make a comet reply that the kernel's send buffer, the
/// HTTP layer's write buffer (a few hundred KiB) and a 4 KiB receive window cannot hold together.
fn stuck_backlog_count() -> usize {
    (tcp_send_buffer_max() + (2 << 20)) / BIG_PAYLOAD + 1
}

/// Rough size of one PUBLISH frame of `BIG_PAYLOAD` bytes, which is what its CSP packet counts
/// against the session's budget; off by well under a hundred bytes.
fn big_frame_estimate() -> usize {
    BIG_PAYLOAD + 120
}

fn big_payload(tag: usize) -> String {
    json!(format!("{tag:03}{}", "x".repeat(BIG_PAYLOAD - 3))).to_string()
}

/// Publishes `count` big payloads to `channel`, tagged from `first` on.
async fn publish_big(s: &Server, channel: &str, first: usize, count: usize) {
    for tag in first..first + count {
        s.api_ok(
            "publish",
            &[("channel_name", channel), ("payload", &big_payload(tag))],
        )
        .await;
    }
}

/// Checks that `body` is a plain batch of PUBLISH packets numbered `first..`, tagged `tags`.
fn assert_big_batch(body: &str, first: u64, tags: std::ops::Range<usize>) {
    let packets = parse_batch(body, "", "");
    let ids: Vec<u64> = packets.iter().map(|p| p.id).collect();
    let want: Vec<u64> = (first..first + tags.len() as u64).collect();
    assert_eq!(ids, want);
    for (p, tag) in packets.iter().zip(tags) {
        let (_, name, args) = parse_frame(&packet_text(p));
        assert_eq!(name, "PUBLISH");
        let payload = args["payload"].as_str().unwrap();
        assert_eq!(payload.len(), BIG_PAYLOAD);
        assert!(
            payload.starts_with(&format!("{tag:03}x")),
            "packet {}",
            p.id
        );
    }
}

/// A comet on a raw tiny-window socket whose reply carries the whole backlog: only its headers
/// are read, so the server is still writing its body.
async fn stuck_comet(s: &Server, c: &Csp) -> (TcpStream, RawHead) {
    let mut sock = tiny_window_socket(s).await;
    let target = format!("/csp/comet?s={}&a={}&du=0", c.key, c.acked);
    let head = send_and_read_head(&mut sock, &s.addr.to_string(), &target).await;
    assert_eq!(head.status, 200, "{:?}", head.headers);
    assert_eq!(head.header("content-length"), None, "a streamed reply");
    (sock, head)
}

// ---------------------------------------------------------------------------------------------
// Memory amplification

/// Attack: before CONNECT, frames whose names are tens of kilobytes long, so that every ERROR
/// echoing the name makes the server queue as much again. The echoed name is cut to 64
/// characters plus `…`, and a web app's long denial text to 1000 characters plus `…`.
#[tokio::test]
async fn error_frames_do_not_echo_huge_names_or_texts() {
    let s = Server::start().await;
    let mut c = Csp::handshake(&s).await;

    // One packet, one frame, a 60 000-character name (under the 64 KiB message limit).
    let name = "X".repeat(60_000);
    let id = c.send(&name, json!({})).await;
    let args = c.expect("ERROR").await;
    assert_eq!(keys(&args), ["id", "msg"]);
    assert_eq!(args["id"], id);
    assert_eq!(
        args["msg"],
        format!("Unknown frame type {}…", "X".repeat(64))
    );
    let wire = c.raw.last().unwrap();
    assert!(wire.len() < 300, "the ERROR frame stays small: {wire:?}");

    // A name of exactly 64 characters is echoed whole.
    let id = c.send(&"Y".repeat(64), json!({})).await;
    let args = c.expect("ERROR").await;
    assert_eq!(args["id"], id);
    assert_eq!(
        args["msg"],
        format!("Unknown frame type {}", "Y".repeat(64))
    );

    // The web app's denial text is quoted, but at most 1000 characters of it.
    s.web
        .once("connect", Reply::deny(json!({"error": "E".repeat(5000)})));
    let id = c
        .send("CONNECT", json!({"cookie_string": "user=amp"}))
        .await;
    s.web.expect("connect").await;
    let args = c.expect("ERROR").await;
    assert_eq!(args["id"], id);
    assert_eq!(args["msg"], format!("{}…", "E".repeat(1000)));

    // The session is intact: the next CONNECT succeeds.
    c.send("CONNECT", json!({"cookie_string": "user=amp"}))
        .await;
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], "amp");
}

/// Attack: build a large backlog on a session, then open many sockets that each ask for it with
/// `du=0` and never read, so that each one pins a full copy. While one reply carrying packets is
/// still being written, every other comet answers the empty batch; a comet that was waiting is
/// released empty by a newer one even though packets are pending; the stuck reply, once read,
/// carries the whole backlog, and only then is it offered again (to the comet still waiting).
#[tokio::test]
async fn one_comet_reply_with_packets_in_flight_per_session() {
    let count = stuck_backlog_count();
    let s = Server::start_with(|c| c.outbox_bytes = 64 << 20).await;
    let c = Csp::subscribed(&s, "ann", "big").await;
    let first = c.acked + 1;
    publish_big(&s, "big", 0, count).await;

    // Socket 1: the server starts the reply, and its body is stuck behind the tiny window.
    let (mut stuck, head) = stuck_comet(&s, &c).await;

    // Sockets 2..=20 ask for the same backlog: each gets the empty batch.
    for _ in 2..=20 {
        let target = format!("/csp/comet?s={}&a={}&du=0", c.key, c.acked);
        assert_empty_batch(raw_get(&s, &target).await);
    }

    // A long-poll comet W waits (the reply is still being written). The sticky `rp` it sets
    // shows in send answers once it has arrived.
    let w_url = c.url("comet", &format!("a={}&du=30&rp=cbW", c.acked));
    let w = tokio::spawn(fetch(c.http.post(w_url)));
    loop {
        match c.post("send", "", "[]").await.ok() {
            "cbW(\"OK\")" => break,
            "(\"OK\")" => continue,
            other => panic!("unexpected send answer {other:?}"),
        }
    }
    // A newer comet V releases W with the empty batch, though packets are pending.
    let v_url = c.url("comet", &format!("a={}&du=30&rp=", c.acked));
    let v = tokio::spawn(fetch(c.http.post(v_url)));
    let w = tokio::time::timeout(GUARD, w)
        .await
        .expect("comet W was not released")
        .unwrap();
    assert_empty_batch((w.status, w.body));

    // Socket 1, read at last, carries every packet.
    let body = read_body(&mut stuck, head).await;
    assert_big_batch(&body, first, 0..count);

    // V waited for that write to end; nothing was acknowledged, so it gets the same packets.
    let v = tokio::time::timeout(GUARD, v)
        .await
        .expect("comet V never returned")
        .unwrap();
    assert!(
        v.ok() == body,
        "comet V: {} bytes, not the backlog",
        v.body.len()
    );
}

/// Attack: acknowledge the packets of a reply that is still being written (from another socket),
/// so that the session's budget frees them while the stuck reply still holds them, then queue
/// more. The acknowledged bytes still count until the write ends, so the session passes its
/// budget and is closed (the disconnect cascade runs, and its close packet follows the reply).
#[tokio::test]
async fn packets_acked_mid_write_still_count_against_the_budget() {
    let count = stuck_backlog_count();
    // Room for the stuck reply plus about one more packet, not two.
    let budget = (count + 1) * big_frame_estimate();
    let s = Server::start_with(|c| c.outbox_bytes = budget).await;
    let c = Csp::subscribed(&s, "ann", "big").await;
    let first = c.acked + 1;
    publish_big(&s, "big", 0, count).await;
    let (mut stuck, head) = stuck_comet(&s, &c).await;

    // Socket 2 acknowledges every packet of the stuck reply (and gets the empty batch).
    let last = first + count as u64 - 1;
    let target = format!("/csp/comet?s={}&a={last}&du=0", c.key);
    assert_empty_batch(raw_get(&s, &target).await);

    // Two more packets: alone they fit the budget easily; with the reply's they do not.
    publish_big(&s, "big", count, 2).await;
    assert_eq!(
        c.post("comet", &format!("a={last}&du=0"), "").await.ok(),
        "([])"
    );
    expect_cascade(&s, "ann", "big").await;

    // The stuck reply is still delivered whole; then the session's close packet.
    let body = read_body(&mut stuck, head).await;
    assert_big_batch(&body, first, 0..count);
    let closing = c.post("comet", &format!("a={last}&du=0"), "").await;
    let packets = parse_batch(closing.ok(), "", "");
    assert_eq!(packets.len(), 1, "{packets:?}");
    assert!(packets[0].id > last, "{packets:?}");
    assert_eq!((packets[0].encoding, &packets[0].data), (0, &json!(null)));
}

// ---------------------------------------------------------------------------------------------
// Session-table lockout

/// A handshake as if forwarded by a proxy on loopback (a trusted proxy by default) for `ip`.
async fn handshake_from(s: &Server, forwarded_for: &str) -> Resp {
    fetch(
        http_client()
            .post(format!(
                "{}/handshake?ct=application%2Fjavascript",
                Csp::base(s)
            ))
            .header("x-forwarded-for", forwarded_for)
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await
}

async fn session_from(s: &Server, forwarded_for: &str) -> Csp {
    let r = handshake_from(s, forwarded_for).await;
    let key = session_key(r.ok(), "(", ")");
    Csp::new(s, key)
}

/// Makes a session "used": it completes a CONNECT (the web app lets it in).
async fn use_session(c: &mut Csp) {
    c.send("CONNECT", json!({"cookie_string": "user=someone"}))
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], "someone");
}

async fn used_session_from(s: &Server, forwarded_for: &str) -> Csp {
    let mut c = session_from(s, forwarded_for).await;
    use_session(&mut c).await;
    c
}

/// Sends packets without connecting, as any web page can make its visitors do: one empty packet.
async fn post_empty_packet(c: &Csp) {
    assert_eq!(c.send_raw(&packet_list(1, "\r\n")).await.ok(), "(\"OK\")");
}

/// The session answers a comet, with no close packet.
async fn assert_alive(c: &Csp) {
    let r = c.post("comet", "du=0", "").await;
    let packets = parse_batch(r.ok(), "", "");
    assert!(packets.iter().all(|p| !p.data.is_null()), "{packets:?}");
}

async fn assert_gone(c: &Csp) {
    c.post("comet", "du=0", "")
        .await
        .assert_error(404, NOT_FOUND_BODY);
}

const A: &str = "198.51.100.1";
const B: &str = "198.51.100.2";
const C: &str = "198.51.100.3";
const QUOTA_BODY: &str = "'Too many sessions from your address'";
const FULL_BODY: &str = "'Too many sessions'";

/// Attack: one address opens sessions until the server's table is full, locking every other
/// client out. Its own quota stops it, while another address still gets in; prepending fake
/// addresses to `X-Forwarded-For` does not dodge the quota (the rightmost untrusted one counts).
#[tokio::test]
async fn per_address_quota_refuses_the_flooder_not_others() {
    let s = Server::start_with(|c| c.csp_max_sessions_per_ip = 3).await;
    let mine = [
        used_session_from(&s, A).await,
        used_session_from(&s, A).await,
        used_session_from(&s, A).await,
    ];
    handshake_from(&s, A).await.assert_error(503, QUOTA_BODY);
    handshake_from(&s, &format!("203.0.113.50, {A}"))
        .await
        .assert_error(503, QUOTA_BODY);

    // Another address is not affected, and A's sessions keep working.
    let other = used_session_from(&s, B).await;
    assert_alive(&other).await;
    for c in &mine {
        assert_alive(c).await;
    }
}

/// Attack: a client that is not behind a trusted proxy sends `X-Forwarded-For` with a fresh
/// address on every handshake to escape its quota. With no trusted proxies, the header is
/// ignored and every handshake counts against the socket's own address.
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_escape_the_quota() {
    let s = Server::start_with(|c| {
        c.csp_max_sessions_per_ip = 2;
        c.trusted_proxies = Vec::new();
    })
    .await;
    used_session_from(&s, A).await;
    used_session_from(&s, B).await;
    handshake_from(&s, C).await.assert_error(503, QUOTA_BODY);
}

/// Attack: handshakes that are never used, to fill an address's quota and lock out its
/// legitimate sessions (e.g. many users behind one NAT). At the quota, the oldest session that
/// never completed a CONNECT is evicted (its key answers 404) instead of refusing the handshake,
/// even if it posted packets (any page can make its visitors post empty ones); connected
/// sessions are never evicted, and only when all are connected is the handshake refused.
#[tokio::test]
async fn unused_sessions_are_evicted_oldest_first_at_the_address_quota() {
    let s = Server::start_with(|c| c.csp_max_sessions_per_ip = 3).await;
    let u1 = session_from(&s, A).await;
    post_empty_packet(&u1).await;
    let used = used_session_from(&s, A).await;
    let u3 = session_from(&s, A).await;

    let mut a4 = session_from(&s, A).await; // evicts u1, the oldest unused
    assert_gone(&u1).await;
    assert_alive(&used).await;
    assert_alive(&u3).await;

    let mut a5 = session_from(&s, A).await; // evicts u3 (older than a4), never the used one
    assert_gone(&u3).await;
    assert_alive(&used).await;
    assert_alive(&a4).await;

    use_session(&mut a4).await;
    use_session(&mut a5).await;
    handshake_from(&s, A).await.assert_error(503, QUOTA_BODY);
    for c in [&used, &a4, &a5] {
        assert_alive(c).await;
    }
}

/// Attack: fill the global session table with unused handshakes from many addresses. At the
/// global cap, the oldest unused session (of any address) is evicted before a handshake is
/// refused; only a table of used sessions refuses, with `'Too many sessions'`.
#[tokio::test]
async fn global_cap_evicts_an_unused_session_of_another_address_first() {
    let s = Server::start_with(|c| c.csp_max_sessions = 3).await;
    let idle_b = session_from(&s, B).await;
    let a1 = used_session_from(&s, A).await;
    let a2 = used_session_from(&s, A).await;

    let a3 = used_session_from(&s, A).await; // evicts B's unused session
    assert_gone(&idle_b).await;

    handshake_from(&s, C).await.assert_error(503, FULL_BODY);
    for c in [&a1, &a2, &a3] {
        assert_alive(c).await;
    }
}

/// Attack: handshakes that are never used hold table entries for the whole idle timeout. A
/// session that never completed a CONNECT (posting packets does not count) is closed after
/// `csp_handshake_timeout`, while a connected session (older than it) survives.
#[tokio::test]
async fn unused_sessions_expire_after_the_handshake_timeout() {
    let s = Server::start_with(|c| c.csp_handshake_timeout = Duration::from_millis(500)).await;
    let used = used_session_from(&s, A).await;
    let unused = session_from(&s, A).await;
    post_empty_packet(&unused).await;

    // A long-poll on the unused session returns when the server closes it: the close packet.
    let r = unused.post("comet", "du=30", "").await;
    assert_eq!(r.ok(), "([[1, 0, null]])");
    assert_gone(&unused).await;
    assert_alive(&used).await;
}

// ---------------------------------------------------------------------------------------------
// Script gadgets

/// Attack: the JSONP prefix and suffix are reflected around the server's JSON, so a page that
/// loads `/csp/handshake?rp=<script>` as a script (or a sniffing browser) runs attacker code on
/// hookbox's origin. Prefixes must be dotted identifiers, suffixes `;` or nothing, the prebuffer
/// letters, digits and spaces; anything else is ignored and the previous value stays.
#[tokio::test]
async fn jsonp_wrappers_accept_identifiers_and_semicolons_only() {
    let s = Server::start().await;
    let http = http_client();
    let base = Csp::base(&s);

    let r = fetch(http.get(format!(
        "{base}/handshake?d=%7B%7D&rp=eval(name)%3Bx&ct=application/javascript"
    )))
    .await;
    assert_eq!(r.content_type.as_deref(), Some(JS));
    session_key(r.ok(), "(", ")");

    // The original hookbox.js's JSONP form still works.
    let r = fetch(http.get(format!("{base}/handshake?d=%7B%7D&rp=cb1&rs=%3B"))).await;
    session_key(r.ok(), "cb1(", ");");
    let r = fetch(http.get(format!(
        "{base}/handshake?d=%7B%7D&rp=parent.hookbox._cb%24&rs="
    )))
    .await;
    session_key(r.ok(), "parent.hookbox._cb$(", ")");

    // A script after the call is not appended.
    let r = fetch(http.get(format!("{base}/handshake?d=%7B%7D&rp=cb1&rs=;alert(1)"))).await;
    let key = session_key(r.ok(), "cb1(", ")");

    // Sticky: a bad value later leaves the good one in place.
    let c = Csp::new(&s, key);
    assert_eq!(c.post("send", "rs=%3B", "[]").await.ok(), "cb1(\"OK\");");
    assert_eq!(
        c.post("send", "rp=alert(1)%2F%2F&rs=%29%3Balert(1)", "[]")
            .await
            .ok(),
        "cb1(\"OK\");"
    );
    for bad in [
        "bp=%3Cscript%3E",
        "bp=a..b",
        "bp=1cb",
        "bs=%3B%3C%2Fscript%3E",
        "p=%3Cscript%3E",
        "p=a%3Bb",
    ] {
        assert_eq!(
            c.post("comet", &format!("du=0&{bad}"), "").await.ok(),
            "([])",
            "{bad}"
        );
    }
    assert_eq!(
        c.post("comet", "du=0&bp=cb2&bs=%3B&p=pad%201", "")
            .await
            .ok(),
        "pad 1cb2([]);"
    );
    assert_eq!(
        c.post("comet", "du=0&bp=x%3D1&bs=alert(1)&p=%3C", "")
            .await
            .ok(),
        "pad 1cb2([]);"
    );
}

/// Checks `X-Content-Type-Options: nosniff` on the answer to `req`; returns status and body.
async fn expect_nosniff(what: &str, req: reqwest::RequestBuilder) -> (u16, String) {
    let resp = tokio::time::timeout(GUARD, req.send())
        .await
        .expect("timed out")
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what} ({status}): {:?}",
        resp.headers()
    );
    let body = tokio::time::timeout(GUARD, resp.text())
        .await
        .expect("timed out")
        .unwrap();
    (status, body)
}

/// Attack: any hookbox response whose body an attacker influences (a CSP error, a JSONP body, an
/// API answer, a 404) loaded cross-site as a script or stylesheet, relying on content sniffing.
/// Every response carries `nosniff`: CSP endpoints (answers and errors), the removed `reflect`
/// (a bare 404 now), the static client, the Web API and `/rest`, unknown paths, the WebSocket
/// endpoint, the separate Web API listener and the demo app.
#[tokio::test]
async fn every_response_says_nosniff() {
    let s = Server::start().await;
    let http = http_client();
    let base = Csp::base(&s);
    let main = format!("http://{}", s.addr);

    let (status, body) = expect_nosniff(
        "handshake",
        http.post(format!("{base}/handshake")).body("{}"),
    )
    .await;
    assert_eq!(status, 200);
    let c = Csp::new(&s, session_key(&body, "(", ")"));
    for (what, req) in [
        ("comet", http.post(c.url("comet", "du=0"))),
        ("send", http.post(c.url("send", "")).body("[]")),
        ("bad send", http.post(c.url("send", "")).body("nope")),
        ("close", http.post(c.url("close", ""))),
        (
            "preflight",
            http.request(reqwest::Method::OPTIONS, format!("{base}/send")),
        ),
        (
            "unknown session",
            http.post(format!("{base}/comet?s={NO_SESSION}")),
        ),
        ("deeper csp path", http.get(format!("{base}/comet/x"))),
        ("hookbox.js", http.get(format!("{main}/static/hookbox.js"))),
        (
            "hookbox.min.js",
            http.get(format!("{main}/static/hookbox.min.js")),
        ),
        (
            "web api",
            http.post(format!("{main}/web/get_server_info"))
                .form(&[("security_token", "secret")]),
        ),
        (
            "web api, bad token",
            http.post(format!("{main}/web/get_server_info"))
                .form(&[("security_token", "nope")]),
        ),
        (
            "web api, unknown method",
            http.get(format!("{main}/web/nope")),
        ),
        (
            "rest api",
            http.post(format!("{main}/rest/get_channel_info"))
                .form(&[("secret", "secret"), ("channel_name", "x")]),
        ),
        ("unknown path", http.get(format!("{main}/nope"))),
        ("root", http.get(format!("{main}/"))),
        ("ws without upgrade", http.get(format!("{main}/ws"))),
    ] {
        expect_nosniff(what, req).await;
    }

    // `reflect` is gone: a bare 404, so there is nothing to echo.
    let (status, body) = expect_nosniff(
        "reflect",
        http.get(format!("{base}/reflect?s={}&d=alert(1)", c.key)),
    )
    .await;
    assert_eq!((status, body.as_str()), (404, ""));

    // The WebSocket upgrade.
    let (_ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
        .await
        .expect("ws connect");
    assert_eq!(
        resp.headers()
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff")
    );

    // The separate Web API listener.
    let split = Server::start_with(|c| c.web_api = Some(("127.0.0.1".to_owned(), 0))).await;
    assert_ne!(split.api_addr, split.addr);
    let api = format!("http://{}", split.api_addr);
    for (what, req) in [
        (
            "split web api",
            http.post(format!("{api}/web/get_server_info"))
                .form(&[("security_token", "secret")]),
        ),
        (
            "split api, short path",
            http.post(format!("{api}/get_server_info"))
                .form(&[("security_token", "secret")]),
        ),
        ("split api, unknown path", http.get(format!("{api}/a/b/c"))),
    ] {
        expect_nosniff(what, req).await;
    }

    // The demo app (its own listener on loopback).
    let port = free_port();
    let _demo = Server::start_with(|c| c.demo_port = Some(port)).await;
    let (status, _) =
        expect_nosniff("demo page", http.get(format!("http://127.0.0.1:{port}/"))).await;
    assert_eq!(status, 200);
    expect_nosniff(
        "demo unknown path",
        http.get(format!("http://127.0.0.1:{port}/nope")),
    )
    .await;
}
