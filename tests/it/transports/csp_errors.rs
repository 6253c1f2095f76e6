//! CSP refusals (§3.2): unknown endpoints and sessions, malformed sends refused without effect,
//! the session cap, and the admin prefix not reaching client sessions.

use crate::common;
use common::csp::*;
use common::*;
use serde_json::json;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Bad input

#[tokio::test]
async fn unknown_endpoint_and_unknown_session() {
    let s = Server::start().await;
    let http = http_client();
    let base = Csp::base(&s);
    // `reflect` is not served (an echo on hookbox's origin would be a script gadget).
    for r in [
        fetch(http.get(format!("{base}/bogus"))).await,
        fetch(http.post(format!("{base}/bogus?s={NO_SESSION}")).body("x")).await,
        fetch(http.get(format!("{base}/reflect?d=alert(1)"))).await,
    ] {
        r.assert_error(404, "");
    }
    for endpoint in ["comet", "send", "close"] {
        let r = fetch(
            http.post(format!("{base}/{endpoint}?s={NO_SESSION}&a=0"))
                .body("[[1, 0, \"x\"]]"),
        )
        .await;
        r.assert_error(404, NOT_FOUND_BODY);
        let r = fetch(http.get(format!(
            "{base}/{endpoint}?s={NO_SESSION}&d=%5B%5D&rp=cb1&rs=%3B"
        )))
        .await;
        r.assert_error(404, NOT_FOUND_BODY);
        let r = fetch(http.get(format!("{base}/{endpoint}"))).await;
        r.assert_error(404, NOT_FOUND_BODY);
        // The status line carries the reason the original sent.
        let line = status_line(&s, "POST", &format!("/csp/{endpoint}?s={NO_SESSION}")).await;
        assert_eq!(line, "HTTP/1.1 404 Session not found");
    }
    // A live session's key does not make another session's key valid.
    let c = Csp::handshake(&s).await;
    let other: String = c.key.chars().rev().collect();
    assert_ne!(other, c.key);
    fetch(http.post(format!("{base}/comet?s={other}")))
        .await
        .assert_error(404, NOT_FOUND_BODY);
    assert_eq!(c.post("comet", "du=0", "").await.ok(), "([])");
}

#[tokio::test]
async fn malformed_sends_are_refused_without_effect() {
    let s = Server::start_with(|c| {
        c.csp_max_sessions = 2;
        c.max_message_size = 1024;
    })
    .await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = Csp::connected(&s, "kim").await;
    let subscribe = |channel: &str| frame(2, "SUBSCRIBE", json!({"channel_name": channel}));

    let cases: Vec<(String, &str)> = vec![
        ("[[2, 1, \"!!!\"]]".into(), "'Invalid base64 in packet 2'"),
        ("[[2, 1, \"YWJj*\"]]".into(), "'Invalid base64 in packet 2'"),
        (
            "hello".into(),
            "'Invalid packet list (expected a JSON list of [id, encoding, data])'",
        ),
        (
            "{\"a\": 1}".into(),
            "'Invalid packet list (expected a JSON list of [id, encoding, data])'",
        ),
        ("[[2, 1]]".into(), "'Invalid packet 0'"),
        ("[[2, 7, \"x\"]]".into(), "'Invalid packet 0'"),
        ("[[\"2\", 0, \"x\"]]".into(), "'Invalid packet 0'"),
        // A gap: id 3 after 1.
        (
            packet_list(3, &subscribe("gap")),
            "'Packet id 3 out of order (expected 2)'",
        ),
        // A good packet followed by a gap: the whole request is refused, nothing delivered.
        (
            json!([[2, 1, b64(&subscribe("partial"))], [4, 0, "x"]]).to_string(),
            "'Packet id 4 out of order (expected 3)'",
        ),
    ];
    for (d, body) in &cases {
        let r = c.send_raw(d).await;
        r.assert_error(400, body);
        assert_eq!(r.content_type.as_deref(), Some("text/html"), "{d}");
    }

    // Missing `d`: an empty POST body, or a GET without it.
    c.post("send", "a=1", "")
        .await
        .assert_error(400, "'Missing packet data (d)'");
    c.get("send", "a=1")
        .await
        .assert_error(400, "'Missing packet data (d)'");
    // Not UTF-8.
    c.post("send", "", vec![0xffu8, 0xfe, b'['])
        .await
        .assert_error(400, "'Request body is not UTF-8'");
    // A huge body (over twice the message size limit).
    let huge = format!("[[2, 0, \"{}\"]]", "x".repeat(4 * 1024));
    c.send_raw(&huge)
        .await
        .assert_error(413, "'Request body too large'");

    // A duplicate (id ≤ last) is skipped silently: no second CONNECT (which would answer ERROR).
    let again = packet_list(
        1,
        &frame(1, "CONNECT", json!({"cookie_string": "user=kim"})),
    );
    assert_eq!(c.send_raw(&again).await.ok(), "(\"OK\")");

    // The session survived all of it: packet 2 is still the next one, and the next frame the
    // server sends answers it (a re-run CONNECT would have answered first).
    c.send_text(&subscribe("ok")).await;
    s.web.expect("create_channel").await;
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "ok");
    assert!(
        s.web.drain().await.is_empty(),
        "no hook from a refused packet"
    );

    // No session leaked: exactly one more fits under the cap of two (a connected one: sessions
    // that never completed a CONNECT are evicted to make room).
    let second = Csp::connected(&s, "lou").await;
    let r = Csp::handshake_request(&s).await;
    r.assert_error(503, "'Too many sessions'");
    let acked = format!("a={}&du=0", second.acked);
    assert_eq!(second.post("comet", &acked, "").await.ok(), "([])");
}

// ---------------------------------------------------------------------------------------------
// The session cap, the admin prefix

#[tokio::test]
async fn session_cap_refuses_handshakes_until_a_session_is_reclaimed() {
    let s = Server::start_with(|c| {
        c.csp_max_sessions = 2;
        c.csp_session_timeout = Duration::from_secs(1);
    })
    .await;
    let http = http_client();
    let handshake_url = format!("{}/handshake?ct=application%2Fjavascript", Csp::base(&s));
    let a = Csp::connected(&s, "leo").await;
    let b = Csp::connected(&s, "max").await;
    let r = Csp::handshake_request(&s).await;
    r.assert_error(503, "'Too many sessions'");
    let r = fetch(http.get(format!("{handshake_url}&d=%7B%7D&rp=cb1&rs=%3B"))).await;
    r.assert_error(503, "'Too many sessions'");

    // Both sessions are abandoned; their disconnects prove they were reclaimed.
    let mut gone = vec![
        s.web
            .expect("disconnect")
            .await
            .field("name")
            .unwrap()
            .to_owned(),
        s.web
            .expect("disconnect")
            .await
            .field("name")
            .unwrap()
            .to_owned(),
    ];
    gone.sort();
    assert_eq!(gone, ["leo", "max"]);
    for c in [&a, &b] {
        c.post("comet", "", "")
            .await
            .assert_error(404, NOT_FOUND_BODY);
    }
    let mut c = Csp::handshake(&s).await;
    c.send("CONNECT", json!({"cookie_string": "user=mia"}))
        .await;
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], "mia");
}

#[tokio::test]
async fn admin_csp_does_not_reach_client_sessions() {
    let s = Server::start_with(|c| c.csp_max_sessions = 1).await;
    let http = http_client();
    let admin = format!("http://{}/admin/csp", s.addr);
    let r = fetch(
        http.post(format!("{admin}/handshake?ct=application%2Fjavascript"))
            .body("{}"),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = fetch(http.get(format!("{admin}/handshake?d=%7B%7D&rp=cb1&rs=%3B"))).await;
    assert_eq!(r.status, 404, "{r:?}");

    // The one allowed client session is still free; a client key means nothing under /admin.
    let c = Csp::connected(&s, "pete").await;
    let r = fetch(http.post(format!("{admin}/comet?s={}&a=0", c.key))).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = fetch(http.post(format!("{admin}/close?s={}", c.key))).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = fetch(http.post(format!("{}/handshake", Csp::base(&s))).body("{}")).await;
    r.assert_error(503, "'Too many sessions'");
    // The client session was not closed through /admin.
    assert_eq!(c.post("comet", "a=1&du=0", "").await.ok(), "([])");
    assert!(s.web.drain().await.is_empty());
}

/// A packet larger than `--max-message-size` is refused with an ERROR that says why, and the
/// session goes on (as on a WebSocket).
#[tokio::test]
async fn a_packet_over_the_limit_is_refused_with_an_error() {
    let s = Server::start_with(|c| c.max_message_size = 1024).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = Csp::connected(&s, "big").await;
    let big = frame(
        9,
        "PUBLISH",
        json!({"channel_name": "ch", "payload": format!("\"{}\"", "a".repeat(2000))}),
    );
    c.send_text(&big).await;
    let error = c.expect("ERROR").await;
    let msg = error["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("Message too large: ")
            && msg.ends_with(" bytes (at most 1024); it was not handled"),
        "{msg}"
    );
    c.send("SUBSCRIBE", json!({"channel_name": "ch"})).await;
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "ch");
}
