//! The Web API's channel methods (§4): `create_channel`, `get_channel_info`, `destroy_channel`,
//! `set_channel_options`, `state_set_key` and `state_delete_key`, with their errors, webhooks and
//! the frames subscribers get.

use crate::common;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn create_channel_with_options_and_errors() {
    let s = Server::start().await;
    assert_eq!(
        s.api_err("create_channel", &[]).await,
        "Missing channel_name"
    );
    let body = s
        .api(
            "create_channel",
            &[
                ("channel_name", "c"),
                ("history_size", "5"),
                ("presenceful", "true"),
                ("state", "{\"k\": [1]}"),
            ],
        )
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    let opts = &s.api_ok("get_channel_info", &[("channel_name", "c")]).await["options"];
    assert_eq!(
        (opts["history_size"].clone(), opts["presenceful"].clone()),
        (json!(5), json!(true))
    );
    assert_eq!(opts["state"], json!({"k": [1]}));
    assert_eq!(opts["moderated"], true, "defaults kept");

    assert_eq!(
        s.api_err("create_channel", &[("channel_name", "c")]).await,
        "Channel c already exists"
    );
    assert_eq!(
        s.api_err(
            "create_channel",
            &[("channel_name", "d"), ("history_size", "five")]
        )
        .await,
        "Invalid json value for option history_size"
    );
    assert_eq!(
        s.api_err("create_channel", &[("channel_name", "d"), ("bogus", "1")])
            .await,
        "Invalid keyword argument bogus"
    );
    assert_eq!(
        s.api_err(
            "create_channel",
            &[("channel_name", "d"), ("presenceful", "1")]
        )
        .await,
        "Invalid type for presenceful (should be bool)"
    );
    assert_eq!(
        s.api_err(
            "create_channel",
            &[("channel_name", "d"), ("history_size", "5.0")]
        )
        .await,
        "Invalid type for history_size (should be int)"
    );
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "d")])
            .await,
        "Channel d doesn't exist"
    );

    // send_hook=1: the create_channel webhook may deny; its options override the given ones.
    s.web
        .once("create_channel", Reply::deny(json!({"error": "no d"})));
    assert_eq!(
        s.api_err(
            "create_channel",
            &[("channel_name", "d"), ("send_hook", "1")]
        )
        .await,
        "no d"
    );
    let hook = s.web.expect("create_channel").await;
    assert_eq!(hook.keys(), ["action", "channel_name"]);
    assert_eq!(hook.field("channel_name"), Some("d"));
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "d")])
            .await,
        "Channel d doesn't exist"
    );
    s.web.once(
        "create_channel",
        Reply::ok(json!({"history_size": 7, "anonymous": true})),
    );
    s.api_ok(
        "create_channel",
        &[
            ("channel_name", "d"),
            ("send_hook", "1"),
            ("history_size", "3"),
            ("reflective", "false"),
        ],
    )
    .await;
    s.web.expect("create_channel").await;
    let opts = &s.api_ok("get_channel_info", &[("channel_name", "d")]).await["options"];
    assert_eq!(
        (
            opts["history_size"].clone(),
            opts["anonymous"].clone(),
            opts["reflective"].clone()
        ),
        (json!(7), json!(true), json!(false))
    );
}

#[tokio::test]
async fn create_channel_without_send_hook_calls_no_webhook() {
    let s = Server::start().await;
    s.api_ok("create_channel", &[("channel_name", "quiet")])
        .await;
    // The first hook the web app sees is the connect below, not a create_channel.
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=zed"}))
        .await;
    s.web.expect("connect").await;
    c.expect("CONNECTED").await;
}

#[tokio::test]
async fn get_channel_info_shows_every_option() {
    let s = Server::start().await;
    assert_eq!(
        s.api_err("get_channel_info", &[]).await,
        "Missing channel_name"
    );
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "x")])
            .await,
        "Channel x doesn't exist"
    );
    s.api_ok("create_channel", &[("channel_name", "x")]).await;
    let info = s.api_ok("get_channel_info", &[("channel_name", "x")]).await;
    let expected = json!({
        "name": "x",
        "options": {
            "reflective": true,
            "history_size": 0,
            "history": [],
            "history_duration": 0,
            "history_publish_only": false,
            "moderated": true,
            "moderated_publish": false,
            "moderated_subscribe": false,
            "moderated_unsubscribe": false,
            "presenceful": false,
            "anonymous": false,
            "polling": {"mode": "", "interval": 5.0, "url": "", "form": {}, "originator": ""},
            "state": {},
            "server_presenceful": false,
            "server_user_presence": []
        },
        "subscribers": []
    });
    assert_eq!(info, expected);
}

#[tokio::test]
async fn destroy_channel_unsubscribes_every_subscriber() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"moderated": false, "presenceful": true}));
    let names = ["alice", "bob", "carol", "dave"];
    let mut clients = Vec::new();
    for n in names {
        clients.push(s.connected(n).await);
    }
    for i in 0..clients.len() {
        let own = join(&mut clients[i], "room").await;
        assert_eq!(own["presence"].as_array().unwrap().len(), i + 1);
        if i == 0 {
            s.web.expect("create_channel").await;
        }
        for earlier in clients.iter_mut().take(i) {
            assert_eq!(earlier.expect("SUBSCRIBE").await["user"], names[i]);
        }
    }

    assert_eq!(
        s.api_err("destroy_channel", &[]).await,
        "Missing channel_name"
    );
    assert_eq!(
        s.api_err("destroy_channel", &[("channel_name", "nope")])
            .await,
        "Channel nope doesn't exist"
    );
    assert_eq!(
        s.api("destroy_channel", &[("channel_name", "room")]).await,
        (200, json!([true, {}]))
    );
    for (c, n) in clients.iter_mut().zip(names) {
        let args = c.expect("UNSUBSCRIBE").await;
        assert_eq!(keys(&args), PRESENCE_KEYS);
        assert_eq!(
            (args["channel_name"].clone(), args["user"].clone()),
            (json!("room"), json!(n))
        );
        // Only its own UNSUBSCRIBE: no presence broadcast of the others leaving.
        c.assert_quiet().await;
    }
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "room")])
            .await,
        "Channel room doesn't exist"
    );
    assert_eq!(
        s.api_ok("get_server_info", &[]).await["channels"],
        json!([])
    );
    for n in names {
        assert_eq!(
            s.api_ok("get_user_info", &[("user_name", n)]).await["channels"],
            json!([]),
            "{n}"
        );
    }
    // Rejoining creates a fresh channel (create_channel is the next webhook: none was called for
    // the destruction without send_hook) in which the old subscribers are gone.
    let own = join(&mut clients[1], "room").await;
    s.web.expect("create_channel").await;
    assert_eq!(own["presence"], json!(["bob"]));
    clients[0].assert_quiet().await;
}

#[tokio::test]
async fn destroy_channel_with_send_hook() {
    let s = Server::unmoderated().await;
    let mut a = s.connected("alice").await;
    let mut b = s.connected("bob").await;
    join(&mut a, "room").await;
    s.web.expect("create_channel").await;
    join(&mut b, "room").await;

    s.web
        .once("destroy_channel", Reply::deny(json!({"error": "keep it"})));
    assert_eq!(
        s.api_err(
            "destroy_channel",
            &[("channel_name", "room"), ("send_hook", "1")]
        )
        .await,
        "keep it"
    );
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("room")
    );
    assert_eq!(
        s.api_ok("get_channel_info", &[("channel_name", "room")])
            .await["subscribers"],
        json!(["alice", "bob"])
    );
    a.assert_quiet().await;

    s.api_ok(
        "destroy_channel",
        &[("channel_name", "room"), ("send_hook", "1")],
    )
    .await;
    s.web.expect("destroy_channel").await;
    let mut unsubscribed = Vec::new();
    for _ in 0..2 {
        let hook = s.web.expect("unsubscribe").await;
        assert_eq!(hook.field("channel_name"), Some("room"));
        unsubscribed.push(hook.field("user").unwrap().to_owned());
    }
    unsubscribed.sort();
    assert_eq!(unsubscribed, ["alice", "bob"]);
    assert_eq!(a.expect("UNSUBSCRIBE").await["user"], "alice");
    assert_eq!(b.expect("UNSUBSCRIBE").await["user"], "bob");
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "room")])
            .await,
        "Channel room doesn't exist"
    );
}

#[tokio::test]
async fn set_channel_options_merges_and_broadcasts_state() {
    let s = Server::unmoderated().await;
    let mut a = s.connected("alice").await;
    join(&mut a, "c").await;
    s.web.expect("create_channel").await;

    assert_eq!(
        s.api_err("set_channel_options", &[("history_size", "1")])
            .await,
        "Missing channel_name"
    );
    assert_eq!(
        s.api_err(
            "set_channel_options",
            &[("channel_name", "nope"), ("history_size", "1")]
        )
        .await,
        "Channel nope doesn't exist"
    );
    assert_eq!(
        s.api_err(
            "set_channel_options",
            &[("channel_name", "c"), ("reflective", "nah")]
        )
        .await,
        "Invalid json value for option reflective"
    );
    assert_eq!(
        s.api_err(
            "set_channel_options",
            &[("channel_name", "c"), ("colour", "\"red\"")]
        )
        .await,
        "Invalid keyword argument colour"
    );
    // All or nothing: a bad key leaves the good one unapplied.
    assert_eq!(
        s.api_err(
            "set_channel_options",
            &[
                ("channel_name", "c"),
                ("history_size", "4"),
                ("anonymous", "3")
            ]
        )
        .await,
        "Invalid type for anonymous (should be bool)"
    );
    assert_eq!(
        s.api_ok("get_channel_info", &[("channel_name", "c")]).await["options"]["history_size"],
        0
    );

    let body = s
        .api(
            "set_channel_options",
            &[
                ("channel_name", "c"),
                ("history_size", "4"),
                ("state", "{\"x\": 1, \"y\": 2}"),
            ],
        )
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    let args = a.expect("STATE_UPDATE").await;
    assert_eq!(
        serde_json::Value::Object(args),
        json!({"channel_name": "c", "updates": {"x": 1, "y": 2}, "deletes": []})
    );
    s.api_ok(
        "set_channel_options",
        &[("channel_name", "c"), ("state", "{\"x\": 1, \"z\": 3}")],
    )
    .await;
    let args = a.expect("STATE_UPDATE").await;
    assert_eq!(
        serde_json::Value::Object(args),
        json!({"channel_name": "c", "updates": {"z": 3}, "deletes": ["y"]})
    );
    // Unchanged state: no frame.
    s.api_ok(
        "set_channel_options",
        &[("channel_name", "c"), ("state", "{\"z\": 3, \"x\": 1}")],
    )
    .await;
    a.assert_quiet().await;
    let opts = &s.api_ok("get_channel_info", &[("channel_name", "c")]).await["options"];
    assert_eq!(
        (opts["history_size"].clone(), opts["state"].clone()),
        (json!(4), json!({"x": 1, "z": 3}))
    );
    assert_eq!(opts["moderated"], false, "other options untouched");
}

#[tokio::test]
async fn state_keys() {
    let s = Server::unmoderated().await;
    let mut a = s.connected("alice").await;
    join(&mut a, "st").await;
    s.web.expect("create_channel").await;

    assert_eq!(
        s.api_err("state_set_key", &[("key", "k"), ("val", "1")])
            .await,
        "Missing channel_name"
    );
    assert_eq!(
        s.api_err("state_set_key", &[("channel_name", "st"), ("val", "1")])
            .await,
        "Missing key"
    );
    assert_eq!(
        s.api_err("state_set_key", &[("channel_name", "st"), ("key", "k")])
            .await,
        "Missing 'val' argument"
    );
    assert_eq!(
        s.api_err(
            "state_set_key",
            &[("channel_name", "st"), ("key", "k"), ("val", "{oops")]
        )
        .await,
        "Invalid json for val"
    );
    assert_eq!(
        s.api_err(
            "state_set_key",
            &[("channel_name", "nope"), ("key", "k"), ("val", "1")]
        )
        .await,
        "Channel nope doesn't exist"
    );
    assert_eq!(
        s.api_err("state_delete_key", &[("channel_name", "st")])
            .await,
        "Missing key"
    );
    assert_eq!(
        s.api_err("state_delete_key", &[("key", "k")]).await,
        "Missing channel_name"
    );
    assert_eq!(
        s.api_err(
            "state_delete_key",
            &[("channel_name", "nope"), ("key", "k")]
        )
        .await,
        "Channel nope doesn't exist"
    );
    a.assert_quiet().await;

    let body = s
        .api(
            "state_set_key",
            &[
                ("channel_name", "st"),
                ("key", "k"),
                ("val", "{\"b\": [1, 2]}"),
            ],
        )
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    let args = a.expect("STATE_UPDATE").await;
    assert_eq!(
        Value::Object(args),
        json!({"channel_name": "st", "updates": {"k": {"b": [1, 2]}}, "deletes": []})
    );
    // The same value again: no frame.
    s.api_ok(
        "state_set_key",
        &[
            ("channel_name", "st"),
            ("key", "k"),
            ("val", "{\"b\": [1, 2]}"),
        ],
    )
    .await;
    a.assert_quiet().await;
    assert_eq!(
        s.api_ok("get_channel_info", &[("channel_name", "st")])
            .await["options"]["state"],
        json!({"k": {"b": [1, 2]}})
    );

    let body = s
        .api("state_delete_key", &[("channel_name", "st"), ("key", "k")])
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    let args = a.expect("STATE_UPDATE").await;
    assert_eq!(
        Value::Object(args),
        json!({"channel_name": "st", "updates": {}, "deletes": ["k"]})
    );
    // Deleting a missing key succeeds quietly.
    s.api_ok("state_delete_key", &[("channel_name", "st"), ("key", "k")])
        .await;
    a.assert_quiet().await;
    // New subscribers see the state in their own SUBSCRIBE.
    s.api_ok(
        "state_set_key",
        &[("channel_name", "st"), ("key", "n"), ("val", "null")],
    )
    .await;
    a.expect("STATE_UPDATE").await;
    let mut b = s.connected("bob").await;
    assert_eq!(join(&mut b, "st").await["state"], json!({"n": null}));
}
