//! Users versus connections (§2.4–§2.5, §6.2): several tabs of one user, auto_subscribe,
//! per-connection and global unsubscriptions, private messages, the disconnect cascade,
//! CONNECT errors and `/web/disconnect`.

use crate::common;
use common::*;
use serde_json::{json, Value};

/// A server with `channel_options`, bob, and two tabs of alice (cookies `user=alice; tab=1` and
/// `user=alice; tab=2`), named by the connect reply `[true, alice]` when given.
async fn bob_and_two_tabs_of_alice(
    channel_options: Value,
    alice: Option<Value>,
) -> (Server, Client, Client, Client) {
    let s = Server::start().await;
    s.web.channel_options(channel_options);
    let bob = s.connected("bob").await;
    let tab1 = s.connect_with("user=alice; tab=1", alice.clone()).await;
    let tab2 = s.connect_with("user=alice; tab=2", alice).await;
    (s, bob, tab1, tab2)
}

/// bob creates and joins "room", then alice's tab1 joins it; tab2 and bob hear about it.
async fn alice_joins_bobs_room(s: &Server, bob: &mut Client, tab1: &mut Client, tab2: &mut Client) {
    join(bob, "room").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    // Only tab1 subscribes (and is recorded); tab2 just hears about it.
    join(tab1, "room").await;
    s.web.expect("subscribe").await;
    tab2.expect("SUBSCRIBE").await;
    assert_eq!(bob.expect("SUBSCRIBE").await["user"], "alice");
}

// ---------------------------------------------------------------------------------------------
// Several tabs of one user

#[tokio::test]
async fn a_new_tab_gets_the_users_channels_and_shares_their_traffic() {
    let s = Server::start().await;
    s.web.channel_options(json!({"presenceful": true}));
    let mut tab1 = s.connected("alice").await;
    let mut bob = s.connected("bob").await;

    s.web
        .once("subscribe", Reply::ok(json!({"initial_data": "hello"})));
    assert_eq!(join(&mut tab1, "one").await["initial_data"], "hello");
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    join(&mut tab1, "two").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    join(&mut bob, "one").await;
    s.web.expect("subscribe").await;
    assert_eq!(tab1.expect("SUBSCRIBE").await["user"], "bob"); // presence

    // The new tab: CONNECTED, then one own SUBSCRIBE per channel, in subscription order,
    // never with initial_data.
    let mut tab2 = s.client().await;
    tab2.send("CONNECT", json!({"cookie_string": "user=alice"}))
        .await;
    assert_eq!(tab2.expect("CONNECTED").await["name"], "alice");
    s.web.expect("connect").await;
    let first = tab2.expect("SUBSCRIBE").await;
    assert_eq!(keys(&first), OWN_SUBSCRIBE_KEYS);
    assert_eq!(first["channel_name"], "one");
    assert_eq!(first["user"], "alice");
    assert_eq!(first["presence"], json!(["alice", "bob"]));
    let second = tab2.expect("SUBSCRIBE").await;
    assert_eq!(keys(&second), OWN_SUBSCRIBE_KEYS);
    assert_eq!(second["channel_name"], "two");
    assert_eq!(second["presence"], json!(["alice"]));
    tab2.assert_quiet().await;
    // Nobody else hears about the new tab: the user was already there.
    tab1.assert_quiet().await;
    bob.assert_quiet().await;
    assert_no_hooks(&s).await;

    // Subscribing again from the new tab gives nothing.
    tab2.send("SUBSCRIBE", json!({"channel_name": "one"})).await;
    tab2.assert_quiet().await;
    tab1.assert_quiet().await;
    assert_no_hooks(&s).await;

    // Channel traffic reaches every tab.
    publish(&mut bob, "one", "1").await;
    s.web.expect("publish").await;
    for tab in [&mut tab1, &mut tab2, &mut bob] {
        let p = tab.expect("PUBLISH").await;
        assert_eq!(p["payload"], 1);
        assert_eq!(p["user"], "bob");
    }

    // An own UNSUBSCRIBE goes to every tab; the others get one presence notice.
    tab2.send("UNSUBSCRIBE", json!({"channel_name": "one"}))
        .await;
    assert_eq!(
        s.web.expect("unsubscribe").await.field("user"),
        Some("alice")
    );
    for tab in [&mut tab1, &mut tab2, &mut bob] {
        let u = tab.expect("UNSUBSCRIBE").await;
        assert_eq!(u["user"], "alice");
        assert_eq!(u["channel_name"], "one");
    }
    tab1.assert_quiet().await;
    tab2.assert_quiet().await;
    bob.assert_quiet().await;
}

#[tokio::test]
async fn connected_comes_before_auto_subscribed_channels() {
    let s = Server::start().await;
    s.web.channel_options(json!({"history_size": 3}));
    let mut tab1 = s.client().await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "alice", "auto_subscribe": ["a1", "a2"]})),
    );
    tab1.send("CONNECT", json!({"cookie_string": "sid=1"}))
        .await;
    let connected = tab1.expect("CONNECTED").await;
    assert_eq!(connected["name"], "alice");
    for channel in ["a1", "a2"] {
        let own = tab1.expect("SUBSCRIBE").await;
        assert_eq!(keys(&own), OWN_SUBSCRIBE_KEYS);
        assert_eq!(own["channel_name"], channel);
        assert_eq!(own["user"], "alice");
    }
    tab1.assert_quiet().await;
    s.web.expect("connect").await;
    for channel in ["a1", "a2"] {
        let create = s.web.expect("create_channel").await;
        assert_eq!(create.field("channel_name"), Some(channel));
        assert_eq!(
            create.header("cookie"),
            Some("sid=1"),
            "created with this connection's cookie"
        );
    }
    assert_no_hooks(&s).await; // auto_subscribe skips the subscribe hook

    // A second tab: replayed channels first, then its own auto lists (no hooks but the
    // destroy attempt of the emptied channel).
    let mut tab2 = s.client().await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "alice", "auto_subscribe": ["a2"], "auto_unsubscribe": ["a1"]})),
    );
    tab2.send("CONNECT", json!({"cookie_string": "sid=2"}))
        .await;
    tab2.expect("CONNECTED").await;
    assert_eq!(tab2.expect("SUBSCRIBE").await["channel_name"], "a1");
    assert_eq!(tab2.expect("SUBSCRIBE").await["channel_name"], "a2");
    assert_eq!(tab2.expect("UNSUBSCRIBE").await["channel_name"], "a1");
    assert_eq!(tab1.expect("UNSUBSCRIBE").await["channel_name"], "a1");
    tab2.assert_quiet().await;
    tab1.assert_quiet().await;
    s.web.expect("connect").await;
    s.web.expect("destroy_channel").await;
    assert_no_hooks(&s).await;
    let info = s.api_ok("get_user_info", &[("user_name", "alice")]).await;
    assert_eq!(info["channels"], json!(["a2"]));
}

#[tokio::test]
async fn closing_one_of_two_tabs_does_not_unsubscribe() {
    let (s, mut bob, mut tab1, mut tab2) =
        bob_and_two_tabs_of_alice(json!({"presenceful": true}), None).await;
    alice_joins_bobs_room(&s, &mut bob, &mut tab1, &mut tab2).await;

    tab1.close().await;
    publish(&mut bob, "room", "1").await;
    s.web.expect("publish").await;
    assert_eq!(tab2.expect("PUBLISH").await["payload"], 1);
    assert_eq!(bob.expect("PUBLISH").await["payload"], 1);

    // Only the last close unsubscribes, with the last connection's cookie.
    tab2.close().await;
    let unsubscribe = s.web.expect("unsubscribe").await;
    assert_eq!(unsubscribe.header("cookie"), Some("user=alice; tab=2"));
    let disconnect = s.web.expect("disconnect").await;
    assert_eq!(disconnect.header("cookie"), Some("user=alice; tab=2"));
    let gone = bob.expect("UNSUBSCRIBE").await;
    assert_eq!(gone["user"], "alice");
    bob.assert_quiet().await;
    assert_no_hooks(&s).await;
}

// ---------------------------------------------------------------------------------------------
// per_connection_subscriptions and global_unsubscriptions

#[tokio::test]
async fn per_connection_subscriptions_route_traffic_to_the_subscribing_tab() {
    let opts = json!({"name": "alice", "per_connection_subscriptions": true});
    let (s, mut bob, mut tab1, mut tab2) =
        bob_and_two_tabs_of_alice(json!({"presenceful": true}), Some(opts.clone())).await;

    join(&mut bob, "room").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    let own = join(&mut tab1, "room").await;
    assert_eq!(own["user"], "alice");
    s.web.expect("subscribe").await;
    assert_eq!(bob.expect("SUBSCRIBE").await["user"], "alice");
    tab2.assert_quiet().await; // the own SUBSCRIBE went to the subscribing tab only

    publish(&mut bob, "room", "1").await;
    s.web.expect("publish").await;
    assert_eq!(tab1.expect("PUBLISH").await["payload"], 1);
    assert_eq!(bob.expect("PUBLISH").await["payload"], 1);
    tab2.assert_quiet().await;

    // A later tab still gets the own SUBSCRIBE frames (quirk) but no channel traffic.
    let mut tab3 = s
        .connect_with("user=alice; tab=3", Some(opts.clone()))
        .await;
    assert_eq!(tab3.expect("SUBSCRIBE").await["channel_name"], "room");
    publish(&mut bob, "room", "2").await;
    s.web.expect("publish").await;
    assert_eq!(tab1.expect("PUBLISH").await["payload"], 2);
    bob.expect("PUBLISH").await;
    tab2.assert_quiet().await;
    tab3.assert_quiet().await;

    // Private messages ignore the mode.
    bob.send("MESSAGE", json!({"name": "alice", "payload": "\"pm\""}))
        .await;
    s.web.expect("message").await;
    for tab in [&mut tab1, &mut tab2, &mut tab3, &mut bob] {
        assert_eq!(tab.expect("MESSAGE").await["payload"], "pm");
    }

    // Closing the only recorded tab unsubscribes the user, although other tabs remain.
    tab1.close().await;
    let hook = s.web.expect("unsubscribe").await;
    assert_eq!(hook.field("user"), Some("alice"));
    assert_eq!(hook.header("cookie"), Some("user=alice; tab=1"));
    assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "alice");
    assert_eq!(tab2.expect("UNSUBSCRIBE").await["channel_name"], "room");
    assert_eq!(tab3.expect("UNSUBSCRIBE").await["channel_name"], "room");
    tab2.assert_quiet().await;
    bob.assert_quiet().await;
    assert_no_hooks(&s).await; // bob is still in: no destroy attempt, and alice is still online
}

#[tokio::test]
async fn per_connection_subscriptions_keep_the_user_while_a_recorded_tab_remains() {
    let opts = json!({"name": "alice", "per_connection_subscriptions": true});
    let (s, mut bob, mut tab1, mut tab2) =
        bob_and_two_tabs_of_alice(json!({"moderated": false}), Some(opts.clone())).await;
    join(&mut bob, "room").await;
    s.web.expect("create_channel").await;
    join(&mut tab1, "room").await;
    // Subscribing from tab2 records it: no frame, but it now receives the traffic.
    tab2.send("SUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    tab2.assert_quiet().await;
    publish(&mut bob, "room", "1").await;
    assert_eq!(tab1.expect("PUBLISH").await["payload"], 1);
    assert_eq!(tab2.expect("PUBLISH").await["payload"], 1);
    bob.expect("PUBLISH").await;

    tab1.close().await;
    publish(&mut bob, "room", "2").await;
    assert_eq!(tab2.expect("PUBLISH").await["payload"], 2);
    bob.expect("PUBLISH").await;
    tab2.close().await;
    assert_eq!(
        s.web.expect("disconnect").await.header("cookie"),
        Some("user=alice; tab=2")
    );
    let info = s
        .api_ok("get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["subscribers"], json!(["bob"]));
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn global_unsubscriptions_closing_any_recorded_tab_unsubscribes_the_user() {
    let opts = json!({"name": "alice", "global_unsubscriptions": true});
    let (s, mut bob, mut tab1, mut tab2) = bob_and_two_tabs_of_alice(
        json!({"presenceful": true, "moderated": false}),
        Some(opts.clone()),
    )
    .await;
    join(&mut bob, "both").await;
    s.web.expect("create_channel").await;

    // "both": recorded for tab1 and tab2; "only1": recorded for tab1 only.
    join(&mut tab1, "both").await;
    assert_eq!(tab2.expect("SUBSCRIBE").await["channel_name"], "both");
    tab2.send("SUBSCRIBE", json!({"channel_name": "both"}))
        .await;
    tab2.assert_quiet().await;
    join(&mut tab1, "only1").await;
    s.web.expect("create_channel").await;
    assert_eq!(tab2.expect("SUBSCRIBE").await["channel_name"], "only1");
    assert_eq!(bob.expect("SUBSCRIBE").await["user"], "alice");

    // Normal routing: both tabs get the traffic.
    publish(&mut bob, "both", "1").await;
    tab1.expect("PUBLISH").await;
    tab2.expect("PUBLISH").await;
    bob.expect("PUBLISH").await;

    tab2.close().await;
    assert_eq!(tab1.expect("UNSUBSCRIBE").await["channel_name"], "both");
    let notice = bob.expect("UNSUBSCRIBE").await;
    assert_eq!(notice["user"], "alice");
    assert_eq!(notice["channel_name"], "both");
    tab1.assert_quiet().await;
    bob.assert_quiet().await;
    assert_no_hooks(&s).await; // moderated false; bob keeps "both"; alice is still online
    let info = s.api_ok("get_user_info", &[("user_name", "alice")]).await;
    assert_eq!(info["channels"], json!(["only1"]));
}

// ---------------------------------------------------------------------------------------------
// Private messages

#[tokio::test]
async fn private_message_reaches_every_tab_of_recipient_and_sender() {
    let s = Server::start().await;
    let mut alice1 = s.connected("alice").await;
    let mut alice2 = s.connected("alice").await;
    let mut bob1 = s.connected("bob").await;
    let mut bob2 = s.connected("bob").await;
    let mut carol = s.connected("carol").await;

    alice1
        .send(
            "MESSAGE",
            json!({"name": "bob", "payload": "{\"text\": \"hi \u{e9}\"}"}),
        )
        .await;
    let hook = s.web.expect("message").await;
    assert_eq!(hook.keys(), MESSAGE_HOOK_KEYS);
    assert_eq!(hook.field("sender"), Some("alice"));
    assert_eq!(hook.field("recipient"), Some("bob"));
    assert_eq!(hook.field("recipient_exists"), Some("True"));
    let hooked: Value = serde_json::from_str(hook.field("payload").unwrap()).unwrap();
    assert_eq!(hooked, json!({"text": "hi \u{e9}"}));
    assert_eq!(hook.header("cookie"), Some("user=alice"));

    for tab in [&mut bob1, &mut bob2, &mut alice1, &mut alice2] {
        let m = tab.expect("MESSAGE").await;
        assert_eq!(keys(&m), MESSAGE_KEYS);
        assert_eq!(m["sender"], "alice");
        assert_eq!(m["recipient"], "bob");
        assert_eq!(m["payload"], json!({"text": "hi \u{e9}"}));
        assert_datetime(&m["datetime"]);
    }
    carol.assert_quiet().await;

    // A message to oneself arrives once per tab.
    alice2
        .send("MESSAGE", json!({"name": "alice", "payload": "1"}))
        .await;
    s.web.expect("message").await;
    assert_eq!(alice1.expect("MESSAGE").await["recipient"], "alice");
    assert_eq!(alice2.expect("MESSAGE").await["recipient"], "alice");
    alice1.assert_quiet().await;
    alice2.assert_quiet().await;
    bob1.assert_quiet().await;

    // Missing payload is null; missing name is an error.
    carol.send("MESSAGE", json!({"name": "bob"})).await;
    assert_eq!(s.web.expect("message").await.field("payload"), Some("null"));
    assert_eq!(bob1.expect("MESSAGE").await["payload"], Value::Null);
    bob2.expect("MESSAGE").await;
    carol.expect("MESSAGE").await;
    let id = carol.send("MESSAGE", json!({"payload": "1"})).await;
    assert_eq!(carol.expect_error("name required").await, id);
    let id = carol
        .send("MESSAGE", json!({"name": "bob", "payload": "{"}))
        .await;
    assert_eq!(carol.expect_error("Invalid json for payload").await, id);
    carol.assert_quiet().await;
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn private_message_moderation_and_unknown_recipients() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    let mut bob = s.connected("bob").await;

    // Denied.
    expect_refused(
        &s,
        &mut alice,
        "message",
        Reply::deny(json!({"error": "be nice"})),
        ("MESSAGE", json!({"name": "bob", "payload": "1"})),
        "be nice",
    )
    .await;
    bob.assert_quiet().await;

    // Unknown recipient, approved: only the sender hears, with recipient "null".
    alice
        .send("MESSAGE", json!({"name": "ghost", "payload": "2"}))
        .await;
    let hook = s.web.expect("message").await;
    assert_eq!(hook.field("recipient"), Some("ghost"));
    assert_eq!(hook.field("recipient_exists"), Some("False"));
    let m = alice.expect("MESSAGE").await;
    assert_eq!(keys(&m), MESSAGE_KEYS);
    assert_eq!(m["recipient"], "null");
    assert_eq!(m["sender"], "alice");
    assert_eq!(m["payload"], 2);
    alice.assert_quiet().await;
    bob.assert_quiet().await;

    // Unmoderated sender: no hook; an unknown recipient is an error.
    let mut carol = s
        .connect_with(
            "user=carol",
            Some(json!({"name": "carol", "moderated_message": false})),
        )
        .await;
    let id = carol
        .send("MESSAGE", json!({"name": "ghost", "payload": "3"}))
        .await;
    assert_eq!(carol.expect_error("Invalid user name").await, id);
    carol
        .send("MESSAGE", json!({"name": "bob", "payload": "4"}))
        .await;
    assert_eq!(bob.expect("MESSAGE").await["payload"], 4);
    assert_eq!(carol.expect("MESSAGE").await["recipient"], "bob");
    carol.assert_quiet().await;
    assert_no_hooks(&s).await;

    // reflective false: the sender's tabs get nothing.
    let mut dave = s
        .connect_with(
            "user=dave",
            Some(json!({"name": "dave", "reflective": false})),
        )
        .await;
    dave.send("MESSAGE", json!({"name": "bob", "payload": "5"}))
        .await;
    s.web.expect("message").await;
    assert_eq!(bob.expect("MESSAGE").await["sender"], "dave");
    dave.assert_quiet().await;
}

// ---------------------------------------------------------------------------------------------
// The disconnect cascade

#[tokio::test]
async fn last_close_runs_unsubscribe_then_destroy_then_disconnect() {
    let (s, mut bob, mut tab1, mut tab2) =
        bob_and_two_tabs_of_alice(json!({"presenceful": true}), None).await;

    join(&mut tab1, "solo").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    tab2.expect("SUBSCRIBE").await;
    join(&mut bob, "shared").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    join(&mut tab2, "shared").await;
    s.web.expect("subscribe").await;
    tab1.expect("SUBSCRIBE").await;
    bob.expect("SUBSCRIBE").await;

    tab1.close().await;
    tab2.close().await;
    let mut hooks = Vec::new();
    loop {
        let h = s.web.next().await;
        let done = h.action() == "disconnect";
        hooks.push(h);
        if done {
            break;
        }
    }
    let summary: Vec<(String, Option<String>)> = hooks
        .iter()
        .map(|h| {
            (
                h.action().to_owned(),
                h.field("channel_name").map(str::to_owned),
            )
        })
        .collect();
    let solo = Some("solo".to_owned());
    let shared = Some("shared".to_owned());
    assert_eq!(
        summary,
        [
            ("unsubscribe".to_owned(), solo.clone()),
            ("destroy_channel".to_owned(), solo),
            ("unsubscribe".to_owned(), shared),
            ("disconnect".to_owned(), None),
        ]
    );
    for h in [&hooks[0], &hooks[2]] {
        assert_eq!(h.keys(), ["action", "channel_name", "user"]);
        assert_eq!(h.field("user"), Some("alice"));
        assert_eq!(
            h.header("cookie"),
            Some("user=alice; tab=2"),
            "the last connection's cookie"
        );
        assert_eq!(
            h.header("x-real-ip"),
            None,
            "not on behalf of a live connection"
        );
    }
    assert_eq!(hooks[1].header("cookie"), None);
    let disconnect = &hooks[3];
    assert_eq!(disconnect.keys(), ["action", "name"]);
    assert_eq!(disconnect.field("name"), Some("alice"));
    assert_eq!(disconnect.header("cookie"), Some("user=alice; tab=2"));

    // The remaining subscriber hears alice leave; the user and the empty channel are gone.
    let notice = bob.expect("UNSUBSCRIBE").await;
    assert_eq!(keys(&notice), PRESENCE_KEYS);
    assert_eq!(notice["user"], "alice");
    assert_eq!(notice["channel_name"], "shared");
    bob.assert_quiet().await;
    let (channels, connections) = server_info(&s).await;
    assert_eq!(channels, [json!("shared")]);
    assert_eq!(connections.len(), 1);
    assert_eq!(
        s.api_err("get_user_info", &[("user_name", "alice")]).await,
        "User alice doesn't exist"
    );
    let info = s
        .api_ok("get_channel_info", &[("channel_name", "shared")])
        .await;
    assert_eq!(info["subscribers"], json!(["bob"]));
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn cascade_ignores_unsubscribe_denials_and_keeps_channels_destroy_denies() {
    let s = Server::start().await;
    s.web
        .set("unsubscribe", Reply::deny(json!({"error": "no"})));
    s.web.set("destroy_channel", Reply::deny(json!({})));
    let mut alice = s.connected("alice").await;
    join(&mut alice, "room").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    alice.close().await;
    s.web.expect("unsubscribe").await;
    s.web.expect("destroy_channel").await;
    s.web.expect("disconnect").await;
    let info = s
        .api_ok("get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(
        info["subscribers"],
        json!([]),
        "forced out despite the denial"
    );
}

#[tokio::test]
async fn a_connection_that_never_connected_leaves_no_trace() {
    let s = Server::start().await;
    let c = s.client().await;
    c.close().await;
    let mut d = s.client().await;
    s.web.once("connect", Reply::deny(json!({})));
    d.send("CONNECT", json!({"cookie_string": "user=x"})).await;
    d.expect_error("Unauthorized").await;
    s.web.expect("connect").await;
    d.close().await;
    // The next hook is this user's connect: no disconnect was sent for the two above.
    let _alice = s.connected("alice").await;
    assert_no_hooks(&s).await;
}

// ---------------------------------------------------------------------------------------------
// CONNECT errors

#[tokio::test]
async fn second_connect_is_already_logged_in() {
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    let id = alice
        .send("CONNECT", json!({"cookie_string": "user=bob"}))
        .await;
    assert_eq!(alice.expect_error("Already logged in").await, id);
    alice.assert_quiet().await;
    assert_no_hooks(&s).await;
    let info = s.api_ok("get_user_info", &[("user_name", "alice")]).await;
    assert_eq!(info["connections"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.api_err("get_user_info", &[("user_name", "bob")]).await,
        "User bob doesn't exist"
    );
}

#[tokio::test]
async fn connect_denied_leaves_the_connection_open_and_usable() {
    // Below `--max-failed-connects` (see tests/it/security/webhooks.rs for what happens at it).
    let s = Server::start_with(|c| c.max_failed_connects = 10).await;
    let mut c = s.client().await;

    let missing_name = "Unauthorized (missing name parameter in server response)";
    for (reply, msg) in [
        (
            Reply::deny(json!({"error": "who are you?"})),
            "who are you?",
        ),
        (Reply::deny(json!({})), "Unauthorized"),
        (Reply::ok(json!({})), missing_name),
        (Reply::ok(json!({"name": ""})), missing_name),
        (Reply::ok(json!({"name": null})), missing_name),
    ] {
        let connect = ("CONNECT", json!({"cookie_string": "user=alice"}));
        expect_refused(&s, &mut c, "connect", reply, connect, msg).await;
    }

    // Still not connected.
    let id = c.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    assert_eq!(c.expect_error("Not connected").await, id);
    let (_, connections) = server_info(&s).await;
    assert!(connections.is_empty(), "{connections:?}");

    // A later CONNECT succeeds on the same socket.
    c.send("CONNECT", json!({"cookie_string": "user=alice"}))
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], "alice");
    s.web.expect("connect").await;
    join(&mut c, "x").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
}

// ---------------------------------------------------------------------------------------------
// /web/disconnect

#[tokio::test]
async fn web_disconnect_closes_every_connection_of_the_user_with_the_cascade() {
    let (s, mut bob, mut tab1, mut tab2) =
        bob_and_two_tabs_of_alice(json!({"presenceful": true}), None).await;
    alice_joins_bobs_room(&s, &mut bob, &mut tab1, &mut tab2).await;

    s.api_ok("disconnect", &[("name", "alice")]).await;
    tab1.expect_close().await;
    tab2.expect_close().await;

    let unsubscribe = s.web.expect("unsubscribe").await;
    assert_eq!(unsubscribe.field("channel_name"), Some("room"));
    assert_eq!(unsubscribe.field("user"), Some("alice"));
    let disconnect = s.web.expect("disconnect").await;
    assert_eq!(disconnect.field("name"), Some("alice"));
    let cookie = disconnect.header("cookie").unwrap();
    assert!(
        cookie == "user=alice; tab=1" || cookie == "user=alice; tab=2",
        "{cookie}"
    );
    assert_eq!(unsubscribe.header("cookie"), Some(cookie));

    let notice = bob.expect("UNSUBSCRIBE").await;
    assert_eq!(notice["user"], "alice");
    bob.assert_quiet().await;
    let (channels, connections) = server_info(&s).await;
    assert_eq!(channels, [json!("room")]);
    assert_eq!(connections.len(), 1);
    assert_eq!(
        s.api_err("get_user_info", &[("user_name", "alice")]).await,
        "User alice doesn't exist"
    );
    assert_no_hooks(&s).await;

    // The user can come back.
    let mut again = s.connected("alice").await;
    join(&mut again, "room").await;
    s.web.expect("subscribe").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_is_the_first_frame_of_a_new_tab_even_under_channel_traffic() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    let mut tab1 = s.connected("alice").await;
    join(&mut tab1, "busy").await;
    s.web.expect("create_channel").await;
    let mut publisher = s.connected("bob").await;
    // tab1 keeps alice online (and the channel alive); it reads everything it is sent.
    let reading = tokio::spawn(async move {
        loop {
            tab1.recv().await;
        }
    });

    // bob publishes without pause while new tabs of alice connect; each new tab must see
    // CONNECTED first, then its own SUBSCRIBE, whatever traffic is flowing.
    let stop = tokio_util::sync::CancellationToken::new();
    let stop2 = stop.clone();
    let pumping = tokio::spawn(async move {
        let mut n = 0u64;
        while !stop2.is_cancelled() {
            publisher
                .send("PUBLISH", json!({"channel_name": "busy", "payload": "1"}))
                .await;
            n += 1;
        }
        n
    });
    for _ in 0..50 {
        let mut tab = s.client().await;
        tab.send("CONNECT", json!({"cookie_string": "user=alice"}))
            .await;
        let (_, first, args) = tab.recv().await;
        assert_eq!(first, "CONNECTED", "{args:?}");
        s.web.expect("connect").await;
        tab.close().await;
    }
    stop.cancel();
    assert!(pumping.await.unwrap() > 0);
    reading.abort();
}
