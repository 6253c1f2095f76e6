//! Webhook failure modes (§5.2): a web app that refuses connections, answers bad statuses or
//! bodies, is slow or goes away, each mapped to its ERROR text, with other traffic unaffected.
//!
//! Clients see a text that names no internal host, OS error or reply body; with
//! `--webhook-error-details` they see the original's detailed texts (the server log always has
//! them).

use crate::common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn web_app_refusing_connections_gives_failure() {
    let s = Server::start_with(|c| {
        c.webhooks.cbport = free_port();
        c.webhook_error_details = true;
    })
    .await;
    let mut c = s.client().await;
    let id = c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    let args = c.expect("ERROR").await;
    assert_eq!(args["id"], id);
    let msg = args["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("failure: ") && msg.len() > "failure: ".len(),
        "{msg}"
    );
    // Still usable, still not connected.
    let id = c.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    assert_eq!(c.expect_error("Not connected").await, id);
}

/// By default the texts say what kind of failure it was, not what the web app's internals are.
#[tokio::test]
async fn clients_see_failures_without_internal_details() {
    let s = Server::start_with(|c| c.max_failed_connects = 100).await;
    let mut c = s.client().await;
    let cases = [
        (
            Reply::raw(500, "<h1>boom at db1.internal</h1>"),
            "failure: HTTP 500",
        ),
        (Reply::raw(404, "no such hook"), "failure: HTTP 404"),
        (
            Reply::raw(302, "moved"),
            "Invalid callback response, status=302",
        ),
        (Reply::raw(200, "not json at /srv/app"), "Invalid json"),
        (
            Reply::raw(200, "[true]"),
            "Invalid response (expected json list of length 2)",
        ),
    ];
    for (reply, msg) in cases {
        let connect = ("CONNECT", json!({"cookie_string": "user=a"}));
        expect_refused(&s, &mut c, "connect", reply, connect, msg).await;
    }
    drop(s);
    let s = Server::start_with(|c| c.webhooks.cbport = free_port()).await;
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    c.expect_error("failure: the web application could not be reached")
        .await;
}

#[tokio::test]
async fn bad_statuses_and_bodies_map_to_their_error_texts() {
    // Many refused CONNECTs on one socket: allowed here, to see every error text.
    let s = Server::start_with(|c| {
        c.max_failed_connects = 100;
        c.webhook_error_details = true;
    })
    .await;
    let mut c = s.client().await;
    let cases = [
        (Reply::raw(500, "<h1>boom</h1>"), "failure: <h1>boom</h1>"),
        (Reply::raw(404, "no such hook"), "failure: no such hook"),
        (
            Reply::raw(302, "moved"),
            "Invalid callback response, status=302 (/hookbox/connect), body: moved",
        ),
        (
            Reply::raw(204, ""),
            "Invalid callback response, status=204 (/hookbox/connect), body: ",
        ),
        (Reply::raw(200, "not json"), "Invalid json: not json"),
        (Reply::raw(200, ""), "Invalid json: "),
        (
            Reply::raw(200, "[true]"),
            "Invalid response (expected json list of length 2)",
        ),
        (
            Reply::raw(200, "{\"name\": \"x\"}"),
            "Invalid response (expected json list of length 2)",
        ),
        (
            Reply::raw(200, "[true, {}, 1]"),
            "Invalid response (expected json list of length 2)",
        ),
        (
            Reply::raw(200, "[true, 3]"),
            "Invalid response (expected json object in response index 1)",
        ),
        (
            Reply::raw(200, "[true, [\"name\", \"x\"]]"),
            "Invalid response (expected json object in response index 1)",
        ),
    ];
    for (reply, msg) in cases {
        let connect = ("CONNECT", json!({"cookie_string": "user=a"}));
        expect_refused(&s, &mut c, "connect", reply, connect, msg).await;
    }
    c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    c.expect("CONNECTED").await;
    s.web.expect("connect").await;

    // The same mapping for other hooks.
    s.web.once("create_channel", Reply::raw(500, "db down"));
    c.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    c.expect_error("failure: db down").await;
    s.web.once("subscribe", Reply::raw(301, ""));
    c.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    c.expect_error("Invalid callback response, status=301 (/hookbox/subscribe), body: ")
        .await;
    s.web.once("publish", Reply::raw(200, "[1]"));
    c.send("PUBLISH", json!({"channel_name": "x"})).await;
    c.expect_error("Invalid response (expected json list of length 2)")
        .await;
}

#[tokio::test]
async fn slow_web_app_times_out_with_a_failure() {
    let s = Server::start_with(|c| c.webhook_timeout = Duration::from_millis(300)).await;
    let mut c = s.client().await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "late"})).delayed(Duration::from_secs(5)),
    );
    let id = c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    s.web.expect("connect").await;
    let args = c.expect("ERROR").await;
    assert_eq!(args["id"], id);
    let msg = args["msg"].as_str().unwrap();
    assert!(msg.starts_with("failure:"), "{msg}");
    assert!(msg.contains("0.3s"), "names the timeout: {msg}");
    // The connection is still usable.
    c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    assert_eq!(c.expect("CONNECTED").await["name"], "a");
}

#[tokio::test]
async fn a_slow_webhook_does_not_stall_other_connections() {
    // The slow reply outlasts the test; the server's timeout is longer than the hang guard, so
    // the other client could only pass if it is not queued behind the slow call.
    let s = Server::start_with(|c| c.webhook_timeout = Duration::from_secs(60)).await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "slow"})).delayed(Duration::from_secs(120)),
    );
    let mut slow = s.client().await;
    slow.send("CONNECT", json!({"cookie_string": "user=slow"}))
        .await;
    assert_eq!(
        s.web.expect("connect").await.header("cookie"),
        Some("user=slow")
    );

    // While the slow connect is pending: another user connects, subscribes, publishes, messages.
    let mut fast = s.connected("fast").await;
    let mut other = s.connected("other").await;
    for c in [&mut fast, &mut other] {
        c.send("SUBSCRIBE", json!({"channel_name": "busy"})).await;
        c.expect("SUBSCRIBE").await;
    }
    fast.send("PUBLISH", json!({"channel_name": "busy", "payload": "1"}))
        .await;
    assert_eq!(other.expect("PUBLISH").await["user"], "fast");
    fast.expect("PUBLISH").await;
    other.send("MESSAGE", json!({"name": "fast"})).await;
    fast.expect("MESSAGE").await;
    // The slow user never made it.
    let (_, body) = s.api("get_user_info", &[("user_name", "slow")]).await;
    assert_eq!(body[0], false, "{body}");
    drop(slow);
}

#[tokio::test]
async fn web_app_down_cleanup_and_unmoderated_traffic_still_work() {
    // The web app "goes away" by moving the webhooks to a dead port of the same host.
    let s = Server::start_with(|c| {
        c.allow_set_config_webhooks = true;
        c.webhook_allow_hosts = vec![hookbox::net::HostRule::parse("127.0.0.1").unwrap()];
    })
    .await;
    let mut a = s.connected("alice").await;
    let mut b = s.connected("bob").await;
    s.web.once(
        "create_channel",
        Reply::ok(json!({"moderated": false, "presenceful": true})),
    );
    for c in [&mut a, &mut b] {
        c.send("SUBSCRIBE", json!({"channel_name": "open"})).await;
        c.expect("SUBSCRIBE").await;
    }
    assert_eq!(a.expect("SUBSCRIBE").await["user"], "bob"); // presence
    a.send("SUBSCRIBE", json!({"channel_name": "mod"})).await;
    a.expect("SUBSCRIBE").await;

    // The web app goes away.
    let port = free_port().to_string();
    s.api_ok("set_config", &[("cbport", &port)]).await;

    a.send(
        "PUBLISH",
        json!({"channel_name": "open", "payload": "\"still\""}),
    )
    .await;
    assert_eq!(a.expect("PUBLISH").await["payload"], "still");
    assert_eq!(b.expect("PUBLISH").await["payload"], "still");
    s.api_ok("publish", &[("channel_name", "open"), ("payload", "2")])
        .await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 2);
    assert_eq!(b.expect("PUBLISH").await["payload"], 2);

    let failure = |args: serde_json::Map<String, Value>| {
        let msg = args["msg"].as_str().unwrap().to_owned();
        assert!(msg.starts_with("failure: "), "{msg}");
    };
    a.send("PUBLISH", json!({"channel_name": "mod"})).await;
    failure(a.expect("ERROR").await);
    a.send("SUBSCRIBE", json!({"channel_name": "new"})).await;
    failure(a.expect("ERROR").await);
    a.send("MESSAGE", json!({"name": "bob"})).await;
    failure(a.expect("ERROR").await);
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=carol"}))
        .await;
    failure(c.expect("ERROR").await);

    // Bob leaves: presence, removal and channel membership are cleaned up all the same.
    b.close().await;
    let args = a.expect("UNSUBSCRIBE").await;
    assert_eq!(
        (args["channel_name"].as_str(), args["user"].as_str()),
        (Some("open"), Some("bob"))
    );
    wait_until(|| async { s.api("get_user_info", &[("user_name", "bob")]).await.1[0] == false })
        .await;
    let info = s
        .api_ok("get_channel_info", &[("channel_name", "open")])
        .await;
    assert_eq!(info["subscribers"], json!(["alice"]));

    // Alice leaves: the channels are empty, but the failed destroy_channel hook keeps them.
    a.close().await;
    wait_until(|| async { s.api("get_user_info", &[("user_name", "alice")]).await.1[0] == false })
        .await;
    for ch in ["open", "mod"] {
        let info = s.api_ok("get_channel_info", &[("channel_name", ch)]).await;
        assert_eq!(info["subscribers"], json!([]), "{ch}");
    }
    // No hook reached the web app after it went down.
    assert!(s
        .web
        .drain()
        .await
        .iter()
        .all(|h| h.action() != "disconnect"));
}
