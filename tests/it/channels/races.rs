//! Actions of different connections that overlap: a user's disconnect cascade against a new tab
//! of the same user, and against a Web API subscribe. Each race is made deterministic by holding
//! a webhook reply at a gate until the other action has happened.

use crate::common;
use common::*;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Alice (one tab) in channels x and y, where unsubscribing is moderated; returns her tab.
async fn alice_in_x_and_y(s: &Server) -> Client {
    s.web
        .channel_options(json!({"moderated": false, "moderated_unsubscribe": true}));
    let mut tab = s.connected("alice").await;
    for channel in ["x", "y"] {
        join(&mut tab, channel).await;
        s.web.expect("create_channel").await;
    }
    tab
}

#[tokio::test]
async fn a_tab_opened_during_the_cascade_keeps_the_users_other_channels() {
    let s = Server::start().await;
    let tab1 = alice_in_x_and_y(&s).await;
    let gate = Arc::new(Semaphore::new(0));
    s.web.once("unsubscribe", Reply::ok(json!({})).gated(&gate));
    tab1.close().await;
    // The cascade is now waiting for the web app's answer about x.
    assert_eq!(
        s.web.expect("unsubscribe").await.field("channel_name"),
        Some("x")
    );

    // A page reload: a new tab of alice connects and is told about both channels.
    let mut tab2 = s.client().await;
    tab2.send("CONNECT", json!({"cookie_string": "user=alice"}))
        .await;
    tab2.expect("CONNECTED").await;
    s.web.expect("connect").await;
    assert_eq!(tab2.expect("SUBSCRIBE").await["channel_name"], "x");
    assert_eq!(tab2.expect("SUBSCRIBE").await["channel_name"], "y");

    // The unsubscribe already under way completes; the cascade then stops: alice stays in y
    // and is not disconnected.
    gate.add_permits(1);
    assert_eq!(tab2.expect("UNSUBSCRIBE").await["channel_name"], "x");
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("x")
    );
    let info = s.api_ok("get_user_info", &[("user_name", "alice")]).await;
    assert_eq!(info["channels"], json!(["y"]));
    tab2.assert_quiet().await;
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn a_user_whose_last_tab_closed_cannot_be_subscribed_meanwhile() {
    let s = Server::start().await;
    let tab = alice_in_x_and_y(&s).await;
    let gate = Arc::new(Semaphore::new(0));
    s.web.once("unsubscribe", Reply::ok(json!({})).gated(&gate));
    tab.close().await;
    s.web.expect("unsubscribe").await;

    // The web app subscribes alice elsewhere while her cascade runs: refused, so no subscriber
    // without a connection is left behind in z.
    let msg = s
        .api_err("subscribe", &[("channel_name", "z"), ("name", "alice")])
        .await;
    assert_eq!(msg, "User alice doesn't exist");
    s.web.expect("create_channel").await;
    let z = s.api_ok("get_channel_info", &[("channel_name", "z")]).await;
    assert_eq!(z["subscribers"], json!([]));

    gate.add_permits(1);
    s.web.expect("destroy_channel").await;
    assert_eq!(
        s.web.expect("unsubscribe").await.field("channel_name"),
        Some("y")
    );
    s.web.expect("destroy_channel").await;
    assert_eq!(
        s.web.expect("disconnect").await.field("name"),
        Some("alice")
    );
    assert_eq!(
        s.api_err("get_user_info", &[("user_name", "alice")]).await,
        "User alice doesn't exist"
    );
}

#[tokio::test]
async fn destroy_channel_through_the_api_unsubscribes_whoever_joined_during_its_hooks() {
    let s = Server::unmoderated().await;
    let mut alice = s.connected("alice").await;
    join(&mut alice, "room").await;
    s.web.expect("create_channel").await;
    let gate = Arc::new(Semaphore::new(0));
    s.web.once("unsubscribe", Reply::ok(json!({})).gated(&gate));
    let api = {
        let s = &s;
        async move {
            s.api_ok(
                "destroy_channel",
                &[("channel_name", "room"), ("send_hook", "1")],
            )
            .await
        }
    };
    let (_, _bob) = tokio::join!(api, async {
        s.web.expect("destroy_channel").await;
        assert_eq!(
            s.web.expect("unsubscribe").await.field("user"),
            Some("alice")
        );
        // Bob joins while the web app is being asked about alice.
        let mut bob = s.connected("bob").await;
        join(&mut bob, "room").await;
        gate.add_permits(1);
        // Both get their UNSUBSCRIBE; the channel is gone.
        assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "bob");
        assert_eq!(alice.expect("UNSUBSCRIBE").await["user"], "alice");
        bob // still connected for the checks below
    });
    assert!(!channel_names(&s).await.contains(&json!("room")));
    let info = s.api_ok("get_user_info", &[("user_name", "bob")]).await;
    assert_eq!(info["channels"], json!([]));
}
