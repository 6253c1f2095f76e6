//! The grace period for leaving (`--leave-grace`, ours): a user whose last connection closes
//! stays in its channels for a while. Back in time: no presence frames for the others, no
//! unsubscribe or disconnect webhook, and what was published meanwhile is recovered. Not back:
//! the usual cascade, once. A user the web app disconnects leaves at once. On whichever engine
//! the suite runs.

use crate::common;
use common::*;
use hookbox::hub::LeaveGrace;
use serde_json::{json, Map, Value};
use std::time::Duration;

async fn with_grace(seconds: f64) -> Server {
    let s = Server::start_with(|c| {
        c.leave_grace = LeaveGrace {
            period: Duration::from_secs_f64(seconds),
            at_shutdown: Duration::from_secs(1),
        }
    })
    .await;
    s.web
        .channel_options(json!({"presenceful": true, "history_size": 10}));
    s
}

/// bob, then alice (asking for positions), in the presence channel `r`; returns both and
/// alice's position.
async fn alice_and_bob(s: &Server) -> (Client, Client, Map<String, Value>) {
    let mut bob = s.connected("bob").await;
    join(&mut bob, "r").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    let mut alice = recovering(s, "alice").await;
    alice.send("SUBSCRIBE", json!({"channel_name": "r"})).await;
    s.web.expect("subscribe").await;
    let own = alice.expect("SUBSCRIBE").await;
    assert_eq!(bob.expect("SUBSCRIBE").await["user"], "alice");
    (alice, bob, own)
}

/// alice's cascade: the unsubscribe webhook for `r` (bob keeps it), then the disconnect.
async fn alice_left(s: &Server) {
    let hook = s.web.expect("unsubscribe").await;
    assert_eq!(
        (hook.field("channel_name"), hook.field("user")),
        (Some("r"), Some("alice"))
    );
    assert_eq!(
        s.web.expect("disconnect").await.field("name"),
        Some("alice")
    );
}

#[tokio::test]
async fn a_user_back_in_time_never_left() {
    let s = with_grace(60.0).await;
    let (alice, mut bob, own) = alice_and_bob(&s).await;
    alice.close().await;
    wait_until(|| async { connections_of(&s, "alice").await == 0 }).await;
    s.api_ok("publish", &[("channel_name", "r"), ("payload", "1")])
        .await;
    assert_eq!(bob.expect("PUBLISH").await["payload"], 1);

    let mut alice = recovering(&s, "alice").await;
    // Still a member: the new connection gets the replayed own SUBSCRIBE, then recovers.
    assert_eq!(alice.expect("SUBSCRIBE").await["user"], "alice");
    alice
        .send(
            "SUBSCRIBE",
            json!({"channel_name": "r", "recover": {"epoch": own["epoch"], "offset": own["offset"]}}),
        )
        .await;
    let answer = alice.expect("SUBSCRIBE").await;
    assert_eq!(answer["recovered"], true, "{answer:?}");
    assert_eq!(alice.expect("PUBLISH").await["payload"], 1);
    // bob saw her neither leave nor come back; the web app heard of no unsubscribe, no
    // disconnect.
    bob.assert_quiet().await;
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn a_user_not_back_in_time_leaves_once() {
    let s = with_grace(0.2).await;
    let (alice, mut bob, _) = alice_and_bob(&s).await;
    alice.close().await;
    assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "alice");
    alice_left(&s).await;
    bob.assert_quiet().await;
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn a_user_the_web_app_disconnects_leaves_at_once() {
    let s = with_grace(60.0).await;
    let (_alice, mut bob, _) = alice_and_bob(&s).await;
    s.api_ok("disconnect", &[("name", "alice")]).await;
    assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "alice");
    alice_left(&s).await;
}
