//! The Web API (§4): every method's success and error bodies, the frames connected clients get
//! as a result, authentication, parameter sources, and the separate API listener.

mod common;
use common::*;
use serde_json::{json, Value};

const DISABLED: &str =
    "Rest api is disabled by configuration. (Please supply --rest-secret/-r option at start)";
const OWN_SUBSCRIBE_KEYS: [&str; 7] = [
    "channel_name",
    "history",
    "history_duration",
    "history_size",
    "presence",
    "state",
    "user",
];

/// A connected client and its connection id (from the connect webhook).
async fn connect_with_id(s: &Server, name: &str) -> (Client, String) {
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": format!("user={name}")}))
        .await;
    let hook = s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], name);
    (c, hook.field("conn_id").unwrap().to_owned())
}

/// Subscribes a client to an existing channel through a SUBSCRIBE frame, taking its own frame.
async fn join(c: &mut Client, channel: &str) -> serde_json::Map<String, Value> {
    c.send("SUBSCRIBE", json!({"channel_name": channel})).await;
    let args = c.expect("SUBSCRIBE").await;
    assert_eq!(args["channel_name"], channel);
    args
}

/// A server whose channels are created unmoderated by the create_channel webhook.
async fn unmoderated() -> Server {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    s
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new().get(url).send().await.unwrap()
}

async fn body_json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

// ---------------------------------------------------------------------------------------------
// Dispatch, authentication, parameters

#[tokio::test]
async fn unknown_method_is_404_before_auth() {
    let s = Server::start().await;
    let (status, body) = s.api_raw("/web/no_such_method", &[]).await;
    assert_eq!((status, body), (404, json!("Not Found")));
    let (status, body) = s.api("no_such_method", &[]).await;
    assert_eq!((status, body), (404, json!("Not Found")));
    let resp = get(&format!("http://{}/web/bogus", s.addr)).await;
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.text().await.unwrap(), "Not Found");
}

#[tokio::test]
async fn api_disabled_without_token() {
    let s = Server::start_with(|c| c.api_security_token = None).await;
    for form in [
        vec![],
        vec![("security_token", "")],
        vec![("security_token", "secret")],
    ] {
        let (status, body) = s.api_raw("/web/get_server_info", &form).await;
        assert_eq!(status, 200);
        assert_eq!(body, json!([false, {"msg": DISABLED}]));
    }
    // Unknown methods are still 404.
    assert_eq!(s.api_raw("/web/nope", &[]).await.0, 404);
}

#[tokio::test]
async fn wrong_or_missing_token_is_refused() {
    let s = Server::start().await;
    let refused = json!([false, {"msg": "Invalid Security Token"}]);
    for form in [
        vec![],
        vec![("security_token", "wrong")],
        vec![("security_token", "")],
        vec![("secret", "secret")],
    ] {
        assert_eq!(
            s.api_raw("/web/get_server_info", &form).await,
            (200, refused.clone()),
            "{form:?}"
        );
    }
    // A refused call changes nothing.
    let (_, body) = s
        .api_raw(
            "/web/create_channel",
            &[("security_token", "nope"), ("channel_name", "c")],
        )
        .await;
    assert_eq!(body, refused);
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "c")])
            .await,
        "Channel c doesn't exist"
    );
}

#[tokio::test]
async fn post_reads_only_the_body_and_get_only_the_query() {
    let s = Server::start().await;
    let http = reqwest::Client::new();
    let refused = json!([false, {"msg": "Invalid Security Token"}]);
    // POST with the token only in the query string.
    let resp = http
        .post(format!(
            "http://{}/web/get_server_info?security_token=secret",
            s.addr
        ))
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(body_json(resp).await, refused);
    // POST: body token wins even when the query has another.
    let resp = http
        .post(format!(
            "http://{}/web/get_server_info?security_token=wrong",
            s.addr
        ))
        .form(&[("security_token", "secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        body_json(resp).await,
        json!([true, {"channels": [], "connections": []}])
    );
    // GET reads the query string...
    let resp = get(&format!(
        "http://{}/web/get_server_info?security_token=secret",
        s.addr
    ))
    .await;
    assert_eq!(
        body_json(resp).await,
        json!([true, {"channels": [], "connections": []}])
    );
    // ...and not a body.
    let resp = http
        .get(format!("http://{}/web/get_server_info", s.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("security_token=secret")
        .send()
        .await
        .unwrap();
    assert_eq!(body_json(resp).await, refused);
}

#[tokio::test]
async fn get_with_query_parameters_acts() {
    let s = unmoderated().await;
    let mut c = s.connected("alice").await;
    join(&mut c, "q").await;
    s.web.expect("create_channel").await;
    let url = format!(
        "http://{}/web/publish?security_token=secret&channel_name=q&payload=%7B%22a%22%3A%5B1%2C2%5D%7D&originator=web",
        s.addr
    );
    assert_eq!(body_json(get(&url).await).await, json!([true, {}]));
    let args = c.expect("PUBLISH").await;
    assert_eq!(args["payload"], json!({"a": [1, 2]}));
    assert_eq!(args["user"], "web");
}

#[tokio::test]
async fn first_value_of_a_repeated_key_wins() {
    let s = unmoderated().await;
    let ok = s
        .api_raw(
            "/web/get_server_info",
            &[("security_token", "secret"), ("security_token", "wrong")],
        )
        .await;
    assert_eq!(ok.1[0], true);
    let refused = s
        .api_raw(
            "/web/get_server_info",
            &[("security_token", "wrong"), ("security_token", "secret")],
        )
        .await;
    assert_eq!(refused.1, json!([false, {"msg": "Invalid Security Token"}]));

    let mut c = s.connected("alice").await;
    join(&mut c, "first").await;
    s.web.expect("create_channel").await;
    s.api_ok(
        "publish",
        &[
            ("channel_name", "first"),
            ("channel_name", "second"),
            ("payload", "1"),
            ("payload", "2"),
        ],
    )
    .await;
    let args = c.expect("PUBLISH").await;
    assert_eq!(
        (args["channel_name"].clone(), args["payload"].clone()),
        (json!("first"), json!(1))
    );
}

#[tokio::test]
async fn responses_are_labelled_json() {
    let s = Server::start().await;
    let http = reqwest::Client::new();
    for form in [
        vec![("security_token", "secret")],
        vec![("security_token", "bad")],
    ] {
        let resp = http
            .post(format!("http://{}/web/get_server_info", s.addr))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(ct.as_deref(), Some("application/json"), "{form:?}");
    }
    let resp = http
        .post(format!("http://{}/web/publish", s.addr))
        .form(&[("security_token", "secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(
        body_json(resp).await,
        json!([false, {"msg": "Missing channel_name"}])
    );
}

#[tokio::test]
async fn separate_api_listener_serves_both_paths_and_main_port_loses_web() {
    let s = Server::start_with(|c| c.web_api = Some(("127.0.0.1".into(), 0))).await;
    assert_ne!(s.api_addr, s.addr);
    let empty = json!([true, {"channels": [], "connections": []}]);
    assert_eq!(
        s.api_raw("/web/get_server_info", &[("security_token", "secret")])
            .await,
        (200, empty.clone())
    );
    assert_eq!(
        s.api_raw("/get_server_info", &[("security_token", "secret")])
            .await,
        (200, empty.clone())
    );
    assert_eq!(
        s.api_raw("/get_server_info", &[("security_token", "x")])
            .await
            .1[0],
        false
    );
    assert_eq!(
        s.api_raw("/nope", &[("security_token", "secret")]).await,
        (404, json!("Not Found"))
    );
    // The API acts on the same hub as the main listener.
    s.api_ok("create_channel", &[("channel_name", "shared")])
        .await;
    let mut c = s.connected("alice").await;
    join(&mut c, "shared").await;
    s.web.expect("subscribe").await;
    // The main port has no /web any more.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/web/get_server_info", s.addr))
        .form(&[("security_token", "secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}

// ---------------------------------------------------------------------------------------------
// The sixteen methods

#[tokio::test]
async fn get_server_info_lists_channels_and_connections() {
    let s = unmoderated().await;
    assert_eq!(
        s.api_ok("get_server_info", &[]).await,
        json!({"channels": [], "connections": []})
    );
    let (mut a, id_a) = connect_with_id(&s, "alice").await;
    let (_b, id_b) = connect_with_id(&s, "bob").await;
    join(&mut a, "room").await;
    s.web.expect("create_channel").await;
    let info = s.api_ok("get_server_info", &[]).await;
    assert_eq!(
        info,
        json!({"channels": ["room"], "connections": [id_a, id_b]})
    );
    a.close().await;
    // alice's close runs the cascade: the channel is destroyed, then she is gone.
    s.web.expect("destroy_channel").await;
    s.web.expect("disconnect").await;
    assert_eq!(
        s.api_ok("get_server_info", &[]).await,
        json!({"channels": [], "connections": [id_b]})
    );
}

#[tokio::test]
async fn publish_frames_and_errors() {
    let s = unmoderated().await;
    let mut a = s.connected("alice").await;
    join(&mut a, "news").await;
    s.web.expect("create_channel").await;

    assert_eq!(s.api_err("publish", &[]).await, "Missing channel_name");
    assert_eq!(
        s.api_err("publish", &[("channel_name", "")]).await,
        "Missing channel_name"
    );
    assert_eq!(
        s.api_err("publish", &[("channel_name", "nope")]).await,
        "Channel nope doesn't exist"
    );
    assert_eq!(
        s.api_err("publish", &[("channel_name", "news"), ("payload", "{bad")])
            .await,
        "Invalid json for payload"
    );

    let (status, body) = s
        .api(
            "publish",
            &[
                ("channel_name", "news"),
                ("payload", "{\"n\": 1}"),
                ("originator", "bob"),
            ],
        )
        .await;
    assert_eq!((status, body), (200, json!([true, {}])));
    let args = a.expect("PUBLISH").await;
    assert_eq!(keys(&args), ["channel_name", "datetime", "payload", "user"]);
    assert_eq!(args["channel_name"], "news");
    assert_eq!(args["payload"], json!({"n": 1}));
    assert_eq!(args["user"], "bob");
    assert_datetime(&args["datetime"]);

    // No originator: `user` is JSON null; no payload: null.
    s.api_ok("publish", &[("channel_name", "news")]).await;
    let args = a.expect("PUBLISH").await;
    assert_eq!(keys(&args), ["channel_name", "datetime", "payload", "user"]);
    assert_eq!(args["user"], Value::Null);
    assert_eq!(args["payload"], Value::Null);
    a.assert_quiet().await;
}

#[tokio::test]
async fn publish_calls_the_webhook_only_with_send_hook_1() {
    let s = Server::start().await; // channels moderated by default
    let mut a = s.connected("alice").await;
    a.send("SUBSCRIBE", json!({"channel_name": "mod"})).await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    a.expect("SUBSCRIBE").await;

    // Without send_hook=1 (including other truthy-looking values), no webhook.
    s.api_ok("publish", &[("channel_name", "mod"), ("payload", "1")])
        .await;
    s.api_ok(
        "publish",
        &[
            ("channel_name", "mod"),
            ("payload", "2"),
            ("send_hook", "true"),
        ],
    )
    .await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 1);
    assert_eq!(a.expect("PUBLISH").await["payload"], 2);

    let body = s
        .api(
            "publish",
            &[
                ("channel_name", "mod"),
                ("payload", "[3, \"x\"]"),
                ("originator", "bob"),
                ("send_hook", "1"),
            ],
        )
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    // The first webhook the app sees is this publish: the earlier two called none.
    let hook = s.web.expect("publish").await;
    assert_eq!(
        hook.keys(),
        ["action", "channel_name", "originator", "payload"]
    );
    assert_eq!(hook.field("channel_name"), Some("mod"));
    assert_eq!(hook.field("originator"), Some("bob"));
    assert_eq!(
        serde_json::from_str::<Value>(hook.field("payload").unwrap()).unwrap(),
        json!([3, "x"])
    );
    assert_eq!(hook.header("cookie"), None);
    let args = a.expect("PUBLISH").await;
    assert_eq!(
        (args["payload"].clone(), args["user"].clone()),
        (json!([3, "x"]), json!("bob"))
    );

    // The reply's override_payload applies.
    s.web.once(
        "publish",
        Reply::ok(json!({"override_payload": {"o": true}})),
    );
    s.api_ok(
        "publish",
        &[
            ("channel_name", "mod"),
            ("payload", "4"),
            ("send_hook", "1"),
        ],
    )
    .await;
    s.web.expect("publish").await;
    assert_eq!(a.expect("PUBLISH").await["payload"], json!({"o": true}));

    // A denial fails the call and nothing is published.
    s.web
        .once("publish", Reply::deny(json!({"error": "not now"})));
    assert_eq!(
        s.api_err(
            "publish",
            &[
                ("channel_name", "mod"),
                ("payload", "5"),
                ("send_hook", "1")
            ]
        )
        .await,
        "not now"
    );
    s.web.expect("publish").await;
    a.assert_quiet().await;
}

#[tokio::test]
async fn publish_to_missing_channel_with_x_succeeds_silently() {
    let s = Server::start_with(|c| c.ignore_publish_non_existing = true).await;
    assert_eq!(
        s.api("publish", &[("channel_name", "ghost"), ("payload", "1")])
            .await,
        (200, json!([true, {}]))
    );
    // Nothing was created, and other errors still apply.
    assert_eq!(
        s.api_ok("get_server_info", &[]).await["channels"],
        json!([])
    );
    assert_eq!(s.api_err("publish", &[]).await, "Missing channel_name");
}

#[tokio::test]
async fn publish_multi_skips_missing_channels() {
    let s = unmoderated().await;
    let mut a = s.connected("alice").await;
    join(&mut a, "a").await;
    s.web.expect("create_channel").await;
    join(&mut a, "b").await;
    s.web.expect("create_channel").await;

    assert_eq!(
        s.api_err("publish_multi", &[]).await,
        "Missing channel_names"
    );
    assert_eq!(
        s.api_err("publish_multi", &[("channel_names", "")]).await,
        "Missing channel_names"
    );
    assert_eq!(
        s.api_err(
            "publish_multi",
            &[("channel_names", "a"), ("payload", "nope")]
        )
        .await,
        "Invalid json for payload"
    );
    let body = s
        .api(
            "publish_multi",
            &[
                ("channel_names", "a,missing,b"),
                ("payload", "\"hi\""),
                ("originator", "ops"),
            ],
        )
        .await;
    assert_eq!(body, (200, json!([true, {}])));
    let mut got = Vec::new();
    for _ in 0..2 {
        let args = a.expect("PUBLISH").await;
        assert_eq!(
            (args["payload"].clone(), args["user"].clone()),
            (json!("hi"), json!("ops"))
        );
        got.push(args["channel_name"].as_str().unwrap().to_owned());
    }
    got.sort();
    assert_eq!(got, ["a", "b"]);
    a.assert_quiet().await;
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "missing")])
            .await,
        "Channel missing doesn't exist"
    );
}

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
    assert_eq!(keys(&args), ["channel_name", "datetime", "user"]);
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
    assert_eq!(keys(&args), ["datetime", "payload", "recipient", "sender"]);
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
    assert_eq!(
        hook.keys(),
        [
            "action",
            "payload",
            "recipient",
            "recipient_exists",
            "sender"
        ]
    );
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
        assert_eq!(keys(&args), ["channel_name", "datetime", "user"]);
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
    let s = unmoderated().await;
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
    let s = unmoderated().await;
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
    let s = unmoderated().await;
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

#[tokio::test]
async fn user_options_and_info() {
    let s = unmoderated().await;
    let (mut a1, id1) = connect_with_id(&s, "alice").await;
    let (_a2, id2) = connect_with_id(&s, "alice").await;
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
async fn set_config_moves_webhooks_live() {
    let s = Server::start().await;
    let web2 = WebApp::start().await;
    assert_eq!(
        s.api("set_config", &[("cbport", &web2.addr.port().to_string())])
            .await,
        (200, json!([true, {}]))
    );
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=zed"}))
        .await;
    let hook = web2.expect("connect").await;
    assert_eq!(hook.path, "/hookbox/connect");
    assert_eq!(c.expect("CONNECTED").await["name"], "zed");

    s.api_ok(
        "set_config",
        &[("cbpath", "/elsewhere"), ("cb_connect", "hello.php")],
    )
    .await;
    let mut c2 = s.client().await;
    c2.send("CONNECT", json!({"cookie_string": "user=amy"}))
        .await;
    assert_eq!(web2.expect("connect").await.path, "/elsewhere/hello.php");
    c2.expect("CONNECTED").await;

    // Validated before anything is applied.
    let msg = s
        .api_err(
            "set_config",
            &[
                ("cbport", &s.web.addr.port().to_string()),
                ("bogus_key", "1"),
            ],
        )
        .await;
    assert!(msg.contains("bogus_key"), "{msg}");
    let msg = s
        .api_err(
            "set_config",
            &[("cbpath", "/hookbox"), ("cbport", "notaport")],
        )
        .await;
    assert!(msg.contains("cbport"), "{msg}");
    let mut c3 = s.client().await;
    c3.send("CONNECT", json!({"cookie_string": "user=kim"}))
        .await;
    assert_eq!(web2.expect("connect").await.path, "/elsewhere/hello.php");
    c3.expect("CONNECTED").await;

    // Back to the first web app (a JSON string value works too).
    s.api_ok(
        "set_config",
        &[
            ("cbport", &s.web.addr.port().to_string()),
            ("cbpath", "\"/hookbox\""),
            ("cb_connect", "connect"),
        ],
    )
    .await;
    let _ = s.connected("lee").await;
    assert!(web2.drain().await.is_empty());
}

#[tokio::test]
async fn set_config_changes_the_token_live() {
    let s = Server::start().await;
    s.api_ok("set_config", &[("api_security_token", "fresh")])
        .await;
    let old = s
        .api_raw("/web/get_server_info", &[("security_token", "secret")])
        .await;
    assert_eq!(
        old,
        (200, json!([false, {"msg": "Invalid Security Token"}]))
    );
    let new = s
        .api_raw("/web/get_server_info", &[("security_token", "fresh")])
        .await;
    assert_eq!(
        new,
        (200, json!([true, {"channels": [], "connections": []}]))
    );
}

#[tokio::test]
async fn set_config_webhook_secret_live() {
    let s = Server::start().await;
    s.api_ok("set_config", &[("webhook_secret", "shh")]).await;
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=zed"}))
        .await;
    assert_eq!(s.web.expect("connect").await.field("secret"), Some("shh"));
    c.expect("CONNECTED").await;
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
