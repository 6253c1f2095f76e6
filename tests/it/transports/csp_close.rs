//! How a CSP session ends (§3.2): the close endpoint, the client's and the server's null packet,
//! expiry of an abandoned session (and a waiting comet keeping it alive), a client vanishing during
//! a comet, and an unfinished frame over the size limit.
//!
//! Waiting is on responses and recorded webhooks only. Long-poll timeouts are configured small
//! where a test needs an empty batch, and only the content is asserted, never the time taken.

use crate::common;
use common::csp::*;
use common::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

// ---------------------------------------------------------------------------------------------
// Close: the close endpoint, the null packets

#[tokio::test]
async fn close_endpoint_runs_the_cascade_and_queues_the_null_packet() {
    let s = Server::start().await;
    let c = Csp::subscribed(&s, "ivan", "room").await;
    assert_eq!(c.acked, 2);
    let r = c.post("close", "", "").await;
    assert_eq!(r.ok(), "(\"OK\")");
    assert_eq!(r.content_type.as_deref(), Some(JS));
    expect_cascade(&s, "ivan", "room").await;
    // The server's null packet follows the acknowledged ones; nothing after the close.
    assert_eq!(c.post("comet", "a=2", "").await.ok(), "([[3, 0, null]])");
    // The client answers with its own null packet, acknowledging the server's.
    assert_eq!(
        c.post("send", "a=3", "[[3, 0, null]]").await.ok(),
        "(\"OK\")"
    );
    assert_eq!(c.post("comet", "a=3&du=0", "").await.ok(), "([])");
    assert!(s.web.drain().await.is_empty());
}

#[tokio::test]
async fn client_null_packet_runs_the_cascade() {
    let s = Server::start().await;
    let c = Csp::subscribed(&s, "judy", "room").await;
    assert_eq!(c.send_raw("[[3, 0, null]]").await.ok(), "(\"OK\")");
    expect_cascade(&s, "judy", "room").await;
    assert_eq!(c.post("comet", "a=2", "").await.ok(), "([[3, 0, null]])");
    // Acknowledging the null packet (as every later request of the client does).
    assert_eq!(c.post("comet", "a=3&du=0", "").await.ok(), "([])");
    assert_eq!(c.post("send", "a=3", "[]").await.ok(), "(\"OK\")");
}

#[tokio::test]
async fn server_side_disconnect_sends_the_null_packet() {
    let s = Server::start().await;
    let mut c = Csp::subscribed(&s, "quinn", "room").await;
    let r = s.api_ok("disconnect", &[("name", "quinn")]).await;
    assert_eq!(r, json!({"connections": 1}));
    expect_cascade(&s, "quinn", "room").await;
    // Whatever frames were queued come first; the null packet ends the session.
    while !c.closed_by_server {
        c.comet().await;
    }
    assert!(
        c.frames.iter().all(|(_, name, _)| name != "PUBLISH"),
        "{:?}",
        c.frames
    );
}

// ---------------------------------------------------------------------------------------------
// Expiry and abandoned sessions

#[tokio::test]
async fn abandoned_session_expires_with_the_disconnect_cascade() {
    let s = Server::start_with(|c| c.csp_session_timeout = Duration::from_millis(500)).await;
    let c = Csp::subscribed(&s, "nina", "room").await;
    // No more requests: the session is reclaimed with the usual cascade, in order.
    expect_cascade(&s, "nina", "room").await;
    for endpoint in ["comet", "send", "close"] {
        c.post(endpoint, "a=2", "[]")
            .await
            .assert_error(404, NOT_FOUND_BODY);
    }
}

#[tokio::test]
async fn a_waiting_comet_keeps_the_session_alive() {
    // The long-poll (1.5 s) outlasts the idle timeout (0.5 s): a request in flight is activity.
    let s = Server::start_with(|c| {
        c.csp_session_timeout = Duration::from_millis(500);
        c.csp_poll_timeout = Duration::from_millis(1500);
    })
    .await;
    let c = Csp::connected(&s, "olga").await;
    assert_eq!(c.post("comet", "a=1", "").await.ok(), "([])");
    assert_eq!(c.post("comet", "a=1&du=0", "").await.ok(), "([])");
    assert!(
        s.web.drain().await.is_empty(),
        "no disconnect while polling"
    );
}

#[tokio::test]
async fn a_client_vanishing_during_a_comet_is_still_reclaimed() {
    // The browser tab closes while its long-poll is open: the request is abandoned mid-way.
    let s = Server::start_with(|c| {
        c.csp_session_timeout = Duration::from_millis(500);
        c.csp_poll_timeout = Duration::from_secs(1);
    })
    .await;
    let c = Csp::connected(&s, "vera").await;
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "POST /csp/comet?s={}&a=1&rp=cbV HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
        c.key, s.addr
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    // The comet is at the server once a send answer shows its sticky `rp`.
    while c.post("send", "", "[]").await.ok() != "cbV(\"OK\")" {}
    drop(sock);
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("vera"));
    c.post("comet", "", "")
        .await
        .assert_error(404, NOT_FOUND_BODY);
}

#[tokio::test]
async fn an_unfinished_frame_over_the_size_limit_closes_the_session() {
    // Each request is small; together they buffer more than max_message_size of one frame.
    let s = Server::start_with(|c| c.max_message_size = 1024).await;
    let mut c = Csp::connected(&s, "rosa").await;
    let big = frame(
        2,
        "PUBLISH",
        json!({"channel_name": "x", "payload": format!("\"{}\"", "y".repeat(2000))}),
    );
    c.send_text(&big[..600]).await;
    c.send_text(&big[600..1200]).await;
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("rosa"));
    while !c.closed_by_server {
        c.comet().await;
    }
    assert!(
        c.frames.is_empty(),
        "nothing delivered for the oversized frame: {:?}",
        c.frames
    );
    // The rest of the frame finds no session task; the request is still answered.
    let d = packet_list(c.next_packet, &big[1200..]);
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
}
