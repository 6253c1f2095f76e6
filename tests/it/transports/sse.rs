//! Server-sent events at `/sse`: cookies to the connect and subscribe webhooks, channels from the
//! query, events with positions as ids, `Last-Event-ID` recovery (also for a user still
//! subscribed through another tab), refusals as HTTP errors, keep-alive comments, the close
//! handling when the client goes, and the limits shared with the other transports.

use crate::common;
use common::sse::{request, Item, Sse};
use common::*;
use serde_json::json;
use std::sync::Arc;

fn base(s: &Server) -> String {
    format!("http://{}", s.addr)
}

/// A server whose channels are unmoderated and keep 10 entries of history.
async fn with_history() -> Server {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"moderated": false, "history_size": 10}));
    // Channels outlive their last subscriber, so that there is something to recover.
    s.web.set("destroy_channel", Reply::deny(json!({})));
    s
}

/// The browser's reconnect: a stream on `feed` for `user` with `Last-Event-ID: last`, past its
/// connect webhook and CONNECTED.
async fn resume(s: &Server, user: &str, last: &str) -> Sse {
    let cookie = format!("user={user}");
    let mut sse = Sse::open(
        &base(s),
        "channel=feed",
        &[("cookie", &cookie), ("last-event-id", last)],
    )
    .await;
    s.web.expect("connect").await;
    sse.expect("CONNECTED").await;
    sse
}

async fn api_publish(s: &Server, channel: &str, payload: &str) {
    s.api_ok(
        "publish",
        &[("channel_name", channel), ("payload", payload)],
    )
    .await;
}

#[tokio::test]
async fn a_stream_connects_with_its_cookies_and_subscribes_through_the_webhooks() {
    let s = Server::start().await;
    let mut sse = Sse::open(
        &base(&s),
        "channel=news&payload=%7B%22tab%22%3A1%7D",
        &[("cookie", "user=ann; theme=dark")],
    )
    .await;
    let hook = s.web.expect("connect").await;
    assert_eq!(hook.header("cookie"), Some("user=ann; theme=dark"));
    assert_eq!(hook.field("payload"), Some(r#"{"tab":1}"#));
    let connected = sse.expect("CONNECTED").await;
    assert_eq!(connected["name"], "ann");
    s.web.expect("create_channel").await;
    // Channels are moderated by default: the subscribe webhook decides, with the cookie.
    let hook = s.web.expect("subscribe").await;
    assert_eq!(hook.field("channel_name"), Some("news"));
    assert_eq!(hook.header("cookie"), Some("user=ann; theme=dark"));
    let e = sse.next().await;
    assert_eq!(e.name, "SUBSCRIBE");
    assert_eq!(e.args()["channel_name"], "news");
    let epoch = e.args()["epoch"].as_str().unwrap().to_owned();
    let offset = e.args()["offset"].as_u64().unwrap();
    assert_eq!(
        e.id.as_deref(),
        Some(format!(r#"{{"news": ["{epoch}", {offset}]}}"#).as_str())
    );

    api_publish(&s, "news", r#"{"headline": "hi\nthere"}"#).await;
    let e = sse.next().await;
    assert_eq!(e.name, "PUBLISH");
    assert_eq!(e.args()["payload"], json!({"headline": "hi\nthere"}));
    assert_eq!(e.args()["offset"], offset + 1);
    assert_eq!(
        e.id.as_deref(),
        Some(format!(r#"{{"news": ["{epoch}", {}]}}"#, offset + 1).as_str())
    );
    // Private messages reach the stream too.
    let mut bob = s.connected("bob").await;
    bob.send("MESSAGE", json!({"name": "ann", "payload": "\"psst\""}))
        .await;
    assert_eq!(sse.expect("MESSAGE").await["payload"], "psst");
}

#[tokio::test]
async fn a_refused_connect_is_an_http_error_with_the_reason() {
    let s = Server::start().await;
    s.web
        .once("connect", Reply::deny(json!({"error": "log in first"})));
    let resp = request(&base(&s), "channel=news", &[]).await;
    assert_eq!(resp.status().as_u16(), 403);
    let body = resp.text().await.unwrap();
    assert!(body.contains("log in first"), "{body}");
    s.web.expect("connect").await;
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn a_refused_subscription_is_an_error_event_and_the_stream_goes_on() {
    let s = Server::start().await;
    s.web
        .once("subscribe", Reply::deny(json!({"error": "members only"})));
    let mut sse = Sse::open(
        &base(&s),
        "channel=vip&channel=lobby",
        &[("cookie", "user=ann")],
    )
    .await;
    sse.expect("CONNECTED").await;
    let error = sse.expect("ERROR").await;
    assert!(
        error["msg"].as_str().unwrap().contains("members only"),
        "{error:?}"
    );
    assert_eq!(sse.expect("SUBSCRIBE").await["channel_name"], "lobby");
}

#[tokio::test]
async fn last_event_id_recovers_exactly_the_missed_publications() {
    let s = with_history().await;
    let mut sse = Sse::open(&base(&s), "channel=feed", &[("cookie", "user=ann")]).await;
    s.web.expect("connect").await;
    s.web.expect("create_channel").await;
    sse.expect("CONNECTED").await;
    sse.expect("SUBSCRIBE").await;
    api_publish(&s, "feed", "1").await;
    assert_eq!(sse.expect("PUBLISH").await["payload"], 1);
    let last = sse.last_id.clone().expect("an id");
    // The page loses its stream; the server runs the close handling.
    drop(sse);
    s.web.expect("destroy_channel").await;
    s.web.expect("disconnect").await;
    api_publish(&s, "feed", "2").await;
    api_publish(&s, "feed", "3").await;

    // The browser reconnects with the id it last saw.
    let mut sse = resume(&s, "ann", &last).await;
    let answer = sse.expect("SUBSCRIBE").await;
    assert_eq!(answer["recovered"], true, "{answer:?}");
    assert_eq!(sse.expect("PUBLISH").await["payload"], 2);
    assert_eq!(sse.expect("PUBLISH").await["payload"], 3);
    api_publish(&s, "feed", "4").await;
    assert_eq!(sse.expect("PUBLISH").await["payload"], 4);

    // An id from another epoch (the channel was destroyed and made again) is not recovered.
    let stale = last.replace(answer["epoch"].as_str().unwrap(), "gone");
    let mut other = Sse::open(
        &base(&s),
        "channel=feed",
        &[("cookie", "user=cid"), ("last-event-id", &stale)],
    )
    .await;
    other.expect("CONNECTED").await;
    assert_eq!(other.expect("SUBSCRIBE").await["recovered"], false);
    // A garbled id is no position at all: a plain subscription.
    let mut third = Sse::open(
        &base(&s),
        "channel=feed",
        &[("cookie", "user=dan"), ("last-event-id", "{not json")],
    )
    .await;
    third.expect("CONNECTED").await;
    let plain = third.expect("SUBSCRIBE").await;
    assert!(!plain.contains_key("recovered"), "{plain:?}");
}

#[tokio::test]
async fn a_stream_that_reconnects_while_its_user_stays_subscribed_sees_each_publication_once() {
    let s = with_history().await;
    // Another tab (a WebSocket) keeps ann in the channel throughout.
    let mut tab = s.connected("ann").await;
    join(&mut tab, "feed").await;
    s.web.expect("create_channel").await;
    let mut sse = Sse::open(&base(&s), "channel=feed", &[("cookie", "user=ann")]).await;
    s.web.expect("connect").await;
    sse.expect("CONNECTED").await;
    // ann is already a member: her new connection is told by the replayed own SUBSCRIBE.
    sse.expect("SUBSCRIBE").await;
    api_publish(&s, "feed", "1").await;
    assert_eq!(sse.expect("PUBLISH").await["payload"], 1);
    let last = sse.last_id.clone().expect("an id");
    drop(sse);
    // Only the stream's connection closed: no disconnect webhook while the tab is there.
    wait_until(|| async { connections_of(&s, "ann").await == 1 }).await;
    api_publish(&s, "feed", "2").await;

    // The new stream names a moderated channel first, whose subscribe webhook the test holds:
    // meanwhile the connection (ann's, so a member of feed) receives live publications of feed
    // before feed's recovery has even been asked.
    s.web
        .once("create_channel", Reply::ok(json!({"moderated": true})));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    s.web.once("subscribe", Reply::ok(json!({})).gated(&gate));
    let mut sse = Sse::open(
        &base(&s),
        "channel=gated&channel=feed",
        &[("cookie", "user=ann"), ("last-event-id", &last)],
    )
    .await;
    s.web.expect("connect").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    sse.expect("CONNECTED").await;
    api_publish(&s, "feed", "3").await;
    assert_eq!(tab.expect("PUBLISH").await["payload"], 1);
    assert_eq!(tab.expect("PUBLISH").await["payload"], 2);
    assert_eq!(tab.expect("PUBLISH").await["payload"], 3);
    gate.add_permits(1);
    assert_eq!(sse.expect("SUBSCRIBE").await["channel_name"], "gated");
    // The live 3 was held back: the answer replays 2 and 3, once each.
    let answer = sse.expect("SUBSCRIBE").await;
    assert_eq!(answer["channel_name"], "feed");
    assert_eq!(answer["recovered"], true, "{answer:?}");
    assert_eq!(sse.expect("PUBLISH").await["payload"], 2);
    assert_eq!(sse.expect("PUBLISH").await["payload"], 3);
    api_publish(&s, "feed", "4").await;
    assert_eq!(sse.expect("PUBLISH").await["payload"], 4);
    // The tab, ann's too, was told of her new channel.
    assert_eq!(tab.expect("SUBSCRIBE").await["channel_name"], "gated");
    assert_eq!(tab.expect("PUBLISH").await["payload"], 4);
}

#[tokio::test]
async fn a_closed_stream_runs_the_close_handling_with_its_webhooks() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": true}));
    let mut sse = Sse::open(&base(&s), "channel=room", &[("cookie", "user=ann")]).await;
    s.web.expect("connect").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    sse.expect("CONNECTED").await;
    sse.expect("SUBSCRIBE").await;
    drop(sse);
    let hook = s.web.expect("unsubscribe").await;
    assert_eq!(hook.field("channel_name"), Some("room"));
    s.web.expect("destroy_channel").await;
    s.web.expect("disconnect").await;
}

#[tokio::test]
async fn shutdown_ends_the_stream_with_a_close_event() {
    let s = Server::unmoderated().await;
    let mut sse = Sse::open(&base(&s), "channel=room", &[("cookie", "user=ann")]).await;
    sse.expect("CONNECTED").await;
    sse.expect("SUBSCRIBE").await;
    s.stop();
    let events = sse.until_end().await;
    let last = events.last().expect("a close event");
    assert_eq!(last.name, "close");
    assert_eq!(last.data["reason"], "server shutting down");
    s.web.expect("connect").await;
    s.web.expect("create_channel").await;
    s.web.expect("destroy_channel").await;
    s.web.expect("disconnect").await;
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments_and_is_not_closed_as_idle() {
    let s = Server::start_with(|c| {
        c.ping_interval = Some(std::time::Duration::from_millis(50));
        c.idle_timeout = std::time::Duration::from_millis(200);
    })
    .await;
    let mut sse = Sse::open(&base(&s), "", &[("cookie", "user=ann")]).await;
    sse.expect("CONNECTED").await;
    // Enough comments to outlast the idle bound several times over: the stream stays open.
    for _ in 0..10 {
        match sse.next_item().await {
            Item::Comment(c) => assert_eq!(c, "ping"),
            other => panic!("expected a comment, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn bad_requests_and_limits_are_refused_with_their_reason() {
    let s = Server::start_with(|c| c.max_connections_per_ip = 1).await;
    let url = base(&s);
    let cases = [
        ("payload=%7Bnope", "Invalid json for payload"),
        ("channel=", "Empty channel name"),
    ];
    for (query, text) in cases {
        let resp = request(&url, query, &[("cookie", "user=ann")]).await;
        assert_eq!(resp.status().as_u16(), 400, "{query}");
        assert_eq!(resp.text().await.unwrap(), text);
    }
    let many: Vec<String> = (0..101).map(|i| format!("channel=c{i}")).collect();
    let resp = request(&url, &many.join("&"), &[]).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.text().await.unwrap(),
        "Too many channels (at most 100 per stream)"
    );
    let long = format!("channel={}", "x".repeat(2049));
    let resp = request(&url, &long, &[]).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.text().await.unwrap(),
        "Channel names too long (at most 2048 bytes in all)"
    );
    // A stream is a connection for --max-connections-per-ip. That refusal may pass: it is a
    // stream that says why and has the browser retry later (an HTTP error would stop it).
    let mut first = Sse::open(&url, "", &[("cookie", "user=ann")]).await;
    first.expect("CONNECTED").await;
    let mut refused = Sse::open(&url, "", &[("cookie", "user=bob")]).await;
    match refused.next_item().await {
        Item::Retry(ms) => assert_eq!(ms, 5000),
        other => panic!("expected retry, got {other:?}"),
    }
    let events = refused.until_end().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].name, "close");
    assert_eq!(
        events[0].data["reason"],
        "Too many connections from your address"
    );
    // HEAD is not a stream.
    let head = http_client()
        .head(format!("{url}/sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 405);
    s.web.expect("connect").await;
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn without_an_allow_list_only_pages_on_hookboxs_own_origin_may_listen() {
    let s = Server::start().await;
    // The stream carries the browser's real cookies (HttpOnly ones included): a page on another
    // origin must be listed in --allowed-origins.
    let resp = request(
        &base(&s),
        "",
        &[("origin", "https://evil.example"), ("cookie", "user=ann")],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(resp.text().await.unwrap(), "Origin not allowed");
    assert_no_hooks(&s).await;
    let own = base(&s);
    let mut sse = Sse::open(&base(&s), "", &[("origin", &own), ("cookie", "user=ann")]).await;
    sse.expect("CONNECTED").await;
    s.web.expect("connect").await;
}

#[tokio::test]
async fn an_origin_off_the_allow_list_is_refused_and_an_allowed_one_gets_cors_headers() {
    let s =
        Server::start_with(|c| c.allowed_origins = Some(vec!["https://app.example".to_owned()]))
            .await;
    let resp = request(&base(&s), "", &[("origin", "https://evil.example")]).await;
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(resp.text().await.unwrap(), "Origin not allowed");
    let resp = request(
        &base(&s),
        "",
        &[("origin", "https://app.example"), ("cookie", "user=ann")],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    s.web.expect("connect").await;
    assert_no_hooks(&s).await;
}
