//! Channel history and state (§9.2–§9.3): recording, pruning and shaping history, preset and
//! timed-out entries, and STATE_UPDATE frames.

use crate::common;
use common::*;
use serde_json::{json, Value};

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
    let history = join_history(&mut bob, "h").await;
    assert_eq!(history.len(), 3);
    assert_history_entry(&history[0], "SUBSCRIBE", "alice", None);
    assert_history_entry(&history[1], "PUBLISH", "alice", Some(json!(1)));
    assert_history_entry(&history[2], "PUBLISH", "alice", Some(json!(2)));

    bob.send("UNSUBSCRIBE", json!({"channel_name": "h"})).await;
    bob.expect("UNSUBSCRIBE").await;
    // [P1 P2 S(bob)] then U(bob) pushes P1 out.
    let history = join_history(&mut carol, "h").await;
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
    let history = join_history(&mut carol, "h").await;
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
    let history = join_history(&mut bob, "h").await;
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

    let set_b = [
        ("channel_name", "st"),
        ("key", "b"),
        ("val", "{\"x\": [1]}"),
    ];
    s.api_ok("state_set_key", &set_b).await;
    let update = alice.expect("STATE_UPDATE").await;
    assert_eq!(keys(&update), ["channel_name", "deletes", "updates"]);
    assert_eq!(update["channel_name"], "st");
    assert_eq!(update["updates"], json!({"b": {"x": [1]}}));
    assert_eq!(update["deletes"], json!([]));

    // Same value again: no frame.
    s.api_ok("state_set_key", &set_b).await;
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
