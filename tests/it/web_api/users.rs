//! The Web API's user methods (§4): `subscribe`, `unsubscribe`, `message`, `get_user_info`,
//! `set_user_options` and `disconnect`, with their errors, webhooks and the frames clients get.

use crate::common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn subscribe_via_api() {
    let s = Server::start().await;
    let mut a1 = s.connected("alice").await;
    let mut a2 = s.connected("alice").await;

    assert_eq!(
        s.api_err("subscribe", &[("name", "alice")]).await,
        "Missing channel_name"
    );
    assert_eq!(
        s.api_err("subscribe", &[("channel_name", "c")]).await,
        "Missing name"
    );
    assert_eq!(
        s.api_err("subscribe", &[("channel_name", "c"), ("name", "ghost")])
            .await,
        "User ghost doesn't exist"
    );

    // A create_channel denial is the call's error.
    s.web.once(
        "create_channel",
        Reply::deny(json!({"error": "no channel for you"})),
    );
    assert_eq!(
        s.api_err("subscribe", &[("channel_name", "c"), ("name", "alice")])
            .await,
        "no channel for you"
    );
    s.web.expect("create_channel").await;

    assert_eq!(
        s.api("subscribe", &[("channel_name", "c"), ("name", "alice")])
            .await,
        (200, json!([true, {}]))
    );
    let hook = s.web.expect("create_channel").await;
    assert_eq!(hook.field("channel_name"), Some("c"));
    for c in [&mut a1, &mut a2] {
        let args = c.expect("SUBSCRIBE").await;
        assert_eq!(keys(&args), OWN_SUBSCRIBE_KEYS);
        assert_eq!(
            (args["channel_name"].clone(), args["user"].clone()),
            (json!("c"), json!("alice"))
        );
    }
    // No subscribe webhook without send_hook (the channel is moderated): the next hook the app
    // sees is the one of the next call.
    assert_eq!(
        s.api_ok("get_channel_info", &[("channel_name", "c")]).await["subscribers"],
        json!(["alice"])
    );

    // send_hook=1 calls the subscribe webhook, which may deny.
    let mut b = s.connected("bob").await;
    s.web
        .once("subscribe", Reply::deny(json!({"error": "members only"})));
    assert_eq!(
        s.api_err(
            "subscribe",
            &[("channel_name", "c"), ("name", "bob"), ("send_hook", "1")]
        )
        .await,
        "members only"
    );
    let hook = s.web.expect("subscribe").await;
    assert_eq!(hook.keys(), ["action", "channel_name", "user"]);
    assert_eq!(
        (hook.field("channel_name"), hook.field("user")),
        (Some("c"), Some("bob"))
    );
    s.api_ok(
        "subscribe",
        &[("channel_name", "c"), ("name", "bob"), ("send_hook", "1")],
    )
    .await;
    s.web.expect("subscribe").await;
    assert_eq!(b.expect("SUBSCRIBE").await["user"], "bob");
    assert_eq!(
        s.api_ok("get_channel_info", &[("channel_name", "c")]).await["subscribers"],
        json!(["alice", "bob"])
    );
    a1.assert_quiet().await;
}

#[tokio::test]
async fn unsubscribe_via_api() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    a.send("SUBSCRIBE", json!({"channel_name": "c"})).await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    a.expect("SUBSCRIBE").await;

    assert_eq!(
        s.api_err("unsubscribe", &[("name", "alice")]).await,
        "Missing channel_name"
    );
    assert_eq!(
        s.api_err(
            "unsubscribe",
            &[("channel_name", "nope"), ("name", "alice")]
        )
        .await,
        "Channel nope doesn't exist"
    );
    assert_eq!(
        s.api_err("unsubscribe", &[("channel_name", "c"), ("name", "ghost")])
            .await,
        "User ghost doesn't exist"
    );
    assert_eq!(
        s.api_err("unsubscribe", &[("channel_name", "c")]).await,
        "Missing name"
    );

    assert_eq!(
        s.api("unsubscribe", &[("channel_name", "c"), ("name", "alice")])
            .await,
        (200, json!([true, {}]))
    );
    let args = a.expect("UNSUBSCRIBE").await;
    assert_eq!(keys(&args), PRESENCE_KEYS);
    assert_eq!(
        (args["channel_name"].clone(), args["user"].clone()),
        (json!("c"), json!("alice"))
    );
    // No unsubscribe webhook without send_hook; the emptied channel is then destroyed.
    let hook = s.web.expect("destroy_channel").await;
    assert_eq!(hook.field("channel_name"), Some("c"));
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "c")])
            .await,
        "Channel c doesn't exist"
    );
    assert_eq!(
        s.api_ok("get_user_info", &[("user_name", "alice")]).await["channels"],
        json!([])
    );

    // With send_hook=1 the unsubscribe webhook is asked and may deny.
    s.api_ok("subscribe", &[("channel_name", "d"), ("name", "alice")])
        .await;
    s.web.expect("create_channel").await;
    a.expect("SUBSCRIBE").await;
    s.web
        .once("unsubscribe", Reply::deny(json!({"error": "stay"})));
    assert_eq!(
        s.api_err(
            "unsubscribe",
            &[("channel_name", "d"), ("name", "alice"), ("send_hook", "1")]
        )
        .await,
        "stay"
    );
    let hook = s.web.expect("unsubscribe").await;
    assert_eq!(
        (hook.field("channel_name"), hook.field("user")),
        (Some("d"), Some("alice"))
    );
    a.assert_quiet().await;
    s.api_ok(
        "unsubscribe",
        &[("channel_name", "d"), ("name", "alice"), ("send_hook", "1")],
    )
    .await;
    s.web.expect("unsubscribe").await;
    a.expect("UNSUBSCRIBE").await;
    s.web.expect("destroy_channel").await;
}

#[tokio::test]
async fn message_via_api() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    let mut b = s.connected("bob").await;

    assert_eq!(
        s.api_err("message", &[("recipient_name", "bob")]).await,
        "Missing sender_name"
    );
    assert_eq!(
        s.api_err("message", &[("sender_name", "alice")]).await,
        "Missing recipient_name"
    );
    assert_eq!(
        s.api_err(
            "message",
            &[("sender_name", "ghost"), ("recipient_name", "bob")]
        )
        .await,
        "User ghost doesn't exist"
    );
    assert_eq!(
        s.api_err(
            "message",
            &[("sender_name", "alice"), ("recipient_name", "ghost")]
        )
        .await,
        "Invalid user name"
    );
    assert_eq!(
        s.api_err(
            "message",
            &[
                ("sender_name", "alice"),
                ("recipient_name", "bob"),
                ("payload", "[")
            ]
        )
        .await,
        "Invalid json for payload"
    );

    let body = s
        .api(
            "message",
            &[
                ("sender_name", "alice"),
                ("recipient_name", "bob"),
                ("payload", "{\"hi\": 1}"),
            ],
        )
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    let args = b.expect("MESSAGE").await;
    assert_eq!(keys(&args), MESSAGE_KEYS);
    assert_eq!(
        (
            args["sender"].clone(),
            args["recipient"].clone(),
            args["payload"].clone()
        ),
        (json!("alice"), json!("bob"), json!({"hi": 1}))
    );
    // Reflected to the sender (user option `reflective`, default true).
    assert_eq!(a.expect("MESSAGE").await["recipient"], "bob");

    // send_hook=1: the message webhook decides.
    s.web.once("message", Reply::deny(json!({"error": "hush"})));
    assert_eq!(
        s.api_err(
            "message",
            &[
                ("sender_name", "alice"),
                ("recipient_name", "bob"),
                ("send_hook", "1")
            ]
        )
        .await,
        "hush"
    );
    let hook = s.web.expect("message").await;
    assert_eq!(hook.keys(), MESSAGE_HOOK_KEYS);
    assert_eq!(
        (
            hook.field("sender"),
            hook.field("recipient"),
            hook.field("recipient_exists"),
            hook.field("payload")
        ),
        (Some("alice"), Some("bob"), Some("True"), Some("null"))
    );
    b.assert_quiet().await;
    a.assert_quiet().await;
}

#[tokio::test]
async fn user_options_and_info() {
    let s = Server::unmoderated().await;
    let (mut a1, id1) = s.connected_with_id("alice").await;
    let (_a2, id2) = s.connected_with_id("alice").await;
    join(&mut a1, "c").await;
    s.web.expect("create_channel").await;

    assert_eq!(s.api_err("get_user_info", &[]).await, "Missing user_name");
    assert_eq!(
        s.api_err("get_user_info", &[("user_name", "ghost")]).await,
        "User ghost doesn't exist"
    );
    let info = s.api_ok("get_user_info", &[("user_name", "alice")]).await;
    let mut expected = json!({
        "name": "alice",
        "channels": ["c"],
        "connections": [id1, id2],
        "options": {
            "reflective": true,
            "moderated_message": true,
            "per_connection_subscriptions": false,
            "global_unsubscriptions": false,
            "auto_subscribe": []
        }
    });
    assert_eq!(info, expected);

    assert_eq!(
        s.api_err("set_user_options", &[("reflective", "false")])
            .await,
        "Missing user_name"
    );
    assert_eq!(
        s.api_err(
            "set_user_options",
            &[("user_name", "ghost"), ("reflective", "false")]
        )
        .await,
        "User ghost doesn't exist"
    );
    assert_eq!(
        s.api_err(
            "set_user_options",
            &[("user_name", "alice"), ("reflective", "no")]
        )
        .await,
        "Invalid json value for option reflective"
    );
    assert_eq!(
        s.api_err(
            "set_user_options",
            &[("user_name", "alice"), ("reflective", "0")]
        )
        .await,
        "Invalid type for reflective (should be bool)"
    );
    assert_eq!(
        s.api_err(
            "set_user_options",
            &[("user_name", "alice"), ("history_size", "1")]
        )
        .await,
        "Invalid keyword argument history_size"
    );
    let body = s
        .api(
            "set_user_options",
            &[
                ("user_name", "alice"),
                ("reflective", "false"),
                ("auto_subscribe", "[\"x\"]"),
            ],
        )
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    expected["options"]["reflective"] = json!(false);
    expected["options"]["auto_subscribe"] = json!(["x"]);
    assert_eq!(
        s.api_ok("get_user_info", &[("user_name", "alice")]).await,
        expected
    );

    // The option takes effect: alice's private messages are no longer echoed to her.
    let mut b = s.connected("bob").await;
    s.api_ok(
        "message",
        &[
            ("sender_name", "alice"),
            ("recipient_name", "bob"),
            ("payload", "1"),
        ],
    )
    .await;
    assert_eq!(b.expect("MESSAGE").await["sender"], "alice");
    a1.assert_quiet().await;
}

#[tokio::test]
async fn disconnect_closes_every_connection_of_the_user() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"moderated": false, "presenceful": true}));
    let mut a1 = s.connected("alice").await;
    let mut a2 = s.connected("alice").await;
    let mut b = s.connected("bob").await;
    join(&mut a1, "room").await;
    s.web.expect("create_channel").await;
    a2.expect("SUBSCRIBE").await;
    join(&mut b, "room").await;
    a1.expect("SUBSCRIBE").await;
    a2.expect("SUBSCRIBE").await;

    assert_eq!(s.api_err("disconnect", &[]).await, "Missing name");
    assert_eq!(
        s.api_err("disconnect", &[("name", "ghost")]).await,
        "User ghost doesn't exist"
    );

    assert_eq!(
        s.api("disconnect", &[("name", "alice")]).await,
        (200, json!([true, {"connections": 2}]))
    );
    for c in [&mut a1, &mut a2] {
        assert_eq!(
            c.expect_close().await,
            Some((1000, "disconnected by the web application".to_owned()))
        );
    }
    // The usual cascade: bob sees alice leave, then the disconnect webhook fires.
    let args = b.expect("UNSUBSCRIBE").await;
    assert_eq!(
        (args["channel_name"].clone(), args["user"].clone()),
        (json!("room"), json!("alice"))
    );
    let hook = s.web.expect("disconnect").await;
    assert_eq!(hook.field("name"), Some("alice"));
    assert_eq!(
        s.api_err("get_user_info", &[("user_name", "alice")]).await,
        "User alice doesn't exist"
    );
    assert_eq!(
        s.api_ok("get_channel_info", &[("channel_name", "room")])
            .await["subscribers"],
        json!(["bob"])
    );

    // `identifier`, the original's parameter name, works too.
    s.api_ok("disconnect", &[("identifier", "bob")]).await;
    b.expect_close().await;
    s.web.expect("destroy_channel").await;
    s.web.expect("disconnect").await;
    assert_eq!(
        s.api_ok("get_server_info", &[]).await,
        json!({"channels": [], "connections": []})
    );
}
