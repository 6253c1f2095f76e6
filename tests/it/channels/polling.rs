//! Channel polling (§9.1): simple, persistent and once modes against the in-test web app, back-off
//! recovery, and pollers that stop when their channel is destroyed or polling is switched off.
//!
//! The recording web app is a catch-all: polls arrive in `next()` like webhooks, without an
//! `action` field, so their scripted replies are keyed by the action "".

use crate::common;
use common::*;
use serde_json::{json, Value};

/// `polling` option JSON for a URL on the test web app.
fn polling(s: &Server, mode: &str, path: &str, extra: Value) -> String {
    let mut p =
        json!({"mode": mode, "url": format!("http://{}{path}", s.web.addr), "interval": 0.05});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p.to_string()
}

/// Creates a polling channel through the API (no webhook) with `moderated: false`.
async fn create_polling(s: &Server, channel: &str, polling: &str) {
    s.api_ok(
        "create_channel",
        &[
            ("channel_name", channel),
            ("moderated", "false"),
            ("polling", polling),
        ],
    )
    .await;
}

/// Subscribes a connected user through the API (no webhook) and takes the own SUBSCRIBE.
async fn subscribe(s: &Server, c: &mut Client, name: &str, channel: &str) {
    s.api_ok("subscribe", &[("channel_name", channel), ("name", name)])
        .await;
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], channel);
}

/// Creates `channel` without polling through the API (no webhook) with `moderated: false`,
/// subscribes alice's client `c`, then starts `polling` on the existing channel through
/// set_channel_options.
async fn poll_existing(s: &Server, c: &mut Client, channel: &str, polling: &str) {
    s.api_ok(
        "create_channel",
        &[("channel_name", channel), ("moderated", "false")],
    )
    .await;
    subscribe(s, c, "alice", channel).await;
    s.api_ok(
        "set_channel_options",
        &[("channel_name", channel), ("polling", polling)],
    )
    .await;
}

/// Proves no poll of `stopped` reaches the web app any more, using a second poller on `witness`
/// (same interval) as the clock: first lets two witness polls pass (absorbing a `stopped` poll
/// that was already in flight), then requires five more witness polls with no `stopped` poll.
async fn assert_stopped(s: &Server, stopped: &str, witness: &str) {
    let mut seen = 0;
    while seen < 2 {
        let r = s.web.next().await;
        if r.path == witness {
            seen += 1;
        } else {
            assert_eq!(r.path, stopped, "unexpected request {r:?}");
        }
    }
    for _ in 0..5 {
        let r = s.web.next().await;
        assert_eq!(
            r.path, witness,
            "{stopped} was polled after it should have stopped"
        );
    }
}

#[tokio::test]
async fn simple_mode_publishes_the_fetched_body() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    s.web.set("", Reply::json(json!({"temp": 21})));
    create_polling(
        &s,
        "weather",
        &polling(
            &s,
            "simple",
            "/feed?city=x",
            json!({"originator": "feeder"}),
        ),
    )
    .await;
    let poll = s.web.next().await;
    assert_eq!(
        (poll.method.as_str(), poll.path.as_str()),
        ("GET", "/feed?city=x")
    );
    assert!(poll.form.is_empty(), "{poll:?}");
    assert_eq!(poll.header("cookie"), None);

    subscribe(&s, &mut a, "alice", "weather").await;
    for _ in 0..2 {
        let args = a.expect("PUBLISH").await;
        assert_eq!(keys(&args), PUBLISH_KEYS);
        assert_eq!(args["channel_name"], "weather");
        assert_eq!(args["payload"], json!({"temp": 21}));
        assert_eq!(args["user"], "feeder");
    }
    // A body that is not JSON is published as a string.
    s.web.set("", Reply::raw(200, "plain text"));
    loop {
        let args = a.expect("PUBLISH").await;
        if args["payload"] == "plain text" {
            break;
        }
        assert_eq!(args["payload"], json!({"temp": 21}));
    }
}

#[tokio::test]
async fn simple_mode_default_originator_is_empty() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    s.web.set("", Reply::raw(200, "[1, 2]"));
    // Polling set by the create_channel webhook when a client subscribes.
    let p: Value = serde_json::from_str(&polling(&s, "simple", "/feed", json!({}))).unwrap();
    s.web
        .channel_options(json!({"moderated": false, "polling": p}));
    a.send("SUBSCRIBE", json!({"channel_name": "nums"})).await;
    a.expect("SUBSCRIBE").await;
    let args = a.expect("PUBLISH").await;
    assert_eq!(
        (args["payload"].clone(), args["user"].clone()),
        (json!([1, 2]), json!(""))
    );
}

#[tokio::test]
async fn persistent_mode_publishes_payload_and_applies_other_options() {
    let s = Server::start_with(|c| c.webhooks.webhook_secret = Some("wsecret".into())).await;
    let mut a = s.connected("alice").await;
    s.web.set(
        "",
        Reply::ok(json!({"payload": {"n": 1}, "history_size": 3, "state": {"k": 1}})),
    );
    // Polling started by set_channel_options on an existing channel.
    let p = polling(
        &s,
        "persistent",
        "/poll",
        json!({"form": {"k": "v", "n": 5}, "originator": "bot"}),
    );
    poll_existing(&s, &mut a, "p", &p).await;

    let poll = s.web.next().await;
    assert_eq!(
        (poll.method.as_str(), poll.path.as_str()),
        ("POST", "/poll")
    );
    assert_eq!(
        poll.keys(),
        ["k", "n", "secret"],
        "no action field: {poll:?}"
    );
    assert_eq!(
        (poll.field("k"), poll.field("n"), poll.field("secret")),
        (Some("v"), Some("5"), Some("wsecret"))
    );

    // The other options are applied (state → STATE_UPDATE) before the payload is published.
    let args = a.expect("STATE_UPDATE").await;
    assert_eq!(
        Value::Object(args),
        json!({"channel_name": "p", "updates": {"k": 1}, "deletes": []})
    );
    let args = a.expect("PUBLISH").await;
    assert_eq!(
        (args["payload"].clone(), args["user"].clone()),
        (json!({"n": 1}), json!("bot"))
    );
    let opts = &s.api_ok("get_channel_info", &[("channel_name", "p")]).await["options"];
    assert_eq!(opts["history_size"], 3);
    assert_eq!(opts["history"][0][0], "PUBLISH");
    assert_eq!(opts["history"][0][1]["payload"], json!({"n": 1}));
    // It keeps polling; an unchanged state sends no further STATE_UPDATE.
    let args = a.expect("PUBLISH").await;
    assert_eq!(args["payload"], json!({"n": 1}));
}

#[tokio::test]
async fn once_mode_stops_after_one_fetch() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    s.web.set("", Reply::ok(json!({"payload": "only once"})));
    poll_existing(&s, &mut a, "one", &polling(&s, "once", "/once", json!({}))).await;
    let poll = s.web.next().await;
    assert_eq!(
        (poll.method.as_str(), poll.path.as_str()),
        ("POST", "/once")
    );
    assert_eq!(poll.action(), "");
    let args = a.expect("PUBLISH").await;
    assert_eq!(
        (args["payload"].clone(), args["user"].clone()),
        (json!("only once"), json!(""))
    );

    create_polling(&s, "clock", &polling(&s, "simple", "/clock", json!({}))).await;
    for _ in 0..5 {
        assert_eq!(
            s.web.next().await.path,
            "/clock",
            "the once poller fetched again"
        );
    }
    a.assert_quiet().await;
}

#[tokio::test]
async fn failing_url_backs_off_and_recovers() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    s.web.once("", Reply::raw(500, "boom"));
    s.web.set("", Reply::json(json!("recovered")));
    poll_existing(
        &s,
        &mut a,
        "flaky",
        &polling(&s, "simple", "/flaky", json!({})),
    )
    .await;
    assert_eq!(s.web.next().await.path, "/flaky");
    // The failed fetch publishes nothing; after the back-off the next fetch succeeds.
    assert_eq!(s.web.next().await.path, "/flaky");
    let args = a.expect("PUBLISH").await;
    assert_eq!(args["payload"], "recovered");
}

#[tokio::test]
async fn persistent_mode_failure_is_retried() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    s.web.once("", Reply::deny(json!({"error": "not yet"})));
    s.web.set("", Reply::ok(json!({"payload": 2})));
    poll_existing(
        &s,
        &mut a,
        "pf",
        &polling(&s, "persistent", "/pf", json!({})),
    )
    .await;
    s.web.next().await;
    s.web.next().await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 2);
}

#[tokio::test]
async fn destroying_the_channel_stops_the_poller() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    s.web.set("", Reply::json(json!("tick")));
    create_polling(&s, "doomed", &polling(&s, "simple", "/doomed", json!({}))).await;
    subscribe(&s, &mut a, "alice", "doomed").await;
    assert_eq!(a.expect("PUBLISH").await["payload"], "tick");
    create_polling(&s, "witness", &polling(&s, "simple", "/witness", json!({}))).await;

    s.api_ok("destroy_channel", &[("channel_name", "doomed")])
        .await;
    loop {
        let (_, name, _) = a.recv().await;
        if name == "UNSUBSCRIBE" {
            break;
        }
        assert_eq!(name, "PUBLISH");
    }
    assert_stopped(&s, "/doomed", "/witness").await;
    a.assert_quiet().await;
}

#[tokio::test]
async fn destroy_on_last_leave_stops_the_poller() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    s.web.set("", Reply::json(json!("tick")));
    create_polling(&s, "room", &polling(&s, "simple", "/room", json!({}))).await;
    create_polling(&s, "witness", &polling(&s, "simple", "/witness", json!({}))).await;
    subscribe(&s, &mut a, "alice", "room").await;
    s.api_ok(
        "unsubscribe",
        &[("channel_name", "room"), ("name", "alice")],
    )
    .await;
    // The destroy_channel webhook (answered `[true, {}]`) destroys the emptied channel.
    loop {
        let r = s.web.next().await;
        if r.action() == "destroy_channel" {
            break;
        }
    }
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "room")])
            .await,
        "Channel room doesn't exist"
    );
    assert_stopped(&s, "/room", "/witness").await;
}

#[tokio::test]
async fn polling_mode_empty_stops_the_poller_and_a_new_mode_restarts_it() {
    let s = Server::start().await;
    s.web.set("", Reply::json(json!("tick")));
    create_polling(&s, "switch", &polling(&s, "simple", "/switch", json!({}))).await;
    assert_eq!(s.web.next().await.path, "/switch");
    create_polling(&s, "witness", &polling(&s, "simple", "/witness", json!({}))).await;

    s.api_ok(
        "set_channel_options",
        &[("channel_name", "switch"), ("polling", "{\"mode\": \"\"}")],
    )
    .await;
    assert_stopped(&s, "/switch", "/witness").await;
    let opts = &s
        .api_ok("get_channel_info", &[("channel_name", "switch")])
        .await["options"];
    assert_eq!(opts["polling"]["mode"], "");
    assert_eq!(
        opts["polling"]["url"],
        format!("http://{}/switch", s.web.addr),
        "merged key-wise"
    );

    // Switching it back on starts a poller again (with the merged url).
    s.api_ok(
        "set_channel_options",
        &[
            ("channel_name", "switch"),
            ("polling", "{\"mode\": \"simple\"}"),
        ],
    )
    .await;
    loop {
        if s.web.next().await.path == "/switch" {
            break;
        }
    }
}

#[tokio::test]
async fn replacing_polling_runs_a_single_poller() {
    let s = Server::start().await;
    s.web.set("", Reply::json(json!("tick")));
    create_polling(&s, "moved", &polling(&s, "simple", "/old", json!({}))).await;
    assert_eq!(s.web.next().await.path, "/old");
    create_polling(&s, "witness", &polling(&s, "simple", "/witness", json!({}))).await;
    let p = json!({"url": format!("http://{}/new", s.web.addr)}).to_string();
    s.api_ok(
        "set_channel_options",
        &[("channel_name", "moved"), ("polling", &p)],
    )
    .await;
    // The old poller stops: after the barrier only /new and the witness are fetched.
    let mut witness = 0;
    while witness < 2 {
        let r = s.web.next().await;
        match r.path.as_str() {
            "/witness" => witness += 1,
            "/old" | "/new" => {}
            other => panic!("unexpected {other}"),
        }
    }
    let mut new = 0;
    let mut witness = 0;
    while witness < 6 {
        let r = s.web.next().await;
        match r.path.as_str() {
            "/witness" => witness += 1,
            "/new" => new += 1,
            other => panic!("{other} polled after the url changed"),
        }
    }
    assert!(new >= 1, "the new url was never polled");
}
