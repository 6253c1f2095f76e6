//! Webhooks (§5): the eight hooks' form fields and headers, URL building, every reply option the
//! server honours, and every failure mode of the web application mapped to its ERROR text.

mod common;
use common::*;
use hookbox::webhook::Hook;
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Every hook is a urlencoded POST.
fn assert_post(h: &HookRecord) {
    assert_eq!(h.method, "POST", "{h:?}");
    assert_eq!(
        h.header("content-type"),
        Some("application/x-www-form-urlencoded"),
        "{h:?}"
    );
}

/// Asserts the form's exact key set (sorted).
fn assert_keys(h: &HookRecord, expected: &[&str]) {
    let mut want: Vec<&str> = expected.to_vec();
    want.sort_unstable();
    assert_eq!(h.keys(), want, "form of {h:?}");
}

/// A client that sent CONNECT with `cookie` and got CONNECTED (the connect hook is consumed).
async fn connect_with_cookie(s: &Server, cookie: &str) -> Client {
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": cookie})).await;
    s.web.expect("connect").await;
    c.expect("CONNECTED").await;
    c
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Re-checks `cond` (each check is a Web API round trip) until it holds; fails after GUARD.
async fn wait_until<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    tokio::time::timeout(GUARD, async {
        while !cond().await {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("condition never became true");
}

/// Number of connections of user `name` (0 when the user does not exist).
async fn connections_of(s: &Server, name: &str) -> usize {
    let (_, body) = s.api("get_user_info", &[("user_name", name)]).await;
    if body[0] == true {
        body[1]["connections"].as_array().unwrap().len()
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// Form fields and headers

#[tokio::test]
async fn all_eight_hooks_carry_exact_fields_secret_and_headers() {
    let s = Server::start_with(|c| {
        c.webhooks.webhook_secret = Some("s3cret".to_owned());
        c.webhooks.cbsendhookboxversion = true;
    })
    .await;
    let check = |h: &HookRecord, action: &str, keys: &[&str]| {
        assert_post(h);
        assert_eq!(h.action(), action);
        assert_eq!(h.path, format!("/hookbox/{action}"));
        assert_keys(h, keys);
        assert_eq!(h.field("secret"), Some("s3cret"));
        assert_eq!(h.header("x-hookbox-version"), Some("0.3.4a1"), "{h:?}");
    };
    let alice_cookie = "user=alice; theme=dark; sid=a%20b";

    let mut a = s.client().await;
    a.send(
        "CONNECT",
        json!({"cookie_string": alice_cookie, "payload": "{\"a\": [1, 2]}"}),
    )
    .await;
    let h = s.web.expect("connect").await;
    check(&h, "connect", &["action", "conn_id", "payload", "secret"]);
    assert_eq!(h.field("payload"), Some("{\"a\": [1, 2]}"));
    let conn_id = h.field("conn_id").unwrap();
    assert_eq!(conn_id.len(), 32);
    assert!(conn_id.chars().all(|c| c.is_ascii_hexdigit()), "{conn_id}");
    assert_eq!(h.header("cookie"), Some(alice_cookie));
    assert_eq!(h.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(a.expect("CONNECTED").await["name"], "alice");

    a.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    let h = s.web.expect("create_channel").await;
    check(&h, "create_channel", &["action", "channel_name", "secret"]);
    assert_eq!(h.field("channel_name"), Some("room"));
    assert_eq!(h.header("cookie"), Some(alice_cookie));
    assert_eq!(
        h.header("x-real-ip"),
        None,
        "no X-Real-IP on create_channel"
    );
    let h = s.web.expect("subscribe").await;
    check(
        &h,
        "subscribe",
        &["action", "channel_name", "secret", "user"],
    );
    assert_eq!(
        (h.field("channel_name"), h.field("user")),
        (Some("room"), Some("alice"))
    );
    assert_eq!(h.header("cookie"), Some(alice_cookie));
    assert_eq!(h.header("x-real-ip"), Some("127.0.0.1"));
    a.expect("SUBSCRIBE").await;

    a.send(
        "PUBLISH",
        json!({"channel_name": "room", "payload": "{\"x\":\"\u{e9}\",\"n\":[1,2.5]}"}),
    )
    .await;
    let h = s.web.expect("publish").await;
    check(
        &h,
        "publish",
        &["action", "channel_name", "originator", "payload", "secret"],
    );
    assert_eq!(h.field("channel_name"), Some("room"));
    assert_eq!(h.field("originator"), Some("alice"));
    // The payload is re-serialised as Python's json.dumps would: ASCII, ", " and ": ".
    assert_eq!(
        h.field("payload"),
        Some("{\"x\": \"\\u00e9\", \"n\": [1, 2.5]}")
    );
    assert_eq!(h.header("cookie"), Some(alice_cookie));
    assert_eq!(h.header("x-real-ip"), Some("127.0.0.1"));
    a.expect("PUBLISH").await;

    let mut b = s.client().await;
    b.send("CONNECT", json!({"cookie_string": "user=bob"}))
        .await;
    let h = s.web.expect("connect").await;
    assert_eq!(
        h.field("payload"),
        Some("null"),
        "no payload in CONNECT → null"
    );
    assert_ne!(
        h.field("conn_id"),
        Some(conn_id),
        "each connection has its own id"
    );
    b.expect("CONNECTED").await;

    a.send("MESSAGE", json!({"name": "bob", "payload": "\"hi\""}))
        .await;
    let h = s.web.expect("message").await;
    check(
        &h,
        "message",
        &[
            "action",
            "payload",
            "recipient",
            "recipient_exists",
            "secret",
            "sender",
        ],
    );
    assert_eq!(h.field("sender"), Some("alice"));
    assert_eq!(h.field("recipient"), Some("bob"));
    assert_eq!(h.field("recipient_exists"), Some("True"));
    assert_eq!(h.field("payload"), Some("\"hi\""));
    assert_eq!(h.header("cookie"), Some(alice_cookie));
    assert_eq!(h.header("x-real-ip"), Some("127.0.0.1"));
    b.expect("MESSAGE").await;
    a.expect("MESSAGE").await;

    a.send("MESSAGE", json!({"name": "nobody"})).await;
    let h = s.web.expect("message").await;
    assert_eq!(h.field("recipient"), Some("nobody"));
    assert_eq!(h.field("recipient_exists"), Some("False"));
    assert_eq!(h.field("payload"), Some("null"));
    assert_eq!(a.expect("MESSAGE").await["recipient"], "null");

    a.send("UNSUBSCRIBE", json!({"channel_name": "room"})).await;
    let h = s.web.expect("unsubscribe").await;
    check(
        &h,
        "unsubscribe",
        &["action", "channel_name", "secret", "user"],
    );
    assert_eq!(
        (h.field("channel_name"), h.field("user")),
        (Some("room"), Some("alice"))
    );
    assert_eq!(h.header("cookie"), Some(alice_cookie));
    assert_eq!(h.header("x-real-ip"), Some("127.0.0.1"));
    let h = s.web.expect("destroy_channel").await;
    check(&h, "destroy_channel", &["action", "channel_name", "secret"]);
    assert_eq!(h.field("channel_name"), Some("room"));
    assert_eq!(
        h.header("cookie"),
        None,
        "destroy_channel carries no cookie"
    );
    assert_eq!(h.header("x-real-ip"), None);
    a.expect("UNSUBSCRIBE").await;

    a.close().await;
    let h = s.web.expect("disconnect").await;
    check(&h, "disconnect", &["action", "name", "secret"]);
    assert_eq!(h.field("name"), Some("alice"));
    assert_eq!(h.header("cookie"), Some(alice_cookie));
    assert_eq!(h.header("x-real-ip"), None, "no X-Real-IP on disconnect");
    b.close().await;
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("bob"));
}

#[tokio::test]
async fn without_secret_version_or_cookie_those_are_absent() {
    let s = Server::start().await;
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": ""})).await;
    let h = s.web.expect("connect").await;
    assert_post(&h);
    assert_keys(&h, &["action", "conn_id", "payload"]);
    assert_eq!(
        h.header("cookie"),
        None,
        "empty cookie string → no Cookie header"
    );
    assert_eq!(h.header("x-hookbox-version"), None);
    assert_eq!(h.header("x-real-ip"), Some("127.0.0.1"));
    let args = c.expect("CONNECTED").await;
    assert_eq!(
        (args["name"].as_str(), args["payload"].as_str()),
        (Some("anonymous"), Some("null"))
    );

    c.send("SUBSCRIBE", json!({"channel_name": "c"})).await;
    let h = s.web.expect("create_channel").await;
    assert_keys(&h, &["action", "channel_name"]);
    assert_eq!(h.header("cookie"), None);
    let h = s.web.expect("subscribe").await;
    assert_keys(&h, &["action", "channel_name", "user"]);
    assert_eq!(h.header("cookie"), None);
    c.expect("SUBSCRIBE").await;
}

#[tokio::test]
async fn cascade_hooks_use_the_last_connections_cookie() {
    let s = Server::start().await;
    let mut t1 = connect_with_cookie(&s, "user=ann; tab=1").await;
    let mut t2 = connect_with_cookie(&s, "user=ann; tab=2").await;
    let mut t3 = connect_with_cookie(&s, "user=ann; tab=3").await;
    t1.send("SUBSCRIBE", json!({"channel_name": "lobby"})).await;
    assert_eq!(
        s.web.expect("create_channel").await.header("cookie"),
        Some("user=ann; tab=1")
    );
    assert_eq!(
        s.web.expect("subscribe").await.header("cookie"),
        Some("user=ann; tab=1")
    );
    for t in [&mut t1, &mut t2, &mut t3] {
        t.expect("SUBSCRIBE").await;
    }

    // Neither the first nor the most recent connection: the one that closes last.
    t1.close().await;
    t3.close().await;
    wait_until(|| async { connections_of(&s, "ann").await == 1 }).await;
    t2.close().await;

    let h = s.web.expect("unsubscribe").await;
    assert_keys(&h, &["action", "channel_name", "user"]);
    assert_eq!(
        (h.field("channel_name"), h.field("user")),
        (Some("lobby"), Some("ann"))
    );
    assert_eq!(h.header("cookie"), Some("user=ann; tab=2"));
    assert_eq!(
        h.header("x-real-ip"),
        None,
        "a forced unsubscribe has no live client"
    );
    let h = s.web.expect("destroy_channel").await;
    assert_eq!(h.header("cookie"), None);
    let h = s.web.expect("disconnect").await;
    assert_keys(&h, &["action", "name"]);
    assert_eq!(h.field("name"), Some("ann"));
    assert_eq!(h.header("cookie"), Some("user=ann; tab=2"));
    assert_eq!(h.header("x-real-ip"), None);
}

#[tokio::test]
async fn x_real_ip_is_the_clients_x_forwarded_for() {
    let s = Server::start().await;
    let mut req = format!("ws://{}/ws?x=1", s.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("X-Forwarded-For", "203.0.113.7".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connect");
    let frames = [
        "[1, \"CONNECT\", {\"cookie_string\": \"user=fwd\"}]\r\n",
        "[2, \"SUBSCRIBE\", {\"channel_name\": \"ch\"}]\r\n",
        "[3, \"PUBLISH\", {\"channel_name\": \"ch\", \"payload\": \"1\"}]\r\n",
        "[4, \"MESSAGE\", {\"name\": \"fwd\", \"payload\": \"2\"}]\r\n",
        "[5, \"UNSUBSCRIBE\", {\"channel_name\": \"ch\"}]\r\n",
    ];
    use futures_util::SinkExt;
    for f in frames {
        ws.send(Message::Text(f.into())).await.unwrap();
    }
    let expected = [
        ("connect", Some("203.0.113.7")),
        ("create_channel", None),
        ("subscribe", Some("203.0.113.7")),
        ("publish", Some("203.0.113.7")),
        ("message", Some("203.0.113.7")),
        ("unsubscribe", Some("203.0.113.7")),
        ("destroy_channel", None),
    ];
    for (action, ip) in expected {
        let h = s.web.expect(action).await;
        assert_eq!(h.header("x-real-ip"), ip, "{action}");
    }
    // A plain client on the same server: the socket's peer address.
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=direct"}))
        .await;
    assert_eq!(
        s.web.expect("connect").await.header("x-real-ip"),
        Some("127.0.0.1")
    );
    c.expect("CONNECTED").await;
}

// ---------------------------------------------------------------------------------------------
// URL building

#[tokio::test]
async fn cbpath_per_hook_paths_and_trailing_slash() {
    let s = Server::start_with(|c| {
        c.webhooks.cbpath = "/app/cb".to_owned();
        c.webhooks.cbtrailingslash = true;
        *c.webhooks.cb_path_mut(Hook::Connect) = "connect.php".to_owned();
        *c.webhooks.cb_path_mut(Hook::CreateChannel) = "mk".to_owned();
        *c.webhooks.cb_path_mut(Hook::Publish) = "pub/".to_owned();
    })
    .await;
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=u"})).await;
    assert_eq!(s.web.expect("connect").await.path, "/app/cb/connect.php/");
    c.expect("CONNECTED").await;
    c.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    assert_eq!(s.web.expect("create_channel").await.path, "/app/cb/mk/");
    assert_eq!(s.web.expect("subscribe").await.path, "/app/cb/subscribe/");
    c.expect("SUBSCRIBE").await;
    c.send("PUBLISH", json!({"channel_name": "x"})).await;
    assert_eq!(
        s.web.expect("publish").await.path,
        "/app/cb/pub/",
        "no doubled slash"
    );
    c.expect("PUBLISH").await;
    c.close().await;
    assert_eq!(
        s.web.expect("unsubscribe").await.path,
        "/app/cb/unsubscribe/"
    );
    assert_eq!(
        s.web.expect("destroy_channel").await.path,
        "/app/cb/destroy_channel/"
    );
    assert_eq!(s.web.expect("disconnect").await.path, "/app/cb/disconnect/");
}

#[tokio::test]
async fn empty_cbpath_puts_hooks_at_the_root() {
    let s = Server::start_with(|c| c.webhooks.cbpath = String::new()).await;
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=u"})).await;
    assert_eq!(s.web.expect("connect").await.path, "/connect");
    c.expect("CONNECTED").await;
    c.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    assert_eq!(s.web.expect("create_channel").await.path, "/create_channel");
    assert_eq!(s.web.expect("subscribe").await.path, "/subscribe");
}

#[tokio::test]
async fn single_url_receives_every_hook_with_its_query_string() {
    let s = Server::start_with(|c| {
        let port = c.webhooks.cbport;
        // cbport/cbpath point nowhere: only the single URL may be used.
        c.webhooks.cbport = closed_port();
        c.webhooks.cbpath = "/nowhere".to_owned();
        c.webhooks.cb_single_url = Some(format!(
            "http://127.0.0.1:{port}/all/hooks.php?app=demo&v=1"
        ));
    })
    .await;
    let url_path = "/all/hooks.php?app=demo&v=1";
    let mut a = connect_with_cookie(&s, "user=a").await;
    let mut b = s.client().await;
    b.send("CONNECT", json!({"cookie_string": "user=b"})).await;
    assert_eq!(s.web.expect("connect").await.path, url_path);
    b.expect("CONNECTED").await;
    a.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    a.send("PUBLISH", json!({"channel_name": "x"})).await;
    a.send("MESSAGE", json!({"name": "b"})).await;
    a.send("UNSUBSCRIBE", json!({"channel_name": "x"})).await;
    for action in [
        "create_channel",
        "subscribe",
        "publish",
        "message",
        "unsubscribe",
        "destroy_channel",
    ] {
        let h = s.web.expect(action).await;
        assert_eq!(h.path, url_path, "{action}");
        assert_post(&h);
    }
    for frame in ["SUBSCRIBE", "PUBLISH", "MESSAGE", "UNSUBSCRIBE"] {
        a.expect(frame).await;
    }
    a.close().await;
    assert_eq!(s.web.expect("disconnect").await.path, url_path);
}

// ---------------------------------------------------------------------------------------------
// Reply options

#[tokio::test]
async fn connect_reply_name_and_override_payload() {
    let s = Server::start().await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "zed", "override_payload": {"k": [1, "\u{e9}"]}})),
    );
    let mut c = s.client().await;
    c.send(
        "CONNECT",
        json!({"cookie_string": "user=ignored", "payload": "\"orig\""}),
    )
    .await;
    let args = c.expect("CONNECTED").await;
    assert_eq!(keys(&args), ["name", "payload"]);
    assert_eq!(args["name"], "zed");
    // The override is the JSON value as-is, not a JSON text string.
    assert_eq!(args["payload"], json!({"k": [1, "\u{e9}"]}));
    // Without override: the client's JSON text string.
    let mut d = s.client().await;
    d.send(
        "CONNECT",
        json!({"cookie_string": "user=dan", "payload": "{\"q\": 1}"}),
    )
    .await;
    assert_eq!(d.expect("CONNECTED").await["payload"], "{\"q\": 1}");
}

#[tokio::test]
async fn connect_denials_give_their_error_and_leave_the_connection_usable() {
    let s = Server::start().await;
    let mut c = s.client().await;
    let cases = [
        (Reply::deny(json!({})), "Unauthorized"),
        (Reply::deny(json!({"error": "go away"})), "go away"),
        (
            Reply::deny(json!({"name": "x", "msg": "ignored"})),
            "Unauthorized",
        ),
        (
            Reply::ok(json!({})),
            "Unauthorized (missing name parameter in server response)",
        ),
        (
            Reply::ok(json!({"name": ""})),
            "Unauthorized (missing name parameter in server response)",
        ),
        (Reply::json(json!([0, {"name": "x"}])), "Unauthorized"),
    ];
    for (reply, msg) in cases {
        s.web.once("connect", reply);
        let id = c.send("CONNECT", json!({"cookie_string": "user=x"})).await;
        s.web.expect("connect").await;
        assert_eq!(c.expect_error(msg).await, id);
        // Still not connected.
        let id = c.send("SUBSCRIBE", json!({"channel_name": "c"})).await;
        assert_eq!(c.expect_error("Not connected").await, id);
    }
    c.send("CONNECT", json!({"cookie_string": "user=x"})).await;
    assert_eq!(c.expect("CONNECTED").await["name"], "x");
}

#[tokio::test]
async fn connect_reply_user_options_of_wrong_type_are_an_error() {
    let s = Server::start().await;
    let mut c = s.client().await;
    let cases = [
        ("reflective", json!("yes")),
        ("moderated_message", json!(1)),
        ("per_connection_subscriptions", json!("true")),
        ("global_unsubscriptions", json!(null)),
        ("auto_subscribe", json!("news")),
    ];
    for (key, bad) in cases {
        s.web
            .once("connect", Reply::ok(json!({"name": "opt", key: bad})));
        let id = c.send("CONNECT", json!({"cookie_string": ""})).await;
        s.web.expect("connect").await;
        let args = c.expect("ERROR").await;
        assert_eq!(args["id"], id);
        let msg = args["msg"].as_str().unwrap();
        assert!(msg.contains(key), "{key}: {msg}");
        let id = c.send("PUBLISH", json!({"channel_name": "c"})).await;
        assert_eq!(c.expect_error("Not connected").await, id, "{key}");
    }
    // Right types are accepted.
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "opt", "reflective": false, "moderated_message": false,
            "per_connection_subscriptions": true, "global_unsubscriptions": true, "auto_subscribe": []})),
    );
    c.send("CONNECT", json!({"cookie_string": ""})).await;
    assert_eq!(c.expect("CONNECTED").await["name"], "opt");
    let info = s.api_ok("get_user_info", &[("user_name", "opt")]).await;
    assert_eq!(info["options"]["per_connection_subscriptions"], true);
    assert_eq!(info["options"]["reflective"], false);
}

#[tokio::test]
async fn auto_subscribe_and_auto_unsubscribe_lists() {
    let s = Server::start().await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "amy", "auto_subscribe": ["news", "sports"]})),
    );
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=amy; k=v"}))
        .await;
    s.web.expect("connect").await;
    // CONNECTED first, then the auto subscriptions, with create_channel but no subscribe hook.
    assert_eq!(c.expect("CONNECTED").await["name"], "amy");
    for ch in ["news", "sports"] {
        let h = s.web.expect("create_channel").await;
        assert_eq!(h.field("channel_name"), Some(ch));
        assert_eq!(h.header("cookie"), Some("user=amy; k=v"));
        let args = c.expect("SUBSCRIBE").await;
        assert_eq!(
            (args["channel_name"].as_str(), args["user"].as_str()),
            (Some(ch), Some("amy"))
        );
    }

    // A publish reply's lists: auto_subscribe, then auto_unsubscribe, then the publication.
    s.web.once(
        "publish",
        Reply::ok(json!({"auto_subscribe": ["extra"], "auto_unsubscribe": ["sports"]})),
    );
    c.send("PUBLISH", json!({"channel_name": "news", "payload": "1"}))
        .await;
    s.web.expect("publish").await; // the next hook: no subscribe hook ran for news/sports
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("extra")
    );
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("sports")
    );
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "extra");
    assert_eq!(c.expect("UNSUBSCRIBE").await["channel_name"], "sports");
    assert_eq!(c.expect("PUBLISH").await["channel_name"], "news");

    // Even a denied publish runs them.
    s.web.once(
        "publish",
        Reply::deny(json!({"error": "nope", "auto_subscribe": ["consolation"]})),
    );
    let id = c.send("PUBLISH", json!({"channel_name": "news"})).await;
    s.web.expect("publish").await;
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("consolation")
    );
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "consolation");
    assert_eq!(c.expect_error("nope").await, id);

    // A subscribe reply's lists run before the user joins the requested channel.
    s.web
        .once("subscribe", Reply::ok(json!({"auto_subscribe": ["side"]})));
    c.send("SUBSCRIBE", json!({"channel_name": "main"})).await;
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("main")
    );
    assert_eq!(
        s.web.expect("subscribe").await.field("channel_name"),
        Some("main")
    );
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("side")
    );
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "side");
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "main");

    // A message reply's lists too.
    s.web
        .once("message", Reply::ok(json!({"auto_unsubscribe": ["side"]})));
    c.send("MESSAGE", json!({"name": "amy"})).await;
    s.web.expect("message").await;
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("side")
    );
    assert_eq!(c.expect("UNSUBSCRIBE").await["channel_name"], "side");
    c.expect("MESSAGE").await;
    c.assert_quiet().await;
    let info = s.api_ok("get_user_info", &[("user_name", "amy")]).await;
    assert_eq!(
        info["channels"],
        json!(["news", "extra", "consolation", "main"])
    );
}

#[tokio::test]
async fn initial_data_only_when_truthy_and_only_in_the_answered_subscribe() {
    let s = Server::start().await;
    let mut c = s.connected("ida").await;
    let cases = [
        (json!({"motd": "hi"}), true),
        (json!("x"), true),
        (json!(1), true),
        (json!([0]), true),
        (json!(0), false),
        (json!(""), false),
        (json!([]), false),
        (json!({}), false),
        (json!(null), false),
        (json!(false), false),
    ];
    for (i, (data, shown)) in cases.iter().enumerate() {
        let ch = format!("c{i}");
        s.web
            .once("subscribe", Reply::ok(json!({"initial_data": data})));
        c.send("SUBSCRIBE", json!({"channel_name": ch})).await;
        let args = c.expect("SUBSCRIBE").await;
        assert_eq!(args["channel_name"], ch.as_str());
        if *shown {
            assert_eq!(args.get("initial_data"), Some(data), "{data}");
            assert_eq!(
                keys(&args),
                [
                    "channel_name",
                    "history",
                    "history_duration",
                    "history_size",
                    "initial_data",
                    "presence",
                    "state",
                    "user"
                ]
            );
        } else {
            assert!(
                !args.contains_key("initial_data"),
                "{data} is falsy: {args:?}"
            );
        }
    }
    // A new tab gets the replayed SUBSCRIBE frames without initial_data.
    s.web.drain().await;
    let mut tab = s.connected("ida").await;
    for i in 0..cases.len() {
        let args = tab.expect("SUBSCRIBE").await;
        assert_eq!(args["channel_name"], format!("c{i}"));
        assert!(!args.contains_key("initial_data"), "{args:?}");
    }
}

#[tokio::test]
async fn publish_reply_only_to_sender_and_override_payload() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    let mut b = s.connected("bob").await;
    for c in [&mut a, &mut b] {
        c.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
        c.expect("SUBSCRIBE").await;
    }
    s.web
        .set("publish", Reply::ok(json!({"only_to_sender": true})));
    a.send(
        "PUBLISH",
        json!({"channel_name": "room", "payload": "\"secret\""}),
    )
    .await;
    let args = a.expect("PUBLISH").await;
    assert_eq!(
        (args["payload"].as_str(), args["user"].as_str()),
        (Some("secret"), Some("alice"))
    );
    b.assert_quiet().await;

    s.web.set(
        "publish",
        Reply::ok(json!({"override_payload": {"replaced": [true]}})),
    );
    a.send(
        "PUBLISH",
        json!({"channel_name": "room", "payload": "\"orig\""}),
    )
    .await;
    for c in [&mut a, &mut b] {
        let args = c.expect("PUBLISH").await;
        assert_eq!(args["payload"], json!({"replaced": [true]}));
        assert_eq!(args["user"], "alice");
    }

    // only_to_sender false-y: everyone.
    s.web
        .set("publish", Reply::ok(json!({"only_to_sender": false})));
    b.send("PUBLISH", json!({"channel_name": "room", "payload": "2"}))
        .await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 2);
    assert_eq!(b.expect("PUBLISH").await["payload"], 2);
}

#[tokio::test]
async fn publish_hook_has_no_originator_on_anonymous_channels() {
    let s = Server::start().await;
    s.web.channel_options(json!({"anonymous": true}));
    let mut a = s.connected("alice").await;
    a.send("SUBSCRIBE", json!({"channel_name": "anon"})).await;
    a.expect("SUBSCRIBE").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    a.send("PUBLISH", json!({"channel_name": "anon", "payload": "[1]"}))
        .await;
    let h = s.web.expect("publish").await;
    assert_keys(&h, &["action", "channel_name", "payload"]);
    assert_eq!(h.field("payload"), Some("[1]"));
    let args = a.expect("PUBLISH").await;
    assert_eq!(keys(&args), ["channel_name", "datetime", "payload"]);
}

#[tokio::test]
async fn message_reply_override_payload_and_recipient_name() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    let mut b = s.connected("bob").await;
    let mut c = s.connected("carol").await;
    s.web.once(
        "message",
        Reply::ok(json!({"override_recipient_name": "carol", "override_payload": {"n": 1}})),
    );
    a.send("MESSAGE", json!({"name": "bob", "payload": "\"hi\""}))
        .await;
    let h = s.web.expect("message").await;
    assert_eq!(h.field("recipient"), Some("bob"));
    for client in [&mut c, &mut a] {
        let args = client.expect("MESSAGE").await;
        assert_eq!(keys(&args), ["datetime", "payload", "recipient", "sender"]);
        assert_eq!(
            (args["sender"].as_str(), args["recipient"].as_str()),
            (Some("alice"), Some("carol"))
        );
        assert_eq!(args["payload"], json!({"n": 1}));
    }
    b.assert_quiet().await;

    // Denied: the reply's error.
    s.web
        .once("message", Reply::deny(json!({"error": "no DMs"})));
    let id = a.send("MESSAGE", json!({"name": "bob"})).await;
    assert_eq!(a.expect_error("no DMs").await, id);
    b.assert_quiet().await;
}

#[tokio::test]
async fn create_channel_reply_sets_channel_options_and_rejects_other_keys() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;

    s.web.once(
        "create_channel",
        Reply::ok(json!({"presenceful": true, "history_size": 5, "moderated": false})),
    );
    a.send("SUBSCRIBE", json!({"channel_name": "opts"})).await;
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("opts")
    );
    let args = a.expect("SUBSCRIBE").await;
    assert_eq!(args["presence"], json!(["alice"]));
    assert_eq!(args["history_size"], 5);
    // Unmoderated: the next hook is the next action's, not a subscribe.
    a.send("MESSAGE", json!({"name": "alice"})).await;
    s.web.expect("message").await;
    a.expect("MESSAGE").await;

    let cases = [
        (
            Reply::ok(json!({"bogus": 1})),
            "Invalid keyword argument bogus",
        ),
        (
            Reply::ok(json!({"reflective": true, "error": "x"})),
            "Invalid keyword argument error",
        ),
        (
            Reply::ok(json!({"auto_subscribe": ["z"]})),
            "Invalid keyword argument auto_subscribe",
        ),
        (
            Reply::deny(json!({"error": "no such room"})),
            "no such room",
        ),
        (Reply::deny(json!({})), "Unauthorized"),
    ];
    for (reply, msg) in cases {
        s.web.once("create_channel", reply);
        let id = a.send("SUBSCRIBE", json!({"channel_name": "bad"})).await;
        s.web.expect("create_channel").await;
        assert_eq!(a.expect_error(msg).await, id);
    }
    // The channel was never created: the next try asks again, and succeeds.
    a.send("SUBSCRIBE", json!({"channel_name": "bad"})).await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    assert_eq!(a.expect("SUBSCRIBE").await["channel_name"], "bad");
}

#[tokio::test]
async fn set_cookie_arrives_before_the_frame_of_the_same_action() {
    let s = Server::start().await;
    let cookie_frame = |args: serde_json::Map<String, Value>, want: &str| {
        assert_eq!(keys(&args), ["cookie"]);
        assert_eq!(args["cookie"], want);
    };
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "sc"})).with_cookie("sid=1; Path=/"),
    );
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": ""})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "sid=1; Path=/");
    c.expect("CONNECTED").await;

    // create_channel's Set-Cookie is not relayed; subscribe's is.
    s.web
        .once("create_channel", Reply::ok(json!({})).with_cookie("cc=1"));
    s.web
        .once("subscribe", Reply::ok(json!({})).with_cookie("sub=1"));
    c.send("SUBSCRIBE", json!({"channel_name": "ch"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "sub=1");
    c.expect("SUBSCRIBE").await;

    s.web
        .once("publish", Reply::ok(json!({})).with_cookie("pub=1"));
    c.send("PUBLISH", json!({"channel_name": "ch"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "pub=1");
    c.expect("PUBLISH").await;

    s.web
        .once("message", Reply::ok(json!({})).with_cookie("msg=1"));
    c.send("MESSAGE", json!({"name": "sc"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "msg=1");
    c.expect("MESSAGE").await;

    // A denial's cookie comes before its ERROR.
    s.web.once(
        "publish",
        Reply::deny(json!({"error": "no"})).with_cookie("den=1"),
    );
    c.send("PUBLISH", json!({"channel_name": "ch"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "den=1");
    c.expect_error("no").await;

    // destroy_channel's Set-Cookie is not relayed either.
    s.web
        .once("unsubscribe", Reply::ok(json!({})).with_cookie("unsub=1"));
    s.web
        .once("destroy_channel", Reply::ok(json!({})).with_cookie("dc=1"));
    c.send("UNSUBSCRIBE", json!({"channel_name": "ch"})).await;
    cookie_frame(c.expect("SET_COOKIE").await, "unsub=1");
    c.expect("UNSUBSCRIBE").await;
    for action in [
        "connect",
        "create_channel",
        "subscribe",
        "publish",
        "message",
        "publish",
        "unsubscribe",
        "destroy_channel",
    ] {
        s.web.expect(action).await;
    }
    c.assert_quiet().await;
}

// ---------------------------------------------------------------------------------------------
// Failure modes (§5.2)

#[tokio::test]
async fn web_app_refusing_connections_gives_failure() {
    let s = Server::start_with(|c| c.webhooks.cbport = closed_port()).await;
    let mut c = s.client().await;
    let id = c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    let args = c.expect("ERROR").await;
    assert_eq!(args["id"], id);
    let msg = args["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("failure: ") && msg.len() > "failure: ".len(),
        "{msg}"
    );
    // Still usable, still not connected.
    let id = c.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    assert_eq!(c.expect_error("Not connected").await, id);
}

#[tokio::test]
async fn bad_statuses_and_bodies_map_to_their_error_texts() {
    let s = Server::start().await;
    let mut c = s.client().await;
    let cases = [
        (Reply::raw(500, "<h1>boom</h1>"), "failure: <h1>boom</h1>"),
        (Reply::raw(404, "no such hook"), "failure: no such hook"),
        (
            Reply::raw(302, "moved"),
            "Invalid callback response, status=302 (/hookbox/connect), body: moved",
        ),
        (
            Reply::raw(204, ""),
            "Invalid callback response, status=204 (/hookbox/connect), body: ",
        ),
        (Reply::raw(200, "not json"), "Invalid json: not json"),
        (Reply::raw(200, ""), "Invalid json: "),
        (
            Reply::raw(200, "[true]"),
            "Invalid response (expected json list of length 2)",
        ),
        (
            Reply::raw(200, "{\"name\": \"x\"}"),
            "Invalid response (expected json list of length 2)",
        ),
        (
            Reply::raw(200, "[true, {}, 1]"),
            "Invalid response (expected json list of length 2)",
        ),
        (
            Reply::raw(200, "[true, 3]"),
            "Invalid response (expected json object in response index 1)",
        ),
        (
            Reply::raw(200, "[true, [\"name\", \"x\"]]"),
            "Invalid response (expected json object in response index 1)",
        ),
    ];
    for (reply, msg) in cases {
        s.web.once("connect", reply);
        let id = c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
        s.web.expect("connect").await;
        assert_eq!(c.expect_error(msg).await, id);
    }
    c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    c.expect("CONNECTED").await;
    s.web.expect("connect").await;

    // The same mapping for other hooks.
    s.web.once("create_channel", Reply::raw(500, "db down"));
    c.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    c.expect_error("failure: db down").await;
    s.web.once("subscribe", Reply::raw(301, ""));
    c.send("SUBSCRIBE", json!({"channel_name": "x"})).await;
    c.expect_error("Invalid callback response, status=301 (/hookbox/subscribe), body: ")
        .await;
    s.web.once("publish", Reply::raw(200, "[1]"));
    c.send("PUBLISH", json!({"channel_name": "x"})).await;
    c.expect_error("Invalid response (expected json list of length 2)")
        .await;
}

#[tokio::test]
async fn slow_web_app_times_out_with_a_failure() {
    let s = Server::start_with(|c| c.webhook_timeout = Duration::from_millis(300)).await;
    let mut c = s.client().await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "late"})).delayed(Duration::from_secs(5)),
    );
    let id = c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    s.web.expect("connect").await;
    let args = c.expect("ERROR").await;
    assert_eq!(args["id"], id);
    let msg = args["msg"].as_str().unwrap();
    assert!(msg.starts_with("failure:"), "{msg}");
    assert!(msg.contains("0.3s"), "names the timeout: {msg}");
    // The connection is still usable.
    c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    assert_eq!(c.expect("CONNECTED").await["name"], "a");
}

#[tokio::test]
async fn a_slow_webhook_does_not_stall_other_connections() {
    // The slow reply outlasts the test; the server's timeout is longer than the hang guard, so
    // the other client could only pass if it is not queued behind the slow call.
    let s = Server::start_with(|c| c.webhook_timeout = Duration::from_secs(60)).await;
    s.web.once(
        "connect",
        Reply::ok(json!({"name": "slow"})).delayed(Duration::from_secs(120)),
    );
    let mut slow = s.client().await;
    slow.send("CONNECT", json!({"cookie_string": "user=slow"}))
        .await;
    assert_eq!(
        s.web.expect("connect").await.header("cookie"),
        Some("user=slow")
    );

    // While the slow connect is pending: another user connects, subscribes, publishes, messages.
    let mut fast = s.connected("fast").await;
    let mut other = s.connected("other").await;
    for c in [&mut fast, &mut other] {
        c.send("SUBSCRIBE", json!({"channel_name": "busy"})).await;
        c.expect("SUBSCRIBE").await;
    }
    fast.send("PUBLISH", json!({"channel_name": "busy", "payload": "1"}))
        .await;
    assert_eq!(other.expect("PUBLISH").await["user"], "fast");
    fast.expect("PUBLISH").await;
    other.send("MESSAGE", json!({"name": "fast"})).await;
    fast.expect("MESSAGE").await;
    // The slow user never made it.
    let (_, body) = s.api("get_user_info", &[("user_name", "slow")]).await;
    assert_eq!(body[0], false, "{body}");
    drop(slow);
}

#[tokio::test]
async fn web_app_down_cleanup_and_unmoderated_traffic_still_work() {
    let s = Server::start().await;
    let mut a = s.connected("alice").await;
    let mut b = s.connected("bob").await;
    s.web.once(
        "create_channel",
        Reply::ok(json!({"moderated": false, "presenceful": true})),
    );
    for c in [&mut a, &mut b] {
        c.send("SUBSCRIBE", json!({"channel_name": "open"})).await;
        c.expect("SUBSCRIBE").await;
    }
    assert_eq!(a.expect("SUBSCRIBE").await["user"], "bob"); // presence
    a.send("SUBSCRIBE", json!({"channel_name": "mod"})).await;
    a.expect("SUBSCRIBE").await;

    // The web app goes away.
    let port = closed_port().to_string();
    s.api_ok("set_config", &[("cbport", &port)]).await;

    a.send(
        "PUBLISH",
        json!({"channel_name": "open", "payload": "\"still\""}),
    )
    .await;
    assert_eq!(a.expect("PUBLISH").await["payload"], "still");
    assert_eq!(b.expect("PUBLISH").await["payload"], "still");
    s.api_ok("publish", &[("channel_name", "open"), ("payload", "2")])
        .await;
    assert_eq!(a.expect("PUBLISH").await["payload"], 2);
    assert_eq!(b.expect("PUBLISH").await["payload"], 2);

    let failure = |args: serde_json::Map<String, Value>| {
        let msg = args["msg"].as_str().unwrap().to_owned();
        assert!(msg.starts_with("failure: "), "{msg}");
    };
    a.send("PUBLISH", json!({"channel_name": "mod"})).await;
    failure(a.expect("ERROR").await);
    a.send("SUBSCRIBE", json!({"channel_name": "new"})).await;
    failure(a.expect("ERROR").await);
    a.send("MESSAGE", json!({"name": "bob"})).await;
    failure(a.expect("ERROR").await);
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=carol"}))
        .await;
    failure(c.expect("ERROR").await);

    // Bob leaves: presence, removal and channel membership are cleaned up all the same.
    b.close().await;
    let args = a.expect("UNSUBSCRIBE").await;
    assert_eq!(
        (args["channel_name"].as_str(), args["user"].as_str()),
        (Some("open"), Some("bob"))
    );
    wait_until(|| async { s.api("get_user_info", &[("user_name", "bob")]).await.1[0] == false })
        .await;
    let info = s
        .api_ok("get_channel_info", &[("channel_name", "open")])
        .await;
    assert_eq!(info["subscribers"], json!(["alice"]));

    // Alice leaves: the channels are empty, but the failed destroy_channel hook keeps them.
    a.close().await;
    wait_until(|| async { s.api("get_user_info", &[("user_name", "alice")]).await.1[0] == false })
        .await;
    for ch in ["open", "mod"] {
        let info = s.api_ok("get_channel_info", &[("channel_name", ch)]).await;
        assert_eq!(info["subscribers"], json!([]), "{ch}");
    }
    // No hook reached the web app after it went down.
    assert!(s
        .web
        .drain()
        .await
        .iter()
        .all(|h| h.action() != "disconnect"));
}
