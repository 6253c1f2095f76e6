//! The second audit's attacks on the HTTP surface and the console, each run as the attack was:
//!
//! - a kept-alive connection whose next request's headers trickle in forever, on every listener
//!   (each request's headers have a deadline), and headers of any size (capped, 431);
//! - many plain HTTP connections from one address (capped per address; a WebSocket leaves the
//!   count);
//! - `/sse` opened by another site's `<img>` (no `Origin`, `Sec-Fetch-Site: cross-site`) on the
//!   visitor's cookie;
//! - locking the operator out of the console with wrong passwords from many addresses, and
//!   IPv6 clients escaping per-address bounds with the rest of their /64;
//! - a console cookie without `Secure` behind a forged `X-Forwarded-Proto`, framing the console;
//! - forged log lines through a channel name.

use crate::common;
use common::binary::Running;
use common::sse;
use common::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response off `sock`: its head (status line and headers) and its body by
/// Content-Length.
async fn read_response(sock: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(GUARD, sock.read(&mut chunk))
            .await
            .expect("hang guard: no response")
            .expect("read");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    (head, body)
}

/// Whether the server ends `sock` (EOF or a reset) within the hang guard, while `trickle` is
/// written a piece at a time, one every 100 ms (the attack's pace, not a synchronisation).
async fn closed_while_trickling(sock: &mut TcpStream, trickle: &[u8]) -> bool {
    let deadline = tokio::time::Instant::now() + GUARD;
    let mut pieces = trickle.iter().cycle();
    loop {
        let mut byte = [0u8; 1];
        tokio::select! {
            r = sock.read(&mut byte) => return matches!(r, Ok(0) | Err(_)),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let piece = [*pieces.next().unwrap()];
                if sock.write_all(&piece).await.is_err() {
                    return true;
                }
            }
            _ = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

/// Attack: one complete request on a kept-alive connection, then the next request's headers a
/// byte at a time, forever (the deadline used to hold only for a connection's first request).
/// On the main listener and on a separate Web API listener, the connection is closed at the
/// header deadline.
#[tokio::test]
async fn a_kept_alive_connections_next_headers_must_come_in_time() {
    let s = Server::start_with(|c| {
        c.header_timeout = Duration::from_secs(1);
        c.web_api = Some(("127.0.0.1".to_owned(), 0));
    })
    .await;
    for (addr, path) in [
        (s.addr, "/healthz"),
        (s.addr, "/admin/"),
        (s.api_addr, "/web/get_server_info?security_token=secret"),
    ] {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
        sock.write_all(request.as_bytes()).await.unwrap();
        let (head, _) = read_response(&mut sock).await;
        assert!(head.starts_with("HTTP/1.1 "), "{head}");
        sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\n")
            .await
            .unwrap();
        assert!(
            closed_while_trickling(&mut sock, b"X-Slow: aaaa\r\n").await,
            "{addr}{path}: the second request's headers trickled on"
        );
    }
}

/// Attack: request headers of hundreds of kilobytes (each parked socket used to hold ~400 KB).
/// Past `--max-header-bytes`: 431.
#[tokio::test]
async fn oversized_headers_are_refused() {
    let s = Server::start().await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    let big = "a".repeat(40 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n");
    sock.write_all(request.as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut sock).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    // Headers within the bound are fine.
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    let fine = "a".repeat(16 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: h\r\nX-Fine: {fine}\r\n\r\n");
    sock.write_all(request.as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut sock).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// A kept-alive connection that has completed one request (so the server has surely taken it).
async fn open_kept_alive(s: &Server) -> TcpStream {
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut sock).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    sock
}

/// Whether a new connection from this address is served.
async fn served(s: &Server) -> bool {
    let Ok(mut sock) = TcpStream::connect(s.addr).await else {
        return false;
    };
    if sock
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(GUARD, sock.read_to_end(&mut answer)).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// Attack: hundreds of plain HTTP connections from one address, each parking a buffer. Past
/// `--max-http-connections-per-ip` a new one is closed at once; one that becomes a WebSocket
/// leaves the count (the connection quota counts it then).
#[tokio::test]
async fn plain_http_connections_are_capped_per_address() {
    let s = Server::start_with(|c| {
        // Loopback would otherwise be a trusted proxy, whose connections carry many clients.
        c.trusted_proxies = Vec::new();
        c.max_http_connections_per_ip = 2;
    })
    .await;
    let first = open_kept_alive(&s).await;
    // A request that merely names /ws, without upgrading, stays a plain HTTP connection.
    let mut second = TcpStream::connect(s.addr).await.unwrap();
    second
        .write_all(b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut second).await;
    assert!(head.starts_with("HTTP/1.1 4"), "{head}");
    assert!(!served(&s).await, "a third connection is refused");
    drop(first);
    wait_until(|| served(&s)).await;
    // With one plain connection held, a WebSocket and another plain connection both fit: the
    // WebSocket is counted by the connection quota, not here. (Retried while the connection
    // just served still holds its place.)
    let url = format!("ws://{}/ws", s.addr);
    let deadline = tokio::time::Instant::now() + GUARD;
    let mut ws = loop {
        if let Ok(ws) = Client::try_open_with_headers(&url, &[]).await {
            break ws;
        }
        assert!(tokio::time::Instant::now() < deadline, "no WebSocket");
        tokio::task::yield_now().await;
    };
    ws.send("CONNECT", json!({"cookie_string": "user=ann"}))
        .await;
    ws.expect("CONNECTED").await;
    assert!(served(&s).await, "the WebSocket left the plain HTTP count");
}

/// Attack: `<img src="https://hookbox/sse?channel=evil-room&payload=…">` on another site. The
/// browser sends the visitor's cookie, no `Origin`, and `Sec-Fetch-Site: cross-site` (over https),
/// an image's `Accept`, its page as `Referer`: refused before the connect webhook. Same-origin
/// pages and non-browser clients that ask for an event stream still listen.
#[tokio::test]
async fn sse_requests_another_site_makes_without_origin_are_refused() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    let base = format!("http://{}", s.addr);
    let cases: [&[(&str, &str)]; 4] = [
        // Over https (and localhost) browsers say where a request comes from.
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "no-cors"),
        ],
        &[
            ("Sec-Fetch-Site", "same-site"),
            ("Sec-Fetch-Mode", "no-cors"),
        ],
        // Over plain http they do not: an image does not ask for an event stream, and a
        // Referer on another host gives the other site away.
        &[("Accept", "image/avif,image/webp,*/*")],
        &[("Referer", "http://evil.example/page.html")],
    ];
    for headers in cases {
        let mut all = vec![("Cookie", "user=victim")];
        all.extend_from_slice(headers);
        let resp = sse::request(&base, "channel=evil-room&payload=%22x%22", &all).await;
        assert_eq!(resp.status().as_u16(), 403, "{headers:?}");
        assert_eq!(resp.text().await.unwrap(), "Origin not allowed");
    }
    assert_no_hooks(&s).await;
    let mut open = Vec::new();
    for (headers, user) in [
        (
            vec![("Cookie", "user=ann"), ("Sec-Fetch-Site", "same-origin")],
            "ann",
        ),
        (
            vec![("Cookie", "user=bob"), ("Referer", &format!("{base}/page"))],
            "bob",
        ),
    ] {
        let mut stream = sse::Sse::open(&base, "", &headers).await;
        assert_eq!(stream.expect("CONNECTED").await["name"], user);
        s.web.expect("connect").await;
        open.push(stream);
    }
}

/// POSTs a console login with `password`, as if from `address` (through the trusted loopback
/// proxy); the status.
async fn login_from(s: &Server, address: &str, password: &str) -> u16 {
    http_client()
        .post(format!("http://{}/admin/api/login", s.addr))
        .header("X-Hookbox-Admin", "1")
        .header("X-Forwarded-For", address)
        .header("Content-Type", "application/json")
        .body(json!({ "password": password }).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Attack: ten addresses send five wrong passwords each (a global cap used to refuse everyone,
/// the operator included, for as long as the attack went on). The operator, from an address of
/// their own, still logs in; each guesser is held back.
#[tokio::test]
async fn guessers_cannot_lock_the_operator_out_of_the_console() {
    let s = Server::start_with(|c| c.admin_password = Some("pw".to_owned())).await;
    for i in 0..10 {
        for _ in 0..5 {
            assert_eq!(
                login_from(&s, &format!("203.0.113.{i}"), "guess").await,
                401
            );
        }
    }
    assert_eq!(login_from(&s, "203.0.113.0", "pw").await, 429);
    assert_eq!(login_from(&s, "198.51.100.1", "pw").await, 200);
    // IPv6: the whole /64 is one address.
    let s = Server::start_with(|c| c.admin_password = Some("pw".to_owned())).await;
    for i in 1..=5 {
        assert_eq!(
            login_from(&s, &format!("2001:db8::{i}"), "guess").await,
            401
        );
    }
    assert_eq!(login_from(&s, "2001:db8::ffff", "pw").await, 429);
    assert_eq!(login_from(&s, "2001:db8:0:1::1", "pw").await, 200);
}

/// Attack: an IPv6 client takes a new address of its /64 for every connection, escaping
/// `--max-connections-per-ip`. The /64 is one address.
#[tokio::test]
async fn ipv6_clients_are_counted_by_their_slash_64() {
    let s = Server::start_with(|c| c.max_connections_per_ip = 2).await;
    let url = format!("ws://{}/ws", s.addr);
    let _a = Client::open_with_headers(&url, &[("X-Forwarded-For", "2001:db8::1")]).await;
    let _b = Client::open_with_headers(&url, &[("X-Forwarded-For", "2001:db8::2")]).await;
    let refused = Client::try_open_with_headers(&url, &[("X-Forwarded-For", "2001:db8::3")]).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("expected a 503, got {:?}", other.map(|_| "a connection")),
    }
    Client::open_with_headers(&url, &[("X-Forwarded-For", "2001:db8:0:1::1")]).await;
}

/// The console's cookie is `Secure` when a trusted proxy says the page came over https, and not
/// because any client says so; the console cannot be framed by another page.
#[tokio::test]
async fn the_console_cookie_follows_only_trusted_proxies_and_the_page_cannot_be_framed() {
    let s = Server::start_with(|c| c.admin_password = Some("pw".to_owned())).await;
    let login = |proto: &'static str| {
        http_client()
            .post(format!("http://{}/admin/api/login", s.addr))
            .header("X-Hookbox-Admin", "1")
            .header("X-Forwarded-Proto", proto)
            .header("Content-Type", "application/json")
            .body(json!({"password": "pw"}).to_string())
            .send()
    };
    let resp = login("https").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .ends_with("; Secure"));
    let page = http_client()
        .get(format!("http://{}/admin/", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");

    // Loopback is not trusted here: its X-Forwarded-Proto is the client's say.
    let s = Server::start_with(|c| {
        c.admin_password = Some("pw".to_owned());
        c.trusted_proxies = Vec::new();
    })
    .await;
    let resp = http_client()
        .post(format!("http://{}/admin/api/login", s.addr))
        .header("X-Hookbox-Admin", "1")
        .header("X-Forwarded-Proto", "https")
        .header("Content-Type", "application/json")
        .body(json!({"password": "pw"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(!resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
}

/// Attack: a channel name holding a newline and a line of the attacker's, so that the log shows
/// a forged warning. Every log field is escaped: the name stays on its line.
#[tokio::test]
async fn channel_names_cannot_forge_log_lines() {
    let web = WebApp::start().await;
    web.channel_options(json!({"moderated": false}));
    let port = web.addr.port().to_string();
    let server = Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--cbport",
            &port,
            "-L",
            "DEBUG",
        ],
        &[],
    );
    // At DEBUG, the engine may log before the startup line.
    let hookbox_port = loop {
        let line = server.next_line();
        if let Some(port) = common::binary::parse_listening(&line, "hookbox", "127.0.0.1") {
            break port;
        }
    };
    let forged = "2026-01-01 00:00:00,000 - hookbox - WARNING - admin login with a wrong password from 6.6.6.6";
    let mut c = Client::open(&format!("ws://127.0.0.1:{hookbox_port}/ws")).await;
    c.send("CONNECT", json!({"cookie_string": "user=eve"}))
        .await;
    c.expect("CONNECTED").await;
    c.send(
        "SUBSCRIBE",
        json!({"channel_name": format!("x\n{forged}\r\n\u{2028}y")}),
    )
    .await;
    let own = c.expect("SUBSCRIBE").await;
    assert!(own["channel_name"].as_str().unwrap().starts_with("x\n"));
    let line = loop {
        let line = server.next_line();
        if line.contains("6.6.6.6") {
            break line;
        }
    };
    assert!(!line.starts_with("2026-01-01"), "a forged line: {line}");
    assert!(
        line.contains(&format!("x\\n{forged}\\r\\n\\u{{2028}}y")),
        "{line}"
    );
    let _ = server.stop("TERM").await;
}
