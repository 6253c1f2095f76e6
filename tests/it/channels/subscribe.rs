//! Channel membership over the wire (§2.2, §6.1): SUBSCRIBE / UNSUBSCRIBE frames, presence,
//! `initial_data`, repeated and unknown subscriptions, and server presence flags.

use crate::common;
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE / UNSUBSCRIBE frames and presence

#[tokio::test]
async fn own_subscribe_frame_and_presence_on_presenceful_channel() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"presenceful": true, "moderated": false}));
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;

    let own = join(&mut alice, "room").await;
    assert_eq!(keys(&own), OWN_SUBSCRIBE_KEYS);
    assert_eq!(own["user"], "alice");
    assert_eq!(own["history"], json!([]));
    assert_eq!(own["history_size"], 0);
    assert_eq!(own["history_duration"], 0);
    assert_eq!(own["state"], json!({}));
    assert_eq!(
        own["presence"],
        json!(["alice"]),
        "presence includes the subscriber itself"
    );
    s.web.expect("create_channel").await;

    let own = join(&mut bob, "room").await;
    assert_eq!(keys(&own), OWN_SUBSCRIBE_KEYS);
    assert_eq!(own["user"], "bob");
    assert_eq!(own["presence"], json!(["alice", "bob"]));
    let presence = alice.expect("SUBSCRIBE").await;
    assert_eq!(
        keys(&presence),
        PRESENCE_KEYS,
        "presence SUBSCRIBE has no history/presence keys"
    );
    assert_eq!(presence["channel_name"], "room");
    assert_eq!(presence["user"], "bob");
    assert_datetime(&presence["datetime"]);

    bob.send("UNSUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    let gone = bob.expect("UNSUBSCRIBE").await;
    assert_eq!(keys(&gone), PRESENCE_KEYS);
    assert_eq!(gone["user"], "bob");
    assert_eq!(gone["channel_name"], "room");
    assert_datetime(&gone["datetime"]);
    let notice = alice.expect("UNSUBSCRIBE").await;
    assert_eq!(keys(&notice), PRESENCE_KEYS);
    assert_eq!(notice["user"], "bob");

    bob.assert_quiet().await;
    alice.assert_quiet().await;
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn no_presence_frames_on_a_channel_without_presence() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;

    assert_eq!(join(&mut alice, "room").await["presence"], json!([]));
    s.web.expect("create_channel").await;
    let own = join(&mut bob, "room").await;
    assert_eq!(keys(&own), OWN_SUBSCRIBE_KEYS);
    assert_eq!(
        own["presence"],
        json!([]),
        "presence is empty unless presenceful"
    );
    alice.assert_quiet().await;

    // The leaver always hears its own UNSUBSCRIBE; the others hear nothing.
    bob.send("UNSUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    let gone = bob.expect("UNSUBSCRIBE").await;
    assert_eq!(keys(&gone), PRESENCE_KEYS);
    assert_eq!(gone["user"], "bob");
    bob.assert_quiet().await;
    alice.assert_quiet().await;
}

#[tokio::test]
async fn initial_data_from_the_subscribe_hook_only_when_truthy() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;

    s.web.once(
        "subscribe",
        Reply::ok(json!({"initial_data": {"welcome": [1, 2]}})),
    );
    let own = join(&mut alice, "a").await;
    assert_eq!(keys(&own), OWN_SUBSCRIBE_KEYS_WITH_INITIAL_DATA);
    assert_eq!(own["initial_data"], json!({"welcome": [1, 2]}));
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;

    for falsy in [
        json!(0),
        json!(""),
        json!({}),
        json!([]),
        json!(null),
        json!(false),
    ] {
        s.web
            .once("subscribe", Reply::ok(json!({"initial_data": falsy})));
        let channel = format!("b{falsy}");
        let own = join(&mut alice, &channel).await;
        assert_eq!(
            keys(&own),
            OWN_SUBSCRIBE_KEYS,
            "falsy initial_data {falsy} is left out"
        );
        s.web.expect("create_channel").await;
        s.web.expect("subscribe").await;
    }
}

#[tokio::test]
async fn subscribing_twice_gives_nothing() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    join(&mut alice, "room").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;

    alice
        .send("SUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    alice.assert_quiet().await;
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn unsubscribe_of_unknown_or_unjoined_channel_is_silent() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;

    // Unknown channel: nothing happens, and (unlike the original) nothing is created.
    alice
        .send("UNSUBSCRIBE", json!({"channel_name": "nowhere"}))
        .await;
    alice.assert_quiet().await;
    assert_no_hooks(&s).await;
    assert_eq!(channel_names(&s).await, Vec::<Value>::new());

    // Existing channel the user is not in: no unsubscribe hook, no frame.
    let mut bob = s.connected("bob").await;
    join(&mut bob, "room").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    alice
        .send("UNSUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    alice.assert_quiet().await;
    bob.assert_quiet().await;
    assert_no_hooks(&s).await;
    assert_eq!(channel_names(&s).await, vec![json!("room")]);
}

// ---------------------------------------------------------------------------------------------
// Server presence

#[tokio::test]
async fn server_presence_flags_follow_users_connecting_and_leaving() {
    let s = Server::start().await;
    s.web.channel_options(json!({
        "server_presenceful": true,
        "server_user_presence": ["alice", "bob"],
        "moderated": false,
    }));
    let mut alice = s.connected("alice").await;
    let own = join(&mut alice, "who").await;
    assert_eq!(own["state"], json!({"alice": true, "bob": false}));
    s.web.expect("create_channel").await;

    let bob1 = s.connected("bob").await;
    let update = alice.expect("STATE_UPDATE").await;
    assert_eq!(keys(&update), ["channel_name", "deletes", "updates"]);
    assert_eq!(update["channel_name"], "who");
    assert_eq!(update["updates"], json!({"bob": true}));
    assert_eq!(update["deletes"], json!([]));

    // A second tab and an unwatched user change nothing.
    let bob2 = s.connected("bob").await;
    let carol = s.connected("carol").await;
    alice.assert_quiet().await;

    bob1.close().await;
    carol.close().await;
    s.web.expect("disconnect").await; // carol's
    bob2.close().await;
    let update = alice.expect("STATE_UPDATE").await;
    assert_eq!(update["updates"], json!({"bob": false}));
    assert_eq!(update["deletes"], json!([]));
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("bob"));
    alice.assert_quiet().await;

    let mut bob3 = s.connected("bob").await;
    assert_eq!(
        alice.expect("STATE_UPDATE").await["updates"],
        json!({"bob": true})
    );
    assert_eq!(
        join(&mut bob3, "who").await["state"],
        json!({"alice": true, "bob": true})
    );
}
