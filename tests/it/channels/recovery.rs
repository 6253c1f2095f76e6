//! Recovery after a reconnect (ours, not the original's): a client that asked for positions
//! (CONNECT `recovery`) sees each PUBLISH's `offset` and its own SUBSCRIBE's `epoch` and `offset`;
//! after a forced disconnect it SUBSCRIBEs again with `recover` and gets exactly what it missed,
//! in order, or `recovered: false`. Over WebSocket and CSP, on whichever engine the suite runs.

use crate::common;
use common::csp::Csp;
use common::*;
use serde_json::{json, Map, Value};

async fn api_publish(s: &Server, channel: &str, payload: &str) {
    s.api_ok(
        "publish",
        &[("channel_name", channel), ("payload", payload)],
    )
    .await;
}

/// The epoch and offset an own SUBSCRIBE showed.
fn position(own: &Map<String, Value>) -> (String, u64) {
    let epoch = own["epoch"].as_str().expect("epoch shown").to_owned();
    (epoch, own["offset"].as_u64().expect("offset shown"))
}

/// `/web/disconnect` of `name`, through its disconnect webhook (the user is gone then).
async fn kick(s: &Server, name: &str) {
    s.api_ok("disconnect", &[("name", name)]).await;
    s.web.expect("disconnect").await;
}

fn recover_args(channel: &str, epoch: &str, offset: u64) -> Value {
    json!({"channel_name": channel, "recover": {"epoch": epoch, "offset": offset}})
}

/// bob (an original client, keeping channel `r` alive) and alice (recovering) subscribe to `r`;
/// then alice is disconnected. Returns bob and alice's position when she went.
async fn alice_went_away(s: &Server) -> (Client, String, u64) {
    let mut bob = s.connected("bob").await;
    join(&mut bob, "r").await;
    s.web.expect("create_channel").await;
    let mut alice = recovering(s, "alice").await;
    alice.send("SUBSCRIBE", json!({"channel_name": "r"})).await;
    let (epoch, last) = position(&alice.expect("SUBSCRIBE").await);
    kick(s, "alice").await;
    (bob, epoch, last)
}

/// alice connects again and SUBSCRIBEs to `r` with her old position.
async fn alice_back(s: &Server, epoch: &str, last: u64) -> Client {
    let mut alice = recovering(s, "alice").await;
    alice
        .send("SUBSCRIBE", recover_args("r", epoch, last))
        .await;
    alice
}

#[tokio::test]
async fn publications_missed_while_away_are_recovered_in_order() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"moderated": false, "history_size": 20}));
    // bob, an original client, keeps the channel alive and sees the original frames.
    let mut bob = s.connected("bob").await;
    let own = join(&mut bob, "r").await;
    s.web.expect("create_channel").await;
    assert!(own.get("epoch").is_none() && own.get("offset").is_none());
    let mut alice = recovering(&s, "alice").await;
    alice.send("SUBSCRIBE", json!({"channel_name": "r"})).await;
    let own = alice.expect("SUBSCRIBE").await;
    let (epoch, mut last) = position(&own);
    assert!(own.get("recovered").is_none(), "{own:?}");

    api_publish(&s, "r", "\"seen\"").await;
    let p = alice.expect("PUBLISH").await;
    assert_eq!(p["payload"], "seen");
    let offset = p["offset"].as_u64().expect("an offset on PUBLISH");
    assert!(offset > last, "{offset} after {last}");
    last = offset;
    let plain = bob.expect("PUBLISH").await;
    assert!(plain.get("offset").is_none(), "{plain:?}");

    kick(&s, "alice").await;
    for p in ["1", "2", "3"] {
        api_publish(&s, "r", p).await;
    }

    let mut alice = alice_back(&s, &epoch, last).await;
    let own = alice.expect("SUBSCRIBE").await;
    assert_eq!(own["recovered"], true, "{own:?}");
    assert_eq!(own["epoch"], epoch.as_str());
    let mut offsets = Vec::new();
    for want in [1, 2, 3] {
        let p = alice.expect("PUBLISH").await;
        assert_eq!(p["channel_name"], "r");
        assert_eq!(p["payload"], want, "{p:?}");
        assert!(p.contains_key("datetime"));
        offsets.push(p["offset"].as_u64().unwrap());
    }
    assert!(offsets.windows(2).all(|w| w[0] < w[1]) && offsets[0] > last);
    assert!(offsets[2] <= own["offset"].as_u64().unwrap());
    // Then live traffic, nothing twice.
    api_publish(&s, "r", "4").await;
    let p = alice.expect("PUBLISH").await;
    assert_eq!(p["payload"], 4);
    assert!(p["offset"].as_u64().unwrap() > offsets[2]);
    alice.assert_quiet().await;
}

#[tokio::test]
async fn nothing_missed_is_recovered_with_nothing() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"moderated": false, "history_size": 5}));
    let (_bob, epoch, last) = alice_went_away(&s).await;
    let mut alice = alice_back(&s, &epoch, last).await;
    assert_eq!(alice.expect("SUBSCRIBE").await["recovered"], true);
    alice.assert_quiet().await;
}

#[tokio::test]
async fn gone_publications_are_not_recovered() {
    let s = Server::start().await;
    s.web.channel_options(
        json!({"moderated": false, "history_size": 2, "history_publish_only": true}),
    );
    let (_bob, epoch, last) = alice_went_away(&s).await;
    // Three publications into a history of two: the first is gone.
    for p in ["1", "2", "3"] {
        api_publish(&s, "r", p).await;
    }
    let mut alice = alice_back(&s, &epoch, last).await;
    let own = alice.expect("SUBSCRIBE").await;
    assert_eq!(own["recovered"], false, "{own:?}");
    // The history is still shown, as to any subscriber; no publication is replayed.
    assert_eq!(own["history"].as_array().unwrap().len(), 2);
    api_publish(&s, "r", "4").await;
    assert_eq!(alice.expect("PUBLISH").await["payload"], 4);

    // Another epoch (the channel was destroyed and created again, or a made-up one).
    let mut carol = recovering(&s, "carol").await;
    carol
        .send("SUBSCRIBE", recover_args("r", "not-this-channel", 1))
        .await;
    assert_eq!(carol.expect("SUBSCRIBE").await["recovered"], false);
    // A position from the future.
    let mut dave = recovering(&s, "dave").await;
    dave.send("SUBSCRIBE", recover_args("r", &epoch, 1_000_000))
        .await;
    assert_eq!(dave.expect("SUBSCRIBE").await["recovered"], false);
}

#[tokio::test]
async fn a_channel_without_history_does_not_recover() {
    let s = Server::unmoderated().await;
    let (_bob, epoch, last) = alice_went_away(&s).await;
    api_publish(&s, "r", "1").await;
    let mut alice = alice_back(&s, &epoch, last).await;
    assert_eq!(alice.expect("SUBSCRIBE").await["recovered"], false);
    alice.assert_quiet().await;
}

/// A tab that reconnects while the user stays subscribed through another tab: the original
/// sends no frame for a SUBSCRIBE of a member; a connection that gives a position still gets its
/// recovery.
#[tokio::test]
async fn a_member_tab_that_reconnects_recovers() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"moderated": false, "history_size": 20}));
    let mut tab1 = recovering(&s, "alice").await;
    tab1.send("SUBSCRIBE", json!({"channel_name": "r"})).await;
    tab1.expect("SUBSCRIBE").await;
    s.web.expect("create_channel").await;
    let mut tab2 = recovering(&s, "alice").await;
    // The new tab is told about the user's channel (the original's replay), with positions.
    let (epoch, _) = position(&tab2.expect("SUBSCRIBE").await);
    api_publish(&s, "r", "0").await;
    let last = tab2.expect("PUBLISH").await["offset"].as_u64().unwrap();
    tab1.expect("PUBLISH").await;
    tab2.close().await;
    for p in ["1", "2"] {
        api_publish(&s, "r", p).await;
        tab1.expect("PUBLISH").await;
    }
    let mut tab3 = recovering(&s, "alice").await;
    let replay = tab3.expect("SUBSCRIBE").await;
    assert!(replay.get("recovered").is_none(), "{replay:?}");
    tab3.send("SUBSCRIBE", recover_args("r", &epoch, last))
        .await;
    let own = tab3.expect("SUBSCRIBE").await;
    assert_eq!(own["recovered"], true, "{own:?}");
    for want in [1, 2] {
        assert_eq!(tab3.expect("PUBLISH").await["payload"], want);
    }
    tab3.assert_quiet().await;
    tab1.assert_quiet().await;
}

#[tokio::test]
async fn a_bad_recover_argument_is_an_error() {
    let s = Server::unmoderated().await;
    let mut alice = recovering(&s, "alice").await;
    alice
        .send(
            "SUBSCRIBE",
            json!({"channel_name": "r", "recover": {"epoch": 3, "offset": "x"}}),
        )
        .await;
    alice
        .expect_error("Invalid recover (must be {epoch: string, offset: integer})")
        .await;
    let mut bob = s.client().await;
    bob.send(
        "CONNECT",
        json!({"cookie_string": "user=bob", "recovery": "yes"}),
    )
    .await;
    bob.expect_error("Invalid recovery (must be true or false)")
        .await;
}

/// A CSP client that asked for positions.
async fn csp_recovering(s: &Server, name: &str) -> Csp {
    let mut c = Csp::handshake(s).await;
    c.send(
        "CONNECT",
        json!({"cookie_string": format!("user={name}"), "recovery": true}),
    )
    .await;
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], name);
    c
}

#[tokio::test]
async fn recovery_over_csp() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"moderated": false, "history_size": 20}));
    let mut bob = s.connected("bob").await;
    join(&mut bob, "r").await;
    s.web.expect("create_channel").await;
    let mut alice = csp_recovering(&s, "alice").await;
    alice.send("SUBSCRIBE", json!({"channel_name": "r"})).await;
    let (epoch, _) = position(&alice.expect("SUBSCRIBE").await);
    api_publish(&s, "r", "0").await;
    let last = alice.expect("PUBLISH").await["offset"].as_u64().unwrap();
    kick(&s, "alice").await;
    for p in ["1", "2"] {
        api_publish(&s, "r", p).await;
    }
    let mut alice = csp_recovering(&s, "alice").await;
    alice
        .send("SUBSCRIBE", recover_args("r", &epoch, last))
        .await;
    assert_eq!(alice.expect("SUBSCRIBE").await["recovered"], true);
    for want in [1, 2] {
        let p = alice.expect("PUBLISH").await;
        assert_eq!(p["payload"], want);
        assert!(p["offset"].as_u64().unwrap() > last);
    }
    api_publish(&s, "r", "3").await;
    assert_eq!(alice.expect("PUBLISH").await["payload"], 3);
}
