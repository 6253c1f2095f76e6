//! Several nodes through one real redis-server behave as one HookBox: cross-node publishes in
//! one order for everybody, shared presence, history and state, a user's tabs on different nodes
//! as one user, lifecycle webhooks once per cluster event, the Web API of any node acting on the
//! whole cluster, and a node's SIGTERM leaving the engine clean.

use crate::common;
use common::cluster::Cluster;
use common::{assert_no_hooks_in, Client, Reply};
use serde_json::{json, Value};
use std::sync::Arc;

/// Joins `channel` and returns the own SUBSCRIBE.
async fn join(c: &mut Client, channel: &str) -> serde_json::Map<String, Value> {
    c.send("SUBSCRIBE", json!({"channel_name": channel})).await;
    let own = c.expect("SUBSCRIBE").await;
    assert_eq!(own["channel_name"], channel);
    own
}

#[tokio::test]
async fn publishes_from_every_node_reach_everybody_in_one_order() {
    let c = Cluster::start(3).await;
    c.web
        .channel_options(json!({"moderated": false, "presenceful": true, "history_size": 20}));
    let mut alice = c.connected(0, "alice").await;
    let mut bob = c.connected(1, "bob").await;
    let mut carol = c.connected(2, "carol").await;
    join(&mut alice, "room").await;
    let own = join(&mut bob, "room").await;
    assert_eq!(
        own["presence"],
        json!(["alice", "bob"]),
        "presence across nodes"
    );
    assert_eq!(alice.expect("SUBSCRIBE").await["user"], "bob");
    let own = join(&mut carol, "room").await;
    assert_eq!(own["presence"], json!(["alice", "bob", "carol"]));
    assert_eq!(alice.expect("SUBSCRIBE").await["user"], "carol");
    assert_eq!(bob.expect("SUBSCRIBE").await["user"], "carol");

    // Publishes from three nodes and the Web API, all at once.
    let n = 10;
    for i in 0..n {
        for (who, client) in [("a", &mut alice), ("b", &mut bob), ("c", &mut carol)] {
            let payload = json!({"from": who, "i": i}).to_string();
            client
                .send(
                    "PUBLISH",
                    json!({"channel_name": "room", "payload": payload}),
                )
                .await;
        }
        let payload = json!({"from": "api", "i": i}).to_string();
        c.api_ok(
            i % 3,
            "publish",
            &[("channel_name", "room"), ("payload", &payload)],
        )
        .await;
    }
    let mut seen = Vec::new();
    for client in [&mut alice, &mut bob, &mut carol] {
        let mut order = Vec::new();
        for _ in 0..4 * n {
            let f = client.expect("PUBLISH").await;
            order.push(f["payload"].clone());
        }
        client.assert_quiet().await;
        seen.push(order);
    }
    assert_eq!(seen[0], seen[1], "one order for everybody");
    assert_eq!(seen[1], seen[2], "one order for everybody");
    // Each publisher's own publications in the order it sent them.
    for who in ["a", "b", "c", "api"] {
        let mine: Vec<i64> = seen[0]
            .iter()
            .filter(|p| p["from"] == who)
            .map(|p| p["i"].as_i64().unwrap())
            .collect();
        assert_eq!(mine, (0..n as i64).collect::<Vec<_>>(), "{who}");
    }

    // History and state are shared: a newcomer on any node sees them.
    c.api_ok(
        1,
        "state_set_key",
        &[("channel_name", "room"), ("key", "k"), ("val", "1")],
    )
    .await;
    for client in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(
            client.expect("STATE_UPDATE").await["updates"],
            json!({"k": 1})
        );
    }
    let mut dave = c.connected(2, "dave").await;
    let own = join(&mut dave, "room").await;
    assert_eq!(own["state"], json!({"k": 1}));
    let history = own["history"].as_array().unwrap();
    assert_eq!(history.len(), 20);
    assert_eq!(history.last().unwrap()[1]["payload"], seen[0][4 * n - 1]);
}

#[tokio::test]
async fn a_users_tabs_on_two_nodes_are_one_user() {
    let c = Cluster::start(2).await;
    c.web
        .channel_options(json!({"moderated": false, "presenceful": true}));
    let mut tab_a = c.connected(0, "alice").await;
    let mut tab_b = c.connected(1, "alice").await;
    let mut bob = c.connected(1, "bob").await;
    assert_eq!(
        c.web.expect("connect").await.field("conn_id").map(str::len),
        Some(32)
    );
    c.web.expect("connect").await;
    c.web.expect("connect").await;

    // A subscribe on one tab: the other tab, on the other node, gets its own SUBSCRIBE too.
    join(&mut tab_a, "room").await;
    assert_eq!(
        c.web.expect("create_channel").await.field("channel_name"),
        Some("room")
    );
    assert_eq!(tab_b.expect("SUBSCRIBE").await["channel_name"], "room");
    join(&mut bob, "room").await;
    for tab in [&mut tab_a, &mut tab_b] {
        assert_eq!(tab.expect("SUBSCRIBE").await["user"], "bob");
    }
    // Traffic and private messages reach both tabs.
    bob.send("PUBLISH", json!({"channel_name": "room", "payload": "1"}))
        .await;
    bob.send("MESSAGE", json!({"name": "alice", "payload": "\"pm\""}))
        .await;
    c.web.expect("message").await;
    for tab in [&mut tab_a, &mut tab_b] {
        assert_eq!(tab.expect("PUBLISH").await["payload"], 1);
        assert_eq!(tab.expect("MESSAGE").await["payload"], "pm");
    }
    bob.expect("PUBLISH").await;
    bob.expect("MESSAGE").await;

    // Closing one tab: alice is still there, on the other node.
    tab_a.close().await;
    bob.send("PUBLISH", json!({"channel_name": "room", "payload": "2"}))
        .await;
    assert_eq!(tab_b.expect("PUBLISH").await["payload"], 2);
    bob.expect("PUBLISH").await;
    let info = c
        .api_ok(0, "get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["subscribers"], json!(["alice", "bob"]));
    // The last tab anywhere: unsubscribe, then disconnect, once each.
    tab_b.close().await;
    let hook = c.web.expect("disconnect").await;
    assert_eq!(hook.field("name"), Some("alice"));
    assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "alice");
    let info = c
        .api_ok(1, "get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["subscribers"], json!(["bob"]));
    assert_no_hooks_in(&c.web).await;
}

#[tokio::test]
async fn the_web_api_of_any_node_acts_on_the_whole_cluster() {
    let c = Cluster::start(2).await;
    c.web.channel_options(json!({"moderated": false}));
    let mut alice = c.connected(1, "alice").await;
    let _bob = c.connected(0, "bob").await;
    // Subscribe, message and disconnect a user of node 1 through node 0.
    c.api_ok(
        0,
        "subscribe",
        &[("channel_name", "news"), ("name", "alice")],
    )
    .await;
    assert_eq!(alice.expect("SUBSCRIBE").await["channel_name"], "news");
    c.api_ok(0, "publish", &[("channel_name", "news"), ("payload", "7")])
        .await;
    assert_eq!(alice.expect("PUBLISH").await["payload"], 7);
    // A publication retried on another node with its idempotency key is applied once.
    let keyed = [
        ("channel_name", "news"),
        ("payload", "8"),
        ("idempotency_key", "retry-me"),
    ];
    c.api_ok(0, "publish", &keyed).await;
    c.api_ok(1, "publish", &keyed).await;
    assert_eq!(alice.expect("PUBLISH").await["payload"], 8);
    alice.assert_quiet().await;
    c.api_ok(
        0,
        "message",
        &[
            ("sender_name", "bob"),
            ("recipient_name", "alice"),
            ("payload", "1"),
        ],
    )
    .await;
    assert_eq!(alice.expect("MESSAGE").await["sender"], "bob");
    let info = c
        .api_ok(0, "get_user_info", &[("user_name", "alice")])
        .await;
    assert_eq!(info["channels"], json!(["news"]));
    assert_eq!(info["connections"].as_array().unwrap().len(), 1);
    let server = c.api_ok(1, "get_server_info", &[]).await;
    assert_eq!(server["channels"], json!(["news"]));
    assert_eq!(server["connections"].as_array().unwrap().len(), 2);

    c.web.drain().await;
    let closed = c.api_ok(0, "disconnect", &[("name", "alice")]).await;
    assert_eq!(closed, json!({"connections": 1}));
    let (_, close) = alice.frames_until_close().await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    // news lost its last subscriber, then alice her last connection.
    assert_eq!(
        c.web.expect("destroy_channel").await.field("channel_name"),
        Some("news")
    );
    assert_eq!(
        c.web.expect("disconnect").await.field("name"),
        Some("alice")
    );
}

#[tokio::test]
async fn a_crowd_on_three_nodes_creates_a_channel_with_one_webhook() {
    let c = Arc::new(Cluster::start(3).await);
    // The first create_channel call waits until every client has asked to join.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    c.web.once(
        "create_channel",
        Reply::ok(json!({"moderated": false})).gated(&gate),
    );
    c.web
        .set("create_channel", Reply::ok(json!({"moderated": false})));
    let mut clients = Vec::new();
    for i in 0..9 {
        clients.push(c.connected(i % 3, &format!("u{i}")).await);
        c.web.expect("connect").await;
    }
    for cl in &mut clients {
        cl.send("SUBSCRIBE", json!({"channel_name": "crowd"})).await;
    }
    let first = c.web.expect("create_channel").await;
    assert_eq!(first.field("channel_name"), Some("crowd"));
    gate.add_permits(1);
    for cl in &mut clients {
        assert_eq!(cl.expect("SUBSCRIBE").await["channel_name"], "crowd");
    }
    // Everyone is in; one create_channel webhook was made.
    for cl in &mut clients {
        cl.assert_quiet().await;
    }
    assert_no_hooks_in(&c.web).await;
    let info = c
        .api_ok(1, "get_channel_info", &[("channel_name", "crowd")])
        .await;
    assert_eq!(info["subscribers"].as_array().unwrap().len(), 9);

    // They all leave: one destroy_channel webhook, made when the last one anywhere left.
    for cl in clients.iter_mut() {
        cl.send("UNSUBSCRIBE", json!({"channel_name": "crowd"}))
            .await;
        cl.expect("UNSUBSCRIBE").await;
    }
    assert_eq!(
        c.web.expect("destroy_channel").await.field("channel_name"),
        Some("crowd")
    );
    assert_no_hooks_in(&c.web).await;
    // The webhook is asked before the channel goes: wait for it to be gone.
    common::wait_until(|| async {
        c.api_ok(2, "get_server_info", &[]).await["channels"] == json!([])
    })
    .await;
}

#[tokio::test]
async fn a_stopping_node_takes_its_users_out_of_the_engine() {
    let c = Cluster::start(2).await;
    c.web
        .channel_options(json!({"moderated": false, "presenceful": true}));
    let mut alice = c.connected(0, "alice").await;
    let mut bob = c.connected(1, "bob").await;
    join(&mut alice, "room").await;
    join(&mut bob, "room").await;
    alice.expect("SUBSCRIBE").await;
    c.web.drain().await;
    c.stop(1);
    let (_, close) = bob.frames_until_close().await;
    assert_eq!(close.map(|c| c.0), Some(1001));
    assert_eq!(alice.expect("UNSUBSCRIBE").await["user"], "bob");
    assert_eq!(c.web.expect("disconnect").await.field("name"), Some("bob"));
    let info = c
        .api_ok(0, "get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["subscribers"], json!(["alice"]));
    let server = c.api_ok(0, "get_server_info", &[]).await;
    assert_eq!(server["connections"].as_array().unwrap().len(), 1);
}
