//! Sockets that do nothing are closed: a request whose headers never complete (slowloris), a
//! socket that sends nothing, a WebSocket that never sends CONNECT, a peer that stops answering
//! pings (its close handling runs, webhooks included), a hixie-75 connection without CONNECT;
//! while a live client, which answers the pings, stays connected past the idle bound, and so
//! does a connected hixie-75 client (that protocol has no ping; it may listen in silence).

use crate::common;
use common::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server ends the connection; returns everything it sent.
async fn read_to_end(sock: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(GUARD, sock.read(&mut buf))
            .await
            .expect("the server did not close the connection")
        {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn short_header_timeout(c: &mut hookbox::config::Config) {
    c.header_timeout = Duration::from_millis(300);
}

#[tokio::test]
async fn headers_that_never_complete_are_cut_off() {
    let s = Server::start_with(short_header_timeout).await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    // Half a request, then a byte now and then: progress does not extend the bound.
    sock.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut ended = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if sock.write_all(b"X").await.is_err() {
            ended = true;
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), sock.read(&mut probe)).await
        {
            ended = true;
            break;
        }
    }
    assert!(ended, "a trickling request was still open after 5 s");
}

#[tokio::test]
async fn a_socket_that_sends_nothing_is_closed() {
    let s = Server::start_with(short_header_timeout).await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    assert!(read_to_end(&mut sock).await.is_empty());
}

#[tokio::test]
async fn headers_sent_in_pieces_within_the_bound_are_served() {
    let s = Server::start_with(|c| c.header_timeout = Duration::from_secs(5)).await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    sock.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    sock.write_all(b"st: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = String::from_utf8(read_to_end(&mut sock).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let s = Server::start_with(|c| c.idle_timeout = Duration::from_millis(500)).await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The answer, then the end of the connection (no request follows).
    let reply = String::from_utf8(read_to_end(&mut sock).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn a_websocket_without_connect_is_closed_with_a_reason() {
    let s = Server::start_with(|c| c.connect_timeout = Duration::from_millis(300)).await;
    let mut c = s.client().await;
    assert_eq!(
        c.expect_close().await,
        Some((1008, "no CONNECT within 0.3 s".to_owned()))
    );
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn a_refused_connect_does_not_extend_the_connect_bound() {
    let s = Server::start_with(|c| c.connect_timeout = Duration::from_millis(500)).await;
    s.web
        .set("connect", Reply::deny(json!({"error": "who are you"})));
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=x"})).await;
    assert_eq!(c.expect("ERROR").await["msg"], "who are you");
    assert_eq!(
        c.expect_close().await,
        Some((1008, "no CONNECT within 0.5 s".to_owned()))
    );
}

fn fast_pings(c: &mut hookbox::config::Config) {
    c.ping_interval = Some(Duration::from_millis(200));
    c.idle_timeout = Duration::from_millis(700);
}

#[tokio::test]
async fn a_live_client_is_pinged_and_stays_past_the_idle_timeout() {
    let s = Server::start_with(fast_pings).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = s.connected("alive").await;
    join(&mut c, "room").await;
    // Ten pings answered: twice and more the idle bound, and the connection still works.
    for _ in 0..10 {
        c.next_ping().await;
    }
    let (status, body) = s
        .api(
            "publish",
            &[("channel_name", "room"), ("payload", "\"hi\"")],
        )
        .await;
    assert_eq!((status, &body[0]), (200, &json!(true)), "{body}");
    let args = c.expect("PUBLISH").await;
    assert_eq!(args["payload"], "hi");
}

#[tokio::test]
async fn a_peer_that_stops_answering_is_closed_and_its_webhooks_run() {
    let s = Server::start_with(fast_pings).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = s.connected("gone").await;
    join(&mut c, "room").await;
    s.web.drain().await;
    // The client reads nothing from now on: no pong, no bytes; its socket stays open.
    // Its close handling: the channel it left empty goes, then the disconnect.
    let destroy = s.web.expect("destroy_channel").await;
    assert_eq!(destroy.field("channel_name"), Some("room"));
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("gone"));
    drop(c);
}

async fn hixie_open(s: &Server) -> TcpStream {
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
        s.addr
    );
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(req.as_bytes()).await.unwrap();
    sock
}

/// One hixie-75 frame: 0x00, the text, 0xFF.
fn hixie_frame(text: &str) -> Vec<u8> {
    let mut msg = vec![0u8];
    msg.extend_from_slice(text.as_bytes());
    msg.push(0xff);
    msg
}

#[tokio::test]
async fn a_hixie_connection_without_connect_is_closed() {
    let s = Server::start_with(|c| c.connect_timeout = Duration::from_millis(300)).await;
    let mut sock = hixie_open(&s).await;
    let got = String::from_utf8_lossy(&read_to_end(&mut sock).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 101"), "{got}");
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn a_connected_hixie_client_may_listen_in_silence() {
    let s = Server::start_with(|c| c.idle_timeout = Duration::from_millis(300)).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut sock = hixie_open(&s).await;
    let connect = frame(1, "CONNECT", json!({"cookie_string": "user=quiet"}));
    let subscribe = frame(2, "SUBSCRIBE", json!({"channel_name": "news"}));
    sock.write_all(&hixie_frame(&connect)).await.unwrap();
    sock.write_all(&hixie_frame(&subscribe)).await.unwrap();
    s.web.expect("connect").await;
    s.web.expect("create_channel").await;
    // Silent for several idle bounds (nothing to wait for: this proves nothing closes it).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = s
        .api(
            "publish",
            &[("channel_name", "news"), ("payload", "\"still here\"")],
        )
        .await;
    assert_eq!((status, &body[0]), (200, &json!(true)), "{body}");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("still here") {
        let n = tokio::time::timeout(GUARD, sock.read(&mut buf))
            .await
            .expect("no PUBLISH")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_no_hooks(&s).await;
}
