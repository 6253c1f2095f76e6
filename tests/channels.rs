//! Channels over the wire (§2.2–§2.4, §6.1, §9.2–§9.3): SUBSCRIBE / UNSUBSCRIBE / PUBLISH frames,
//! presence, reflection, moderation, history, state, creation and destruction, strict options.

mod common;
use common::*;
use serde_json::{json, Map, Value};

const OWN_SUBSCRIBE_KEYS: [&str; 7] = [
    "channel_name",
    "history",
    "history_duration",
    "history_size",
    "presence",
    "state",
    "user",
];
const PRESENCE_KEYS: [&str; 3] = ["channel_name", "datetime", "user"];
const PUBLISH_KEYS: [&str; 4] = ["channel_name", "datetime", "payload", "user"];

/// Sends SUBSCRIBE and returns the own SUBSCRIBE frame (hooks are left to the caller).
async fn join(c: &mut Client, channel: &str) -> Map<String, Value> {
    c.send("SUBSCRIBE", json!({"channel_name": channel})).await;
    let args = c.expect("SUBSCRIBE").await;
    assert_eq!(args["channel_name"], channel);
    args
}

/// After a barrier on the connection that triggered them, no webhook call is pending.
async fn assert_no_hooks(s: &Server) {
    let left = s.web.drain().await;
    assert!(left.is_empty(), "unexpected webhooks: {left:?}");
}

async fn channel_names(s: &Server) -> Vec<Value> {
    s.api_ok("get_server_info", &[]).await["channels"]
        .as_array()
        .unwrap()
        .clone()
}

fn assert_history_entry(entry: &Value, kind: &str, user: &str, payload: Option<Value>) {
    assert_eq!(entry[0], kind, "{entry}");
    let body = entry[1]
        .as_object()
        .expect("history entry body is an object");
    match payload {
        Some(p) => {
            assert_eq!(keys(body), ["datetime", "payload", "user"], "{entry}");
            assert_eq!(body["payload"], p, "{entry}");
        }
        None => assert_eq!(keys(body), ["datetime", "user"], "{entry}"),
    }
    assert_eq!(body["user"], user, "{entry}");
    assert_datetime(&body["datetime"]);
    assert_eq!(entry.as_array().unwrap().len(), 2);
}

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
    assert_eq!(
        keys(&own),
        [
            "channel_name",
            "history",
            "history_duration",
            "history_size",
            "initial_data",
            "presence",
            "state",
            "user"
        ]
    );
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
    s.web
        .once("subscribe", Reply::deny(json!({"error": "members only"})));
    let id = alice
        .send("SUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    assert_eq!(alice.expect_error("members only").await, id);
    s.web.expect("subscribe").await;
    s.web.once("publish", Reply::deny(json!({})));
    let id = alice
        .send("PUBLISH", json!({"channel_name": "room", "payload": "2"}))
        .await;
    assert_eq!(alice.expect_error("Unauthorized").await, id);
    s.web.expect("publish").await;
    alice.assert_quiet().await;

    join(&mut alice, "room").await;
    s.web.expect("subscribe").await;
    s.web
        .once("unsubscribe", Reply::deny(json!({"error": "stay"})));
    let id = alice
        .send("UNSUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    assert_eq!(alice.expect_error("stay").await, id);
    s.web.expect("unsubscribe").await;
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
        let actions: Vec<String> = s
            .web
            .drain()
            .await
            .iter()
            .map(|h| h.action().to_owned())
            .collect();
        assert_eq!(
            actions,
            ["create_channel", hooked, "destroy_channel"],
            "{flag}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// History

#[tokio::test]
async fn history_is_recorded_pruned_and_shaped() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"history_size": 3, "moderated": false}));
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;
    let mut carol = s.connected("carol").await;

    let own = join(&mut alice, "h").await;
    assert_eq!(
        own["history"],
        json!([]),
        "history is the channel's before this subscribe"
    );
    assert_eq!(own["history_size"], 3);
    for p in ["1", "2"] {
        alice
            .send("PUBLISH", json!({"channel_name": "h", "payload": p}))
            .await;
        alice.expect("PUBLISH").await;
    }
    let history = join(&mut bob, "h").await["history"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(history.len(), 3);
    assert_history_entry(&history[0], "SUBSCRIBE", "alice", None);
    assert_history_entry(&history[1], "PUBLISH", "alice", Some(json!(1)));
    assert_history_entry(&history[2], "PUBLISH", "alice", Some(json!(2)));

    bob.send("UNSUBSCRIBE", json!({"channel_name": "h"})).await;
    bob.expect("UNSUBSCRIBE").await;
    // [P1 P2 S(bob)] then U(bob) pushes P1 out.
    let history = join(&mut carol, "h").await["history"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_history_entry(&history[0], "PUBLISH", "alice", Some(json!(2)));
    assert_history_entry(&history[1], "SUBSCRIBE", "bob", None);
    assert_history_entry(&history[2], "UNSUBSCRIBE", "bob", None);

    let info = s.api_ok("get_channel_info", &[("channel_name", "h")]).await;
    let kept = info["options"]["history"].as_array().unwrap();
    assert_eq!(kept.len(), 3);
    assert_history_entry(&kept[2], "SUBSCRIBE", "carol", None);
}

#[tokio::test]
async fn no_history_without_history_size() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;
    join(&mut alice, "h").await;
    alice
        .send("PUBLISH", json!({"channel_name": "h", "payload": "1"}))
        .await;
    alice.expect("PUBLISH").await;
    assert_eq!(join(&mut bob, "h").await["history"], json!([]));
}

#[tokio::test]
async fn history_publish_only_records_publications_only() {
    let s = Server::start().await;
    s.web.channel_options(
        json!({"history_size": 10, "history_publish_only": true, "moderated": false}),
    );
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;
    let mut carol = s.connected("carol").await;
    join(&mut alice, "h").await;
    join(&mut bob, "h").await;
    bob.send("PUBLISH", json!({"channel_name": "h", "payload": "\"x\""}))
        .await;
    bob.expect("PUBLISH").await;
    alice.expect("PUBLISH").await;
    bob.send("UNSUBSCRIBE", json!({"channel_name": "h"})).await;
    bob.expect("UNSUBSCRIBE").await;
    let history = join(&mut carol, "h").await["history"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_history_entry(&history[0], "PUBLISH", "bob", Some(json!("x")));
}

#[tokio::test]
async fn preset_history_is_trimmed_to_history_size() {
    let s = Server::start().await;
    let preset: Vec<Value> = (0..5).map(|i| json!(["PUBLISH", {"payload": i}])).collect();
    s.web
        .channel_options(json!({"history_size": 2, "history": preset, "moderated": false}));
    let mut alice = s.connected("alice").await;
    let own = join(&mut alice, "graph").await;
    assert_eq!(
        own["history"],
        json!([["PUBLISH", {"payload": 3}], ["PUBLISH", {"payload": 4}]])
    );
    assert_eq!(own["history_size"], 2);
}

#[tokio::test]
async fn history_duration_drops_old_entries_and_keeps_undated_ones() {
    let s = Server::start().await;
    let preset = json!([
        ["PUBLISH", {"payload": "undated"}],
        ["PUBLISH", {"payload": "old", "datetime": "2000-01-01T00:00:00"}],
    ]);
    s.web.channel_options(json!({"history_size": 10, "history_duration": 3600, "history": preset, "moderated": false}));
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;

    let own = join(&mut alice, "h").await;
    assert_eq!(own["history_duration"], 3600);
    let history = own["history"].as_array().unwrap();
    assert!(
        history.contains(&json!(["PUBLISH", {"payload": "undated"}])),
        "{history:?}"
    );
    // An entry without datetime must not break later appends (the original crashed).
    alice
        .send(
            "PUBLISH",
            json!({"channel_name": "h", "payload": "\"new\""}),
        )
        .await;
    alice.expect("PUBLISH").await;
    let history = join(&mut bob, "h").await["history"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(history[0], json!(["PUBLISH", {"payload": "undated"}]));
    assert_history_entry(&history[1], "SUBSCRIBE", "alice", None);
    assert_history_entry(&history[2], "PUBLISH", "alice", Some(json!("new")));
}

// ---------------------------------------------------------------------------------------------
// State

#[tokio::test]
async fn state_updates_reach_subscribers_and_new_subscribers_see_the_whole_state() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"state": {"a": 1}, "moderated": false}));
    let mut alice = s.connected("alice").await;
    assert_eq!(join(&mut alice, "st").await["state"], json!({"a": 1}));
    s.web.expect("create_channel").await;

    s.api_ok(
        "state_set_key",
        &[
            ("channel_name", "st"),
            ("key", "b"),
            ("val", "{\"x\": [1]}"),
        ],
    )
    .await;
    let update = alice.expect("STATE_UPDATE").await;
    assert_eq!(keys(&update), ["channel_name", "deletes", "updates"]);
    assert_eq!(update["channel_name"], "st");
    assert_eq!(update["updates"], json!({"b": {"x": [1]}}));
    assert_eq!(update["deletes"], json!([]));

    // Same value again: no frame.
    s.api_ok(
        "state_set_key",
        &[
            ("channel_name", "st"),
            ("key", "b"),
            ("val", "{\"x\": [1]}"),
        ],
    )
    .await;
    alice.assert_quiet().await;

    s.api_ok("state_delete_key", &[("channel_name", "st"), ("key", "a")])
        .await;
    let update = alice.expect("STATE_UPDATE").await;
    assert_eq!(update["updates"], json!({}));
    assert_eq!(update["deletes"], json!(["a"]));

    // set_channel_options replaces the whole state and broadcasts the difference.
    s.api_ok(
        "set_channel_options",
        &[
            ("channel_name", "st"),
            ("state", "{\"b\": {\"x\": [1]}, \"c\": 3}"),
        ],
    )
    .await;
    let update = alice.expect("STATE_UPDATE").await;
    assert_eq!(update["updates"], json!({"c": 3}));
    assert_eq!(update["deletes"], json!([]));
    s.api_ok(
        "set_channel_options",
        &[("channel_name", "st"), ("state", "{\"c\": 4}")],
    )
    .await;
    let update = alice.expect("STATE_UPDATE").await;
    assert_eq!(update["updates"], json!({"c": 4}));
    assert_eq!(update["deletes"], json!(["b"]));
    alice.assert_quiet().await;

    let mut bob = s.connected("bob").await;
    assert_eq!(join(&mut bob, "st").await["state"], json!({"c": 4}));
}

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

#[tokio::test]
async fn create_channel_denial_is_an_error_with_the_apps_text() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;

    s.web.once(
        "create_channel",
        Reply::deny(json!({"error": "no such room"})),
    );
    let id = alice.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    assert_eq!(alice.expect_error("no such room").await, id);
    s.web.expect("create_channel").await;

    s.web.once("create_channel", Reply::deny(json!({})));
    let id = alice
        .send("PUBLISH", json!({"channel_name": "x", "payload": "1"}))
        .await;
    assert_eq!(alice.expect_error("Unauthorized").await, id);
    s.web.expect("create_channel").await;

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
    let history = join(&mut alice, "room").await["history"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_history_entry(&history[1], "PUBLISH", "alice", Some(json!(1)));
    assert_history_entry(&history[2], "UNSUBSCRIBE", "alice", None);
    alice.assert_quiet().await;
    assert_no_hooks(&s).await;
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
