//! The Web API's server info and publishing (§4): `get_server_info`, `publish` (with and without
//! `send_hook`, to missing channels) and `publish_multi`, with the frames subscribers get.

use crate::common;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn get_server_info_lists_channels_and_connections() {
    let s = Server::unmoderated().await;
    assert_eq!(
        s.api_ok("get_server_info", &[]).await,
        json!({"channels": [], "connections": []})
    );
    let (mut a, id_a) = s.connected_with_id("alice").await;
    let (_b, id_b) = s.connected_with_id("bob").await;
    join(&mut a, "room").await;
    s.web.expect("create_channel").await;
    let info = s.api_ok("get_server_info", &[]).await;
    assert_eq!(
        info,
        json!({"channels": ["room"], "connections": [id_a, id_b]})
    );
    a.close().await;
    // alice's close runs the cascade: the channel is destroyed, then she is gone.
    s.web.expect("destroy_channel").await;
    s.web.expect("disconnect").await;
    assert_eq!(
        s.api_ok("get_server_info", &[]).await,
        json!({"channels": [], "connections": [id_b]})
    );
}

#[tokio::test]
async fn publish_frames_and_errors() {
    let s = Server::unmoderated().await;
    let mut a = s.connected("alice").await;
    join(&mut a, "news").await;
    s.web.expect("create_channel").await;

    assert_eq!(s.api_err("publish", &[]).await, "Missing channel_name");
    assert_eq!(
        s.api_err("publish", &[("channel_name", "")]).await,
        "Missing channel_name"
    );
    assert_eq!(
        s.api_err("publish", &[("channel_name", "nope")]).await,
        "Channel nope doesn't exist"
    );
    assert_eq!(
        s.api_err("publish", &[("channel_name", "news"), ("payload", "{bad")])
            .await,
        "Invalid json for payload"
    );

    let (status, body) = s
        .api(
            "publish",
            &[
                ("channel_name", "news"),
                ("payload", "{\"n\": 1}"),
                ("originator", "bob"),
            ],
        )
        .await;
    assert_eq!((status, body), (200, json!([true, {}])));
    let args = a.expect("PUBLISH").await;
    assert_eq!(keys(&args), PUBLISH_KEYS);
    assert_eq!(args["channel_name"], "news");
    assert_eq!(args["payload"], json!({"n": 1}));
    assert_eq!(args["user"], "bob");
    assert_datetime(&args["datetime"]);

    // No originator: `user` is JSON null; no payload: null.
    s.api_ok("publish", &[("channel_name", "news")]).await;
    let args = a.expect("PUBLISH").await;
    assert_eq!(keys(&args), PUBLISH_KEYS);
    assert_eq!(args["user"], Value::Null);
    assert_eq!(args["payload"], Value::Null);
    a.assert_quiet().await;
}

#[tokio::test]
async fn publish_calls_the_webhook_only_with_send_hook_1() {
    let s = Server::start().await; // channels moderated by default
    let mut a = s.connected("alice").await;
    a.send("SUBSCRIBE", json!({"channel_name": "mod"})).await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    a.expect("SUBSCRIBE").await;

    // Without send_hook=1 (including other truthy-looking values), no webhook.
    s.api_ok("publish", &[("channel_name", "mod"), ("payload", "1")])
        .await;
    s.api_ok(
        "publish",
        &[
            ("channel_name", "mod"),
            ("payload", "2"),
            ("send_hook", "true"),
        ],
    )
    .await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 1);
    assert_eq!(a.expect("PUBLISH").await["payload"], 2);

    let body = s
        .api(
            "publish",
            &[
                ("channel_name", "mod"),
                ("payload", "[3, \"x\"]"),
                ("originator", "bob"),
                ("send_hook", "1"),
            ],
        )
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    // The first webhook the app sees is this publish: the earlier two called none.
    let hook = s.web.expect("publish").await;
    assert_eq!(
        hook.keys(),
        ["action", "channel_name", "originator", "payload"]
    );
    assert_eq!(hook.field("channel_name"), Some("mod"));
    assert_eq!(hook.field("originator"), Some("bob"));
    assert_eq!(
        serde_json::from_str::<Value>(hook.field("payload").unwrap()).unwrap(),
        json!([3, "x"])
    );
    assert_eq!(hook.header("cookie"), None);
    let args = a.expect("PUBLISH").await;
    assert_eq!(
        (args["payload"].clone(), args["user"].clone()),
        (json!([3, "x"]), json!("bob"))
    );

    // The reply's override_payload applies.
    s.web.once(
        "publish",
        Reply::ok(json!({"override_payload": {"o": true}})),
    );
    s.api_ok(
        "publish",
        &[
            ("channel_name", "mod"),
            ("payload", "4"),
            ("send_hook", "1"),
        ],
    )
    .await;
    s.web.expect("publish").await;
    assert_eq!(a.expect("PUBLISH").await["payload"], json!({"o": true}));

    // A denial fails the call and nothing is published.
    s.web
        .once("publish", Reply::deny(json!({"error": "not now"})));
    assert_eq!(
        s.api_err(
            "publish",
            &[
                ("channel_name", "mod"),
                ("payload", "5"),
                ("send_hook", "1")
            ]
        )
        .await,
        "not now"
    );
    s.web.expect("publish").await;
    a.assert_quiet().await;
}

#[tokio::test]
async fn publish_to_missing_channel_with_x_succeeds_silently() {
    let s = Server::start_with(|c| c.ignore_publish_non_existing = true).await;
    assert_eq!(
        s.api("publish", &[("channel_name", "ghost"), ("payload", "1")])
            .await,
        (200, json!([true, {}]))
    );
    // Nothing was created, and other errors still apply.
    assert_eq!(
        s.api_ok("get_server_info", &[]).await["channels"],
        json!([])
    );
    assert_eq!(s.api_err("publish", &[]).await, "Missing channel_name");
}

#[tokio::test]
async fn publish_multi_skips_missing_channels() {
    let s = Server::unmoderated().await;
    let mut a = s.connected("alice").await;
    join(&mut a, "a").await;
    s.web.expect("create_channel").await;
    join(&mut a, "b").await;
    s.web.expect("create_channel").await;

    assert_eq!(
        s.api_err("publish_multi", &[]).await,
        "Missing channel_names"
    );
    assert_eq!(
        s.api_err("publish_multi", &[("channel_names", "")]).await,
        "Missing channel_names"
    );
    assert_eq!(
        s.api_err(
            "publish_multi",
            &[("channel_names", "a"), ("payload", "nope")]
        )
        .await,
        "Invalid json for payload"
    );
    let body = s
        .api(
            "publish_multi",
            &[
                ("channel_names", "a,missing,b"),
                ("payload", "\"hi\""),
                ("originator", "ops"),
            ],
        )
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    let mut got = Vec::new();
    for _ in 0..2 {
        let args = a.expect("PUBLISH").await;
        assert_eq!(
            (args["payload"].clone(), args["user"].clone()),
            (json!("hi"), json!("ops"))
        );
        got.push(args["channel_name"].as_str().unwrap().to_owned());
    }
    got.sort();
    assert_eq!(got, ["a", "b"]);
    a.assert_quiet().await;
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "missing")])
            .await,
        "Channel missing doesn't exist"
    );
}

/// A web app that did not hear the answer sends the call again with the same
/// `idempotency_key`: it is applied once and answers as the first did. Another key is another
/// call; a key that failed may be used again; bad keys are refused.
#[tokio::test]
async fn an_idempotency_key_applies_a_call_once() {
    let s = Server::unmoderated().await;
    let mut a = s.connected("alice").await;
    let _b = s.connected("bob").await;
    join(&mut a, "room").await;
    s.web.expect("create_channel").await;
    let once = [
        ("channel_name", "room"),
        ("payload", "1"),
        ("idempotency_key", "k-1"),
    ];
    assert_eq!(s.api_ok("publish", &once).await, json!({}));
    assert_eq!(s.api_ok("publish", &once).await, json!({}));
    let other = [
        ("channel_name", "room"),
        ("payload", "2"),
        ("idempotency_key", "k-2"),
    ];
    s.api_ok("publish", &other).await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 1);
    assert_eq!(a.expect("PUBLISH").await["payload"], 2);
    a.assert_quiet().await;

    // publish_multi and message take keys too, each method its own.
    let multi = [
        ("channel_names", "room"),
        ("payload", "3"),
        ("idempotency_key", "k-1"),
    ];
    s.api_ok("publish_multi", &multi).await;
    s.api_ok("publish_multi", &multi).await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 3);
    let message = [
        ("sender_name", "bob"),
        ("recipient_name", "alice"),
        ("payload", "\"hi\""),
        ("idempotency_key", "m-1"),
    ];
    s.api_ok("message", &message).await;
    s.api_ok("message", &message).await;
    assert_eq!(a.expect("MESSAGE").await["payload"], "hi");
    a.assert_quiet().await;

    // A call that failed does not hold its key: its retry runs.
    let missing = [
        ("channel_name", "later"),
        ("payload", "4"),
        ("idempotency_key", "k-3"),
    ];
    assert_eq!(
        s.api_err("publish", &missing).await,
        "Channel later doesn't exist"
    );
    join(&mut a, "later").await;
    s.web.expect("create_channel").await;
    s.api_ok("publish", &missing).await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 4);

    // A publish_multi that failed part way (room, unmoderated, got it; the moderated channel's
    // publish webhook said no) is not applied again: its failure is its answer.
    s.api_ok("create_channel", &[("channel_name", "gated")])
        .await;
    s.api_ok("subscribe", &[("channel_name", "gated"), ("name", "alice")])
        .await;
    assert_eq!(a.expect("SUBSCRIBE").await["channel_name"], "gated");
    s.web
        .once("publish", Reply::deny(json!({"error": "not there"})));
    let partial = [
        ("channel_names", "room,gated"),
        ("payload", "6"),
        ("send_hook", "1"),
        ("idempotency_key", "p-1"),
    ];
    for _ in 0..2 {
        assert_eq!(s.api_err("publish_multi", &partial).await, "not there");
    }
    assert_eq!(a.expect("PUBLISH").await["payload"], 6);
    assert_eq!(
        s.web.expect("publish").await.field("channel_name"),
        Some("gated")
    );
    assert_no_hooks(&s).await;
    a.assert_quiet().await;

    for bad in ["", "has space", &"x".repeat(129), "é"] {
        let params = [
            ("channel_name", "room"),
            ("payload", "5"),
            ("idempotency_key", bad),
        ];
        assert_eq!(
            s.api_err("publish", &params).await,
            "Invalid idempotency_key (1 to 128 visible ASCII characters)",
            "{bad:?}"
        );
    }
    a.assert_quiet().await;
}
