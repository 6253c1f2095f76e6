//! CSP comet requests (§3.2): acks and re-delivery, the long-poll and its timeout, a newer comet
//! releasing a waiting one, and padding, prebuffer and SSE suffix.
//!
//! Waiting is on responses and recorded webhooks only. Long-poll timeouts are configured small
//! where a test needs an empty batch, and only the content is asserted, never the time taken.

use crate::common;
use common::csp::*;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn packets_are_redelivered_until_acknowledged() {
    let s = Server::start().await;
    let c = Csp::handshake(&s).await;
    let d = packet_list(
        1,
        &frame(1, "CONNECT", json!({"cookie_string": "user=erin"})),
    );
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
    s.web.expect("connect").await;

    // Without `a`, the same packet comes again (a lost response loses nothing).
    let first = c.post("comet", "", "").await.ok().to_owned();
    let packets = parse_batch(&first, "", "");
    assert_eq!(packets.iter().map(|p| p.id).collect::<Vec<_>>(), [1]);
    assert_eq!(parse_frame(&packet_text(&packets[0])).1, "CONNECTED");
    assert_eq!(c.post("comet", "", "").await.ok(), first);
    assert_eq!(c.post("comet", "a=0", "").await.ok(), first);

    // `a=1` drops packet 1; the comet then waits for packet 2.
    let d = packet_list(2, &frame(2, "SUBSCRIBE", json!({"channel_name": "acks"})));
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    let second = c.post("comet", "a=1", "").await.ok().to_owned();
    let packets = parse_batch(&second, "", "");
    assert_eq!(
        packets.iter().map(|p| p.id).collect::<Vec<_>>(),
        [2],
        "{second}"
    );
    assert_eq!(parse_frame(&packet_text(&packets[0])).1, "SUBSCRIBE");
    assert_eq!(c.post("comet", "", "").await.ok(), second);

    // An ack on a send request counts too.
    s.api_ok("publish", &[("channel_name", "acks"), ("payload", "3")])
        .await;
    let third = c.post("comet", "a=2", "").await.ok().to_owned();
    assert_eq!(parse_batch(&third, "", "")[0].id, 3);
    assert_eq!(c.post("send", "a=3", "[]").await.ok(), "(\"OK\")");
    assert_eq!(c.post("comet", "du=0", "").await.ok(), "([])");
}

#[tokio::test]
async fn long_poll_returns_an_empty_batch_after_the_poll_timeout() {
    let s = Server::start_with(|c| c.csp_poll_timeout = Duration::from_millis(200)).await;
    let mut c = Csp::handshake(&s).await;
    // `du` defaults to 30 s; the configured poll timeout caps it.
    let r = c.post("comet", "", "").await;
    assert_eq!(r.ok(), "([])");
    assert_eq!(r.content_type.as_deref(), Some(JS));
    assert_eq!(c.post("comet", "du=60", "").await.ok(), "([])");
    assert_eq!(c.post("comet", "du=0", "").await.ok(), "([])");
    // bp/bs wrap an empty batch too.
    assert_eq!(c.post("comet", "bp=cb9&bs=%3B", "").await.ok(), "cb9([]);");
    assert_eq!(c.post("comet", "bp=&bs=", "").await.ok(), "([])");

    // The session still works, whatever comets time out meanwhile.
    c.send("CONNECT", json!({"cookie_string": "user=fred"}))
        .await;
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], "fred");
}

#[tokio::test]
async fn a_newer_comet_releases_a_waiting_one() {
    // The default 30 s long-poll: a waiting comet returns only when released (or data arrives).
    let s = Server::start().await;
    let c = Csp::subscribed(&s, "gina", "room").await;
    let acked = c.acked;

    // Comet A waits. It marks the session with the sticky `rp`, which send answers reveal.
    let a_url = c.url("comet", &format!("a={acked}&rp=cbA"));
    let a = tokio::spawn(fetch(c.http.post(a_url)));
    loop {
        let r = c.post("send", "", "[]").await;
        match r.ok() {
            "cbA(\"OK\")" => break,
            "(\"OK\")" => continue,
            other => panic!("unexpected send answer {other:?}"),
        }
    }
    // Comet B, long `du`: A must return `([])` now, before any data exists.
    let b_url = c.url("comet", &format!("a={acked}&rp=&du=60"));
    let b = tokio::spawn(fetch(c.http.post(b_url)));
    let a = tokio::time::timeout(GUARD, a)
        .await
        .expect("comet A was not released")
        .unwrap();
    assert_eq!(a.ok(), "([])");

    // Data arrives: B returns it.
    s.api_ok(
        "publish",
        &[("channel_name", "room"), ("payload", "\"for B\"")],
    )
    .await;
    let b = tokio::time::timeout(GUARD, b)
        .await
        .expect("comet B did not return")
        .unwrap();
    let packets = parse_batch(b.ok(), "", "");
    assert_eq!(
        packets.iter().map(|p| p.id).collect::<Vec<_>>(),
        [acked + 1]
    );
    let (_, name, args) = parse_frame(&packet_text(&packets[0]));
    assert_eq!(
        (name.as_str(), &args["payload"]),
        ("PUBLISH", &json!("for B"))
    );
}

#[tokio::test]
async fn comet_padding_prebuffer_and_sse_suffix() {
    let s = Server::start().await;
    let c = Csp::handshake(&s).await;
    assert_eq!(
        c.post("comet", "du=0&ps=3&p=pre&se=1", "").await.ok(),
        "   pre([])\r\n"
    );
    let d = packet_list(
        1,
        &frame(1, "CONNECT", json!({"cookie_string": "user=hal"})),
    );
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
    s.web.expect("connect").await;
    // Sticky: the same padding and suffix, now with the last id.
    let r = c.post("comet", "du=30", "").await;
    let body = r.ok();
    let batch = body
        .strip_prefix("   pre")
        .and_then(|b| b.strip_suffix("id: 1\r\n\r\n"))
        .unwrap_or_else(|| panic!("{body:?}"));
    let packets = parse_batch(batch, "", "");
    assert_eq!(parse_frame(&packet_text(&packets[0])).1, "CONNECTED");
    assert_eq!(
        c.post("comet", "a=1&du=0&ps=0&p=&se=0", "").await.ok(),
        "([])"
    );
}
