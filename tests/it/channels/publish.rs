//! Publishing over the wire (§2.3, §6.1): PUBLISH frames and the publish hook, anonymous and
//! non-reflective channels, and moderation by default and per flag.

use crate::common;
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// PUBLISH

#[tokio::test]
async fn publish_frame_and_hook() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;
    join(&mut alice, "room").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;

    // bob publishes without being subscribed; only subscribers receive it.
    let payload = json!({"text": "hi", "n": [1, 2.5, null]});
    bob.send(
        "PUBLISH",
        json!({"channel_name": "room", "payload": payload.to_string()}),
    )
    .await;
    let hook = s.web.expect("publish").await;
    assert_eq!(
        hook.keys(),
        ["action", "channel_name", "originator", "payload"]
    );
    assert_eq!(hook.field("channel_name"), Some("room"));
    assert_eq!(hook.field("originator"), Some("bob"));
    let hooked: Value = serde_json::from_str(hook.field("payload").unwrap()).unwrap();
    assert_eq!(hooked, payload, "the hook carries the payload as JSON text");
    assert_eq!(hook.header("cookie"), Some("user=bob"));

    let frame = alice.expect("PUBLISH").await;
    assert_eq!(keys(&frame), PUBLISH_KEYS);
    assert_eq!(frame["channel_name"], "room");
    assert_eq!(
        frame["payload"], payload,
        "the frame carries the parsed value"
    );
    assert_eq!(frame["user"], "bob");
    assert_datetime(&frame["datetime"]);
    bob.assert_quiet().await;

    // No payload: null.
    bob.send("PUBLISH", json!({"channel_name": "room"})).await;
    assert_eq!(s.web.expect("publish").await.field("payload"), Some("null"));
    assert_eq!(alice.expect("PUBLISH").await["payload"], Value::Null);

    // The publisher, once subscribed, gets its own publication back (reflective by default).
    join(&mut bob, "room").await;
    s.web.expect("subscribe").await;
    bob.send("PUBLISH", json!({"channel_name": "room", "payload": "7"}))
        .await;
    s.web.expect("publish").await;
    assert_eq!(bob.expect("PUBLISH").await["payload"], 7);
    assert_eq!(alice.expect("PUBLISH").await["payload"], 7);
}

#[tokio::test]
async fn anonymous_channel_hides_the_publisher() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"anonymous": true, "history_size": 5}));
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;
    join(&mut alice, "anon").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;

    bob.send(
        "PUBLISH",
        json!({"channel_name": "anon", "payload": "\"psst\""}),
    )
    .await;
    let hook = s.web.expect("publish").await;
    assert_eq!(
        hook.keys(),
        ["action", "channel_name", "payload"],
        "no originator on anonymous channels"
    );
    let frame = alice.expect("PUBLISH").await;
    assert_eq!(keys(&frame), ["channel_name", "datetime", "payload"]);
    assert_eq!(frame["payload"], "psst");

    let own = join(&mut bob, "anon").await;
    s.web.expect("subscribe").await;
    let history = own["history"].as_array().unwrap();
    let publish = history
        .iter()
        .find(|e| e[0] == "PUBLISH")
        .expect("publish recorded");
    assert_eq!(
        keys(publish[1].as_object().unwrap()),
        ["datetime", "payload"]
    );
}

#[tokio::test]
async fn reflective_false_skips_only_the_originating_connection() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"reflective": false, "moderated": false}));
    let mut tab1 = s.connected("alice").await;
    let mut tab2 = s.connected("alice").await;
    let mut bob = s.connected("bob").await;
    join(&mut tab1, "room").await;
    s.web.expect("create_channel").await;
    assert_eq!(tab2.expect("SUBSCRIBE").await["channel_name"], "room");
    join(&mut bob, "room").await;

    tab1.send("PUBLISH", json!({"channel_name": "room", "payload": "1"}))
        .await;
    assert_eq!(
        tab2.expect("PUBLISH").await["user"],
        "alice",
        "another tab of the publisher still receives"
    );
    assert_eq!(bob.expect("PUBLISH").await["payload"], 1);
    tab1.assert_quiet().await;
    tab2.assert_quiet().await;
    bob.assert_quiet().await;
}

// ---------------------------------------------------------------------------------------------
// Moderation

#[tokio::test]
async fn moderated_by_default_calls_subscribe_unsubscribe_and_publish_hooks() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;

    join(&mut alice, "room").await;
    let create = s.web.expect("create_channel").await;
    assert_eq!(create.keys(), ["action", "channel_name"]);
    let hook = s.web.expect("subscribe").await;
    assert_eq!(hook.keys(), ["action", "channel_name", "user"]);
    assert_eq!(hook.field("channel_name"), Some("room"));
    assert_eq!(hook.field("user"), Some("alice"));
    assert_eq!(hook.header("cookie"), Some("user=alice"));

    alice
        .send("PUBLISH", json!({"channel_name": "room", "payload": "1"}))
        .await;
    s.web.expect("publish").await;
    alice.expect("PUBLISH").await;

    s.web.set("destroy_channel", Reply::deny(json!({})));
    alice
        .send("UNSUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    let hook = s.web.expect("unsubscribe").await;
    assert_eq!(hook.keys(), ["action", "channel_name", "user"]);
    assert_eq!(hook.field("user"), Some("alice"));
    assert_eq!(hook.header("cookie"), Some("user=alice"));
    alice.expect("UNSUBSCRIBE").await;
    s.web.expect("destroy_channel").await;

    // Denials: the `error` option is the ERROR text, else "Unauthorized"; nothing happens.
    expect_refused(
        &s,
        &mut alice,
        "subscribe",
        Reply::deny(json!({"error": "members only"})),
        ("SUBSCRIBE", json!({"channel_name": "room"})),
        "members only",
    )
    .await;
    expect_refused(
        &s,
        &mut alice,
        "publish",
        Reply::deny(json!({})),
        ("PUBLISH", json!({"channel_name": "room", "payload": "2"})),
        "Unauthorized",
    )
    .await;
    alice.assert_quiet().await;

    join(&mut alice, "room").await;
    s.web.expect("subscribe").await;
    expect_refused(
        &s,
        &mut alice,
        "unsubscribe",
        Reply::deny(json!({"error": "stay"})),
        ("UNSUBSCRIBE", json!({"channel_name": "room"})),
        "stay",
    )
    .await;
    // Still subscribed: a publication arrives.
    alice
        .send("PUBLISH", json!({"channel_name": "room", "payload": "3"}))
        .await;
    s.web.expect("publish").await;
    assert_eq!(alice.expect("PUBLISH").await["payload"], 3);
}

#[tokio::test]
async fn unmoderated_channels_and_the_individual_moderation_flags() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    s.web.set("destroy_channel", Reply::deny(json!({})));

    // moderated false: no subscribe/publish/unsubscribe hooks at all.
    s.web
        .once("create_channel", Reply::ok(json!({"moderated": false})));
    join(&mut alice, "free").await;
    alice
        .send("PUBLISH", json!({"channel_name": "free", "payload": "1"}))
        .await;
    alice.expect("PUBLISH").await;
    alice
        .send("UNSUBSCRIBE", json!({"channel_name": "free"}))
        .await;
    alice.expect("UNSUBSCRIBE").await;
    alice.assert_quiet().await;
    s.web.expect("create_channel").await;
    s.web.expect("destroy_channel").await;
    assert_no_hooks(&s).await;

    // Each flag turns on exactly its own hook.
    for (flag, hooked) in [
        ("moderated_subscribe", "subscribe"),
        ("moderated_publish", "publish"),
        ("moderated_unsubscribe", "unsubscribe"),
    ] {
        s.web.once(
            "create_channel",
            Reply::ok(json!({"moderated": false, flag: true})),
        );
        join(&mut alice, flag).await;
        alice
            .send("PUBLISH", json!({"channel_name": flag, "payload": "1"}))
            .await;
        alice.expect("PUBLISH").await;
        alice
            .send("UNSUBSCRIBE", json!({"channel_name": flag}))
            .await;
        alice.expect("UNSUBSCRIBE").await;
        alice.assert_quiet().await;
        let actions = s.web.actions().await;
        assert_eq!(
            actions,
            ["create_channel", hooked, "destroy_channel"],
            "{flag}"
        );
    }
}
