//! Webhook replies (§5.1): every reply option the server honours (names, payload overrides,
//! auto_subscribe / auto_unsubscribe, initial_data, only_to_sender, channel options, Set-Cookie)
//! and denials with their ERROR texts.

use crate::common;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn connect_reply_name_and_override_payload() {
    let s = Server::start().await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "zed", "override_payload": {"k": [1, "\u{e9}"]}})),
    );
    let mut c = s.client().await;
    c.send(
        "CONNECT",
        json!({"cookie_string": "user=ignored", "payload": "\"orig\""}),
    )
    .await;
    let args = c.expect("CONNECTED").await;
    assert_eq!(keys(&args), ["name", "payload"]);
    assert_eq!(args["name"], "zed");
    // The override is the JSON value as-is, not a JSON text string.
    assert_eq!(args["payload"], json!({"k": [1, "\u{e9}"]}));
    // Without override: the client's JSON text string.
    let mut d = s.client().await;
    d.send(
        "CONNECT",
        json!({"cookie_string": "user=dan", "payload": "{\"q\": 1}"}),
    )
    .await;
    assert_eq!(d.expect("CONNECTED").await["payload"], "{\"q\": 1}");
}

#[tokio::test]
async fn connect_denials_give_their_error_and_leave_the_connection_usable() {
    // Many refused CONNECTs on one socket (below --max-failed-connects here).
    let s = Server::start_with(|c| c.max_failed_connects = 100).await;
    let mut c = s.client().await;
    let cases = [
        (Reply::deny(json!({})), "Unauthorized"),
        (Reply::deny(json!({"error": "go away"})), "go away"),
        (
            Reply::deny(json!({"name": "x", "msg": "ignored"})),
            "Unauthorized",
        ),
        (
            Reply::ok(json!({})),
            "Unauthorized (missing name parameter in server response)",
        ),
        (
            Reply::ok(json!({"name": ""})),
            "Unauthorized (missing name parameter in server response)",
        ),
        (Reply::json(json!([0, {"name": "x"}])), "Unauthorized"),
    ];
    for (reply, msg) in cases {
        let connect = ("CONNECT", json!({"cookie_string": "user=x"}));
        expect_refused(&s, &mut c, "connect", reply, connect, msg).await;
        // Still not connected.
        let id = c.send("SUBSCRIBE", json!({"channel_name": "c"})).await;
        assert_eq!(c.expect_error("Not connected").await, id);
    }
    c.send("CONNECT", json!({"cookie_string": "user=x"})).await;
    assert_eq!(c.expect("CONNECTED").await["name"], "x");
}

#[tokio::test]
async fn connect_reply_user_options_of_wrong_type_are_an_error() {
    // Many refused CONNECTs on one socket (below --max-failed-connects here).
    let s = Server::start_with(|c| c.max_failed_connects = 100).await;
    let mut c = s.client().await;
    let cases = [
        ("reflective", json!("yes")),
        ("moderated_message", json!(1)),
        ("per_connection_subscriptions", json!("true")),
        ("global_unsubscriptions", json!(null)),
        ("auto_subscribe", json!("news")),
    ];
    for (key, bad) in cases {
        s.web
            .once("connect", Reply::ok(json!({"name": "opt", key: bad})));
        let id = c.send("CONNECT", json!({"cookie_string": ""})).await;
        s.web.expect("connect").await;
        let args = c.expect("ERROR").await;
        assert_eq!(args["id"], id);
        let msg = args["msg"].as_str().unwrap();
        assert!(msg.contains(key), "{key}: {msg}");
        let id = c.send("PUBLISH", json!({"channel_name": "c"})).await;
        assert_eq!(c.expect_error("Not connected").await, id, "{key}");
    }
    // Right types are accepted.
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "opt", "reflective": false, "moderated_message": false,
            "per_connection_subscriptions": true, "global_unsubscriptions": true, "auto_subscribe": []})),
    );
    c.send("CONNECT", json!({"cookie_string": ""})).await;
    assert_eq!(c.expect("CONNECTED").await["name"], "opt");
    let info = s.api_ok("get_user_info", &[("user_name", "opt")]).await;
    assert_eq!(info["options"]["per_connection_subscriptions"], true);
    assert_eq!(info["options"]["reflective"], false);
}

#[tokio::test]
async fn auto_subscribe_and_auto_unsubscribe_lists() {
    let s = Server::start().await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "amy", "auto_subscribe": ["news", "sports"]})),
    );
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=amy; k=v"}))
        .await;
    s.web.expect("connect").await;
    // CONNECTED first, then the auto subscriptions, with create_channel but no subscribe hook.
    assert_eq!(c.expect("CONNECTED").await["name"], "amy");
    for ch in ["news", "sports"] {
        let h = s.web.expect("create_channel").await;
        assert_eq!(h.field("channel_name"), Some(ch));
        assert_eq!(h.header("cookie"), Some("user=amy; k=v"));
        let args = c.expect("SUBSCRIBE").await;
        assert_eq!(
            (args["channel_name"].as_str(), args["user"].as_str()),
            (Some(ch), Some("amy"))
        );
    }

    // A publish reply's lists: auto_subscribe, then auto_unsubscribe, then the publication.
    s.web.once(
        "publish",
        Reply::ok(json!({"auto_subscribe": ["extra"], "auto_unsubscribe": ["sports"]})),
    );
    c.send("PUBLISH", json!({"channel_name": "news", "payload": "1"}))
        .await;
    s.web.expect("publish").await; // the next hook: no subscribe hook ran for news/sports
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("extra")
    );
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("sports")
    );
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "extra");
    assert_eq!(c.expect("UNSUBSCRIBE").await["channel_name"], "sports");
    assert_eq!(c.expect("PUBLISH").await["channel_name"], "news");

    // Even a denied publish runs them.
    s.web.once(
        "publish",
        Reply::deny(json!({"error": "nope", "auto_subscribe": ["consolation"]})),
    );
    let id = c.send("PUBLISH", json!({"channel_name": "news"})).await;
    s.web.expect("publish").await;
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("consolation")
    );
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "consolation");
    assert_eq!(c.expect_error("nope").await, id);

    // A subscribe reply's lists run before the user joins the requested channel.
    s.web
        .once("subscribe", Reply::ok(json!({"auto_subscribe": ["side"]})));
    c.send("SUBSCRIBE", json!({"channel_name": "main"})).await;
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("main")
    );
    assert_eq!(
        s.web.expect("subscribe").await.field("channel_name"),
        Some("main")
    );
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("side")
    );
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "side");
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "main");

    // A message reply's lists too.
    s.web
        .once("message", Reply::ok(json!({"auto_unsubscribe": ["side"]})));
    c.send("MESSAGE", json!({"name": "amy"})).await;
    s.web.expect("message").await;
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("side")
    );
    assert_eq!(c.expect("UNSUBSCRIBE").await["channel_name"], "side");
    c.expect("MESSAGE").await;
    c.assert_quiet().await;
    let info = s.api_ok("get_user_info", &[("user_name", "amy")]).await;
    assert_eq!(
        info["channels"],
        json!(["news", "extra", "consolation", "main"])
    );
}

#[tokio::test]
async fn initial_data_only_when_truthy_and_only_in_the_answered_subscribe() {
    let s = Server::start().await;
    let mut c = s.connected("ida").await;
    let cases = [
        (json!({"motd": "hi"}), true),
        (json!("x"), true),
        (json!(1), true),
        (json!([0]), true),
        (json!(0), false),
        (json!(""), false),
        (json!([]), false),
        (json!({}), false),
        (json!(null), false),
        (json!(false), false),
    ];
    for (i, (data, shown)) in cases.iter().enumerate() {
        let ch = format!("c{i}");
        s.web
            .once("subscribe", Reply::ok(json!({"initial_data": data})));
        c.send("SUBSCRIBE", json!({"channel_name": ch})).await;
        let args = c.expect("SUBSCRIBE").await;
        assert_eq!(args["channel_name"], ch.as_str());
        if *shown {
            assert_eq!(args.get("initial_data"), Some(data), "{data}");
            assert_eq!(keys(&args), OWN_SUBSCRIBE_KEYS_WITH_INITIAL_DATA);
        } else {
            assert!(
                !args.contains_key("initial_data"),
                "{data} is falsy: {args:?}"
            );
        }
    }
    // A new tab gets the replayed SUBSCRIBE frames without initial_data.
    s.web.drain().await;
    let mut tab = s.connected("ida").await;
    for i in 0..cases.len() {
        let args = tab.expect("SUBSCRIBE").await;
        assert_eq!(args["channel_name"], format!("c{i}"));
        assert!(!args.contains_key("initial_data"), "{args:?}");
    }
}

#[tokio::test]
async fn publish_reply_only_to_sender_and_override_payload() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    let mut b = s.connected("bob").await;
    for c in [&mut a, &mut b] {
        c.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
        c.expect("SUBSCRIBE").await;
    }
    s.web
        .set("publish", Reply::ok(json!({"only_to_sender": true})));
    a.send(
        "PUBLISH",
        json!({"channel_name": "room", "payload": "\"secret\""}),
    )
    .await;
    let args = a.expect("PUBLISH").await;
    assert_eq!(
        (args["payload"].as_str(), args["user"].as_str()),
        (Some("secret"), Some("alice"))
    );
    b.assert_quiet().await;

    s.web.set(
        "publish",
        Reply::ok(json!({"override_payload": {"replaced": [true]}})),
    );
    a.send(
        "PUBLISH",
        json!({"channel_name": "room", "payload": "\"orig\""}),
    )
    .await;
    for c in [&mut a, &mut b] {
        let args = c.expect("PUBLISH").await;
        assert_eq!(args["payload"], json!({"replaced": [true]}));
        assert_eq!(args["user"], "alice");
    }

    // only_to_sender false-y: everyone.
    s.web
        .set("publish", Reply::ok(json!({"only_to_sender": false})));
    b.send("PUBLISH", json!({"channel_name": "room", "payload": "2"}))
        .await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 2);
    assert_eq!(b.expect("PUBLISH").await["payload"], 2);
}

#[tokio::test]
async fn publish_hook_has_no_originator_on_anonymous_channels() {
    let s = Server::start().await;
    s.web.channel_options(json!({"anonymous": true}));
    let mut a = s.connected("alice").await;
    a.send("SUBSCRIBE", json!({"channel_name": "anon"})).await;
    a.expect("SUBSCRIBE").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    a.send("PUBLISH", json!({"channel_name": "anon", "payload": "[1]"}))
        .await;
    let h = s.web.expect("publish").await;
    h.assert_keys(&["action", "channel_name", "payload"]);
    assert_eq!(h.field("payload"), Some("[1]"));
    let args = a.expect("PUBLISH").await;
    assert_eq!(keys(&args), ["channel_name", "datetime", "payload"]);
}

#[tokio::test]
async fn message_reply_override_payload_and_recipient_name() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    let mut b = s.connected("bob").await;
    let mut c = s.connected("carol").await;
    s.web.once(
        "message",
        Reply::ok(json!({"override_recipient_name": "carol", "override_payload": {"n": 1}})),
    );
    a.send("MESSAGE", json!({"name": "bob", "payload": "\"hi\""}))
        .await;
    let h = s.web.expect("message").await;
    assert_eq!(h.field("recipient"), Some("bob"));
    for client in [&mut c, &mut a] {
        let args = client.expect("MESSAGE").await;
        assert_eq!(keys(&args), MESSAGE_KEYS);
        assert_eq!(
            (args["sender"].as_str(), args["recipient"].as_str()),
            (Some("alice"), Some("carol"))
        );
        assert_eq!(args["payload"], json!({"n": 1}));
    }
    b.assert_quiet().await;

    // Denied: the reply's error.
    expect_refused(
        &s,
        &mut a,
        "message",
        Reply::deny(json!({"error": "no DMs"})),
        ("MESSAGE", json!({"name": "bob"})),
        "no DMs",
    )
    .await;
    b.assert_quiet().await;
}

#[tokio::test]
async fn create_channel_reply_sets_channel_options_and_rejects_other_keys() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;

    s.web.once(
        "create_channel",
        Reply::ok(json!({"presenceful": true, "history_size": 5, "moderated": false})),
    );
    a.send("SUBSCRIBE", json!({"channel_name": "opts"})).await;
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("opts")
    );
    let args = a.expect("SUBSCRIBE").await;
    assert_eq!(args["presence"], json!(["alice"]));
    assert_eq!(args["history_size"], 5);
    // Unmoderated: the next hook is the next action's, not a subscribe.
    a.send("MESSAGE", json!({"name": "alice"})).await;
    s.web.expect("message").await;
    a.expect("MESSAGE").await;

    let cases = [
        (
            Reply::ok(json!({"bogus": 1})),
            "Invalid keyword argument bogus",
        ),
        (
            Reply::ok(json!({"reflective": true, "error": "x"})),
            "Invalid keyword argument error",
        ),
        (
            Reply::ok(json!({"auto_subscribe": ["z"]})),
            "Invalid keyword argument auto_subscribe",
        ),
        (
            Reply::deny(json!({"error": "no such room"})),
            "no such room",
        ),
        (Reply::deny(json!({})), "Unauthorized"),
    ];
    for (reply, msg) in cases {
        let subscribe = ("SUBSCRIBE", json!({"channel_name": "bad"}));
        expect_refused(&s, &mut a, "create_channel", reply, subscribe, msg).await;
    }
    // The channel was never created: the next try asks again, and succeeds.
    a.send("SUBSCRIBE", json!({"channel_name": "bad"})).await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    assert_eq!(a.expect("SUBSCRIBE").await["channel_name"], "bad");
}

#[tokio::test]
async fn set_cookie_arrives_before_the_frame_of_the_same_action() {
    let s = Server::start().await;
    let cookie_frame = |args: serde_json::Map<String, Value>, want: &str| {
        assert_eq!(keys(&args), ["cookie"]);
        assert_eq!(args["cookie"], want);
    };
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "sc"})).with_cookie("sid=1; Path=/"),
    );
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": ""})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "sid=1; Path=/");
    c.expect("CONNECTED").await;

    // create_channel's Set-Cookie is not relayed; subscribe's is.
    s.web
        .once("create_channel", Reply::ok(json!({})).with_cookie("cc=1"));
    s.web
        .once("subscribe", Reply::ok(json!({})).with_cookie("sub=1"));
    c.send("SUBSCRIBE", json!({"channel_name": "ch"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "sub=1");
    c.expect("SUBSCRIBE").await;

    s.web
        .once("publish", Reply::ok(json!({})).with_cookie("pub=1"));
    c.send("PUBLISH", json!({"channel_name": "ch"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "pub=1");
    c.expect("PUBLISH").await;

    s.web
        .once("message", Reply::ok(json!({})).with_cookie("msg=1"));
    c.send("MESSAGE", json!({"name": "sc"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "msg=1");
    c.expect("MESSAGE").await;

    // An HttpOnly cookie (a session middleware refreshing the session the webhook carried) is
    // not for the page's script: not relayed.
    s.web.once(
        "publish",
        Reply::ok(json!({})).with_cookie("sessionid=s3cret; Path=/; httponly; SameSite=Lax"),
    );
    c.send("PUBLISH", json!({"channel_name": "ch"})).await;
    c.expect("PUBLISH").await;

    // A denial's cookie comes before its ERROR.
    s.web.once(
        "publish",
        Reply::deny(json!({"error": "no"})).with_cookie("den=1"),
    );
    c.send("PUBLISH", json!({"channel_name": "ch"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "den=1");
    c.expect_error("no").await;

    // destroy_channel's Set-Cookie is not relayed either.
    s.web
        .once("unsubscribe", Reply::ok(json!({})).with_cookie("unsub=1"));
    s.web
        .once("destroy_channel", Reply::ok(json!({})).with_cookie("dc=1"));
    c.send("UNSUBSCRIBE", json!({"channel_name": "ch"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "unsub=1");
    c.expect("UNSUBSCRIBE").await;
    for action in [
        "connect",
        "create_channel",
        "subscribe",
        "publish",
        "message",
        "publish",
        "publish",
        "unsubscribe",
        "destroy_channel",
    ] {
        s.web.expect(action).await;
    }
    c.assert_quiet().await;
}
