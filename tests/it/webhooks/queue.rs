//! The queue in front of the webhook slots (ours): at most `--webhook-max-concurrency` calls
//! reach the web app at once, the others wait their turn in order, for longer than one call's
//! timeout; past `--webhook-queue` waiting calls, a CONNECT is refused at once with a retry hint
//! (`retry_after`), which does not count as a refusal by the web app.

use crate::common;
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Another client's CONNECT, held at the web app until `gate` gets permits, takes the only
/// webhook slot; returns the gate and that client (its CONNECTED comes once the gate opens).
async fn hold_the_slot(s: &Server) -> (Arc<tokio::sync::Semaphore>, Client) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    s.web
        .set("connect", Reply::ok(json!({"name": "held"})).gated(&gate));
    let mut holder = s.client().await;
    holder
        .send("CONNECT", json!({"cookie_string": "sid=holder"}))
        .await;
    s.web.expect("connect").await;
    (gate, holder)
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_with_a_retry_hint() {
    let s = Server::start_with(|c| {
        c.webhook_max_concurrency = 1;
        // No waiting at all: with the one slot held, any other call is refused.
        c.webhook_queue = 0;
        // One refusal by the web app would close a connection: the hint is not one.
        c.max_failed_connects = 1;
    })
    .await;
    let (gate, mut holder) = hold_the_slot(&s).await;
    let mut late = s.client().await;
    let id = late
        .send("CONNECT", json!({"cookie_string": "sid=late"}))
        .await;
    let error = late.expect("ERROR").await;
    assert_eq!(error["id"], id);
    assert_eq!(
        error["msg"],
        "Too busy to ask the web application now: try again in 1 s"
    );
    assert_eq!(error["retry_after"], 1);

    gate.add_permits(10);
    assert_eq!(holder.expect("CONNECTED").await["name"], "held");
    assert_no_hooks(&s).await; // the refused CONNECT never reached the web app
                               // Still open, not counted as refused: it comes back as told.
    late.send("CONNECT", json!({"cookie_string": "sid=late"}))
        .await;
    assert_eq!(late.expect("CONNECTED").await["name"], "held");
}

#[tokio::test]
async fn a_queue_longer_than_one_calls_timeout_is_served_in_turn() {
    let s = Server::start_with(|c| {
        c.webhook_max_concurrency = 1;
        c.webhook_timeout = Duration::from_secs(1);
    })
    .await;
    // Each answer takes 0.4 s: the fourth CONNECT waits 1.2 s for its slot, longer than a
    // call may take, and is served all the same.
    s.web.set(
        "connect",
        Reply::ok(json!({"name": "patient"})).delayed(Duration::from_millis(400)),
    );
    let mut clients = Vec::new();
    for i in 0..4 {
        let mut c = s.client().await;
        c.send("CONNECT", json!({"cookie_string": format!("sid={i}")}))
            .await;
        clients.push(c);
    }
    for c in &mut clients {
        assert_eq!(c.expect("CONNECTED").await["name"], "patient");
    }
}

/// The create_channel and publish webhooks are refused for want of a slot like the others: with
/// the hint, so that hookbox.js sends the SUBSCRIBE again instead of reporting it.
#[tokio::test]
async fn a_busy_create_channel_or_publish_carries_the_retry_hint() {
    let s = Server::start_with(|c| {
        c.webhook_max_concurrency = 1;
        c.webhook_queue = 0;
    })
    .await;
    let mut alice = s.connected("alice").await;
    s.web.once(
        "create_channel",
        Reply::ok(json!({"moderated": false, "moderated_publish": true})),
    );
    join(&mut alice, "talk").await;
    assert_eq!(s.web.actions().await, ["create_channel"]);

    // Another CONNECT holds the only slot.
    let (gate, mut holder) = hold_the_slot(&s).await;

    let busy = "Too busy to ask the web application now: try again in 1 s";
    let id = alice
        .send("SUBSCRIBE", json!({"channel_name": "new"}))
        .await;
    let error = alice.expect("ERROR").await;
    assert_eq!((&error["id"], &error["msg"]), (&json!(id), &json!(busy)));
    assert_eq!(error["retry_after"], 1);
    let id = alice
        .send(
            "PUBLISH",
            json!({"channel_name": "talk", "payload": "\"hi\""}),
        )
        .await;
    let error = alice.expect("ERROR").await;
    assert_eq!((&error["id"], &error["msg"]), (&json!(id), &json!(busy)));
    assert_eq!(error["retry_after"], 1);

    gate.add_permits(10);
    holder.expect("CONNECTED").await;
    assert_no_hooks(&s).await; // neither refused call reached the web app
    alice
        .send(
            "PUBLISH",
            json!({"channel_name": "talk", "payload": "\"hi\""}),
        )
        .await;
    assert_eq!(alice.expect("PUBLISH").await["payload"], "hi");
    assert_eq!(s.web.actions().await, ["publish"]);
}
