//! Channel creation and destruction (§2.4, §6.1): created on subscribe and publish, denied,
//! destroyed with the last subscriber or kept, strictly typed options, and frames refused before
//! CONNECT or without a channel name.

use crate::common;
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Creation and destruction

#[tokio::test]
async fn channels_are_created_on_subscribe_and_on_publish() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;

    join(&mut alice, "by-subscribe").await;
    let create = s.web.expect("create_channel").await;
    assert_eq!(create.keys(), ["action", "channel_name"]);
    assert_eq!(create.field("channel_name"), Some("by-subscribe"));
    assert_eq!(
        create.header("cookie"),
        Some("user=alice"),
        "the triggering connection's cookie"
    );
    s.web.expect("subscribe").await;

    alice
        .send(
            "PUBLISH",
            json!({"channel_name": "by-publish", "payload": "1"}),
        )
        .await;
    let create = s.web.expect("create_channel").await;
    assert_eq!(create.field("channel_name"), Some("by-publish"));
    assert_eq!(create.header("cookie"), Some("user=alice"));
    s.web.expect("publish").await;
    alice.assert_quiet().await; // not subscribed to by-publish

    let mut names = channel_names(&s).await;
    names.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(names, [json!("by-publish"), json!("by-subscribe")]);

    // Known channels are not created again.
    alice
        .send(
            "PUBLISH",
            json!({"channel_name": "by-publish", "payload": "2"}),
        )
        .await;
    s.web.expect("publish").await;
    alice.assert_quiet().await;
    assert_no_hooks(&s).await;
}

/// A PUBLISH that creates a channel and is then refused leaves no channel behind: the new,
/// empty channel goes through the usual destroy attempt (the original kept it forever, so any
/// client could fill the server with empty channels). An accepted one keeps its channel.
#[tokio::test]
async fn a_refused_publish_destroys_the_channel_it_created() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    s.web.once("publish", Reply::deny(json!({"error": "no"})));
    let id = alice
        .send("PUBLISH", json!({"channel_name": "ghost", "payload": "1"}))
        .await;
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("ghost")
    );
    s.web.expect("publish").await;
    assert_eq!(alice.expect_error("no").await, id);
    let destroy = s.web.expect("destroy_channel").await;
    assert_eq!(destroy.field("channel_name"), Some("ghost"));
    assert!(channel_names(&s).await.is_empty());

    // A refused publish to a channel that already existed destroys nothing.
    join(&mut alice, "room").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    s.web.once("publish", Reply::deny(json!({})));
    alice
        .send("PUBLISH", json!({"channel_name": "room", "payload": "2"}))
        .await;
    s.web.expect("publish").await;
    alice.expect_error("Unauthorized").await;
    assert_no_hooks(&s).await;
    assert_eq!(channel_names(&s).await, [json!("room")]);
}

#[tokio::test]
async fn create_channel_denial_is_an_error_with_the_apps_text() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;

    expect_refused(
        &s,
        &mut alice,
        "create_channel",
        Reply::deny(json!({"error": "no such room"})),
        ("SUBSCRIBE", json!({"channel_name": "x"})),
        "no such room",
    )
    .await;
    expect_refused(
        &s,
        &mut alice,
        "create_channel",
        Reply::deny(json!({})),
        ("PUBLISH", json!({"channel_name": "x", "payload": "1"})),
        "Unauthorized",
    )
    .await;

    alice.assert_quiet().await;
    assert_no_hooks(&s).await;
    assert_eq!(channel_names(&s).await, Vec::<Value>::new());
}

#[tokio::test]
async fn channel_destroyed_when_the_last_subscriber_leaves() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;
    join(&mut alice, "room").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    join(&mut bob, "room").await;
    s.web.expect("subscribe").await;

    bob.send("UNSUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    bob.expect("UNSUBSCRIBE").await;
    bob.assert_quiet().await;
    s.web.expect("unsubscribe").await;
    assert_no_hooks(&s).await; // not the last: no destroy attempt
    assert_eq!(channel_names(&s).await, [json!("room")]);

    alice
        .send("UNSUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    alice.expect("UNSUBSCRIBE").await;
    alice.assert_quiet().await;
    s.web.expect("unsubscribe").await;
    let destroy = s.web.expect("destroy_channel").await;
    assert_eq!(destroy.keys(), ["action", "channel_name"]);
    assert_eq!(destroy.field("channel_name"), Some("room"));
    assert_eq!(
        destroy.header("cookie"),
        None,
        "destroy_channel carries no cookie"
    );
    assert_eq!(channel_names(&s).await, Vec::<Value>::new());

    // Coming back creates it anew.
    join(&mut alice, "room").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
}

#[tokio::test]
async fn channel_kept_when_destroy_channel_denies() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"history_size": 5, "moderated": false}));
    let mut alice = s.connected("alice").await;
    join(&mut alice, "room").await;
    s.web.expect("create_channel").await;
    alice
        .send("PUBLISH", json!({"channel_name": "room", "payload": "1"}))
        .await;
    alice.expect("PUBLISH").await;

    s.web.once("destroy_channel", Reply::deny(json!({})));
    alice
        .send("UNSUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    alice.expect("UNSUBSCRIBE").await;
    alice.assert_quiet().await;
    s.web.expect("destroy_channel").await;
    assert_eq!(channel_names(&s).await, [json!("room")]);
    let info = s
        .api_ok("get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["subscribers"], json!([]));

    // It lives on with its history: no create_channel on the way back.
    let history = join_history(&mut alice, "room").await;
    assert_eq!(history.len(), 3, "{history:?}");
    assert_history_entry(&history[1], "PUBLISH", "alice", Some(json!(1)));
    assert_history_entry(&history[2], "UNSUBSCRIBE", "alice", None);
    alice.assert_quiet().await;
    assert_no_hooks(&s).await;
}

// ---------------------------------------------------------------------------------------------
// Option validation

#[tokio::test]
async fn create_channel_options_are_strictly_typed() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    let cases = [
        (
            json!({"history_size": 5.0}),
            "Invalid type for history_size",
        ),
        (json!({"presenceful": 1}), "Invalid type for presenceful"),
        (json!({"reflective": "yes"}), "Invalid type for reflective"),
        (json!({"state": []}), "Invalid type for state"),
        (json!({"history": {}}), "Invalid type for history"),
        (json!({"moderated": null}), "Invalid type for moderated"),
    ];
    for (opts, prefix) in cases {
        s.web.once("create_channel", Reply::ok(opts.clone()));
        let id = alice
            .send("SUBSCRIBE", json!({"channel_name": "typed"}))
            .await;
        let err = alice.expect("ERROR").await;
        assert_eq!(err["id"], id);
        let msg = err["msg"].as_str().unwrap();
        assert!(msg.starts_with(prefix), "{opts}: {msg}");
        s.web.expect("create_channel").await;
    }
    for key in ["bogus", "error", "auto_subscribe", "name"] {
        s.web.once(
            "create_channel",
            Reply::ok(json!({key: true, "history_size": 2})),
        );
        let id = alice
            .send("PUBLISH", json!({"channel_name": "typed", "payload": "1"}))
            .await;
        assert_eq!(
            alice
                .expect_error(&format!("Invalid keyword argument {key}"))
                .await,
            id
        );
        s.web.expect("create_channel").await;
    }
    alice.assert_quiet().await;
    assert_no_hooks(&s).await;
    assert_eq!(
        channel_names(&s).await,
        Vec::<Value>::new(),
        "no channel created with bad options"
    );

    // Correctly typed options work.
    s.web.once(
        "create_channel",
        Reply::ok(json!({"history_size": 5, "presenceful": true})),
    );
    let own = join(&mut alice, "typed").await;
    assert_eq!(own["history_size"], 5);
    assert_eq!(own["presence"], json!(["alice"]));
}

// ---------------------------------------------------------------------------------------------
// Precondition errors

#[tokio::test]
async fn channel_frames_before_connect_are_refused() {
    let s = Server::start().await;
    let mut c = s.client().await;
    for (name, args) in [
        ("SUBSCRIBE", json!({"channel_name": "a"})),
        ("UNSUBSCRIBE", json!({"channel_name": "a"})),
        ("PUBLISH", json!({"channel_name": "a", "payload": "1"})),
        ("MESSAGE", json!({"name": "bob", "payload": "1"})),
    ] {
        let id = c.send(name, args).await;
        assert_eq!(c.expect_error("Not connected").await, id, "{name}");
    }
    assert_no_hooks(&s).await;
    c.send("CONNECT", json!({"cookie_string": "user=late"}))
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], "late");
}

#[tokio::test]
async fn missing_channel_name_and_bad_payload() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    for name in ["SUBSCRIBE", "UNSUBSCRIBE", "PUBLISH"] {
        let id = alice.send(name, json!({})).await;
        assert_eq!(
            alice.expect_error("channel_name required").await,
            id,
            "{name}"
        );
    }
    for bad in [json!("not json"), json!("{\"a\": "), json!(""), json!(5)] {
        let id = alice
            .send("PUBLISH", json!({"channel_name": "a", "payload": bad}))
            .await;
        assert_eq!(
            alice.expect_error("Invalid json for payload").await,
            id,
            "{bad}"
        );
    }
    alice.assert_quiet().await;
}
