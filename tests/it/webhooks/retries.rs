//! Informational webhooks (disconnect, destroy_channel, a forced unsubscribe) that get no
//! decision (the web app down, a 5xx) are tried again, a bounded number of times; a real
//! denial is not. `/web/destroy_channel`'s unsubscribe webhooks go out concurrently.

use crate::common;
use common::*;
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn a_failed_disconnect_webhook_is_tried_again() {
    let s = Server::start().await;
    let c = s.connected("ann").await;
    s.web
        .once("disconnect", Reply::raw(503, "down for maintenance"));
    drop(c);
    let first = s.web.expect("disconnect").await;
    let again = s.web.expect("disconnect").await;
    assert_eq!(first.form, again.form);
    assert_eq!(again.field("name"), Some("ann"));
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn retries_are_bounded_while_the_web_app_stays_down() {
    let s = Server::start().await;
    let c = s.connected("ann").await;
    s.web.set("disconnect", Reply::raw(500, "still down"));
    drop(c);
    // The first call and three retries, then the close handling gives up.
    for _ in 0..4 {
        s.web.expect("disconnect").await;
    }
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn a_denied_destroy_is_not_asked_again_but_a_failed_one_is() {
    let s = Server::unmoderated().await;
    // A denial: the channel stays, and destroy_channel is asked once.
    let mut c = s.connected("ann").await;
    join(&mut c, "kept").await;
    s.web.once("destroy_channel", Reply::deny(json!({})));
    c.send("UNSUBSCRIBE", json!({"channel_name": "kept"})).await;
    c.expect("UNSUBSCRIBE").await;
    s.web.drain().await;
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("kept")
    );
    let (_, body) = s.api("get_channel_info", &[("channel_name", "kept")]).await;
    assert_eq!(body[0], true, "{body}");
    // No decision (a 502), then yes: the channel goes.
    join(&mut c, "gone").await;
    s.web.drain().await;
    s.web
        .once("destroy_channel", Reply::raw(502, "bad gateway"));
    c.send("UNSUBSCRIBE", json!({"channel_name": "gone"})).await;
    c.expect("UNSUBSCRIBE").await;
    for _ in 0..2 {
        assert_eq!(
            s.web.expect("destroy_channel").await.field("channel_name"),
            Some("gone")
        );
    }
    let (_, body) = s.api("get_channel_info", &[("channel_name", "gone")]).await;
    assert_eq!(body[0], false, "{body}");
}

#[tokio::test]
async fn destroy_channel_sends_its_unsubscribe_webhooks_concurrently() {
    let s = Server::unmoderated().await;
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        let mut c = s.connected(name).await;
        join(&mut c, "room").await;
        s.web.drain().await;
        clients.push(c);
    }
    // No unsubscribe reply is released until all three calls have arrived: one at a time,
    // the second would never come.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    s.web.set("unsubscribe", Reply::ok(json!({})).gated(&gate));
    let api = {
        let s = &s;
        async move {
            s.api(
                "destroy_channel",
                &[("channel_name", "room"), ("send_hook", "1")],
            )
            .await
        }
    };
    let calls = async {
        assert_eq!(
            s.web.expect("destroy_channel").await.field("channel_name"),
            Some("room")
        );
        let mut users: Vec<String> = Vec::new();
        for _ in 0..3 {
            let h = s.web.expect("unsubscribe").await;
            users.push(h.field("user").unwrap().to_owned());
        }
        users.sort();
        assert_eq!(users, ["a", "b", "c"]);
        gate.add_permits(3);
    };
    let ((status, body), ()) = tokio::join!(api, calls);
    assert_eq!((status, &body[0]), (200, &json!(true)), "{body}");
    for c in &mut clients {
        assert_eq!(c.expect("UNSUBSCRIBE").await["channel_name"], "room");
    }
}
