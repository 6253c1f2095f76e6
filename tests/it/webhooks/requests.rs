//! Webhook requests (§5): the eight hooks' form fields and headers (secret, version, cookie,
//! X-Real-IP), and URL building (cbpath, per-hook paths, trailing slash, a single URL).

use crate::common;
use common::*;
use hookbox::webhook::Hook;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// Form fields and headers

/// What a web app checks `X-Hookbox-Signature` against: `sha256=` and the hex HMAC-SHA256 of
/// the body as received, keyed by the webhook secret.
fn hmac_sha256_hex(key: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::test]
async fn without_a_secret_webhooks_are_not_signed() {
    let s = Server::start().await;
    drop(s.connected("ann").await);
    let h = s.web.expect("disconnect").await;
    assert_eq!(h.header("x-hookbox-signature"), None);
    assert_eq!(h.field("secret"), None);
}

#[tokio::test]
async fn a_body_altered_on_the_way_fails_the_signature() {
    let s = Server::start_with(|c| c.webhooks.webhook_secret = Some("k".to_owned())).await;
    drop(s.connected("ann").await);
    let h = s.web.expect("disconnect").await;
    let sig = h.header("x-hookbox-signature").unwrap().to_owned();
    assert_eq!(sig, hmac_sha256_hex("k", &h.body));
    let mut altered = h.body.to_vec();
    altered.extend_from_slice(b"&admin=1");
    assert_ne!(sig, hmac_sha256_hex("k", &altered));
    assert_ne!(sig, hmac_sha256_hex("other key", &h.body));
}

/// A Standard Webhooks secret (`whsec_` + base64 of the key), as the standardwebhooks libraries
/// make them.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What a Standard Webhooks library checks: `v1,` and the base64 HMAC-SHA256 of
/// `<id>.<timestamp>.<body>`, keyed by the secret's base64-decoded key.
fn standard_signature(h: &HookRecord) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(WHSEC.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(h.header("webhook-id").unwrap().as_bytes());
    mac.update(b".");
    mac.update(h.header("webhook-timestamp").unwrap().as_bytes());
    mac.update(b".");
    mac.update(&h.body);
    let tag = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{tag}")
}

/// With a `whsec_` secret every webhook carries the Standard Webhooks headers (and hookbox's
/// own signature), and no `secret` field: an app that checks signatures does not need the
/// secret in every body. Each call has an id of its own.
#[tokio::test]
async fn a_whsec_secret_adds_standard_webhooks_signatures() {
    let s = Server::start_with(|c| c.webhooks.webhook_secret = Some(WHSEC.to_owned())).await;
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=ann"}))
        .await;
    c.expect("CONNECTED").await;
    let connect = s.web.expect("connect").await;
    drop(c);
    let disconnect = s.web.expect("disconnect").await;
    let now = chrono::Utc::now().timestamp();
    let mut ids = Vec::new();
    for h in [&connect, &disconnect] {
        let id = h.header("webhook-id").expect("webhook-id").to_owned();
        assert!(id.starts_with("msg_"), "{id}");
        let ts: i64 = h.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!((now - ts).abs() < 300, "a current timestamp: {ts}");
        assert_eq!(
            h.header("webhook-signature"),
            Some(standard_signature(h).as_str())
        );
        assert_eq!(
            h.header("x-hookbox-signature"),
            Some(hmac_sha256_hex(WHSEC, &h.body).as_str())
        );
        assert_eq!(h.field("secret"), None);
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 2, "one id per call");
    // Another secret: hookbox's own signature only.
    let s = Server::start_with(|c| c.webhooks.webhook_secret = Some("plain".to_owned())).await;
    drop(s.connected("ann").await);
    let h = s.web.expect("disconnect").await;
    assert_eq!(h.header("webhook-signature"), None);
    assert!(h.header("x-hookbox-signature").is_some());
}

/// A retried informational webhook keeps its `webhook-id`, so that a web app that did get an
/// earlier try (its answer lost) can drop the duplicate.
#[tokio::test]
async fn a_retried_webhook_keeps_its_id() {
    let s = Server::start_with(|c| c.webhooks.webhook_secret = Some(WHSEC.to_owned())).await;
    drop(s.connected("ann").await);
    s.web.once("disconnect", Reply::raw(503, "busy"));
    let first = s.web.expect("disconnect").await;
    let second = s.web.expect("disconnect").await;
    assert_eq!(first.header("webhook-id"), second.header("webhook-id"));
    assert!(first.header("webhook-id").is_some());
    assert_eq!(
        second.header("webhook-signature"),
        Some(standard_signature(&second).as_str())
    );
}

/// A `whsec_` secret that is not base64 is refused at startup, naming the flag.
#[test]
fn a_bad_whsec_secret_is_a_startup_error() {
    let e = hookbox::config::Config::from_args(["hookbox", "--webhook-secret", "whsec_no!"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--webhook-secret") && e.contains("base64"),
        "{e}"
    );
}

/// `--webhook-format json`: each webhook is a JSON object of the same fields, with their types
/// (payloads as JSON values, `recipient_exists` a boolean), signed as the form is.
#[tokio::test]
async fn the_json_format_sends_typed_fields() {
    let s = Server::start_with(|c| {
        c.webhooks.format = hookbox::webhook::WebhookFormat::Json;
        c.webhooks.webhook_secret = Some(WHSEC.to_owned());
    })
    .await;
    let mut c = s.client().await;
    c.send(
        "CONNECT",
        json!({"cookie_string": "user=ann", "payload": "{\"room\": 7}"}),
    )
    .await;
    c.expect("CONNECTED").await;
    let connect = s.web.expect("connect").await;
    assert_eq!(connect.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&connect.body).unwrap();
    assert_eq!(body["action"], "connect");
    assert_eq!(body["payload"], json!({"room": 7}));
    assert!(body.get("secret").is_none(), "no secret in a JSON body");
    assert!(body["conn_id"].as_str().is_some_and(|id| id.len() == 32));
    assert_eq!(connect.header("cookie"), Some("user=ann"));
    assert_eq!(
        connect.header("webhook-signature"),
        Some(standard_signature(&connect).as_str())
    );
    // A moderated MESSAGE: recipient_exists is a boolean.
    c.send("MESSAGE", json!({"name": "nobody", "payload": "[1, 2]"}))
        .await;
    let message = s.web.expect("message").await;
    let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(
        body,
        json!({"action": "message", "sender": "ann", "recipient": "nobody",
               "recipient_exists": false, "payload": [1, 2]})
    );
}

#[tokio::test]
async fn all_eight_hooks_carry_exact_fields_secret_and_headers() {
    let s = Server::start_with(|c| {
        c.webhooks.webhook_secret = Some("s3cret".to_owned());
        c.webhooks.cbsendhookboxversion = true;
    })
    .await;
    let check = |h: &HookRecord, action: &str, keys: &[&str]| {
        h.assert_post();
        assert_eq!(h.action(), action);
        assert_eq!(h.path, format!("/hookbox/{action}"));
        h.assert_keys(keys);
        assert_eq!(h.field("secret"), Some("s3cret"));
        assert_eq!(h.header("x-hookbox-version"), Some("0.3.4a1"), "{h:?}");
        assert_eq!(
            h.header("x-hookbox-signature"),
            Some(hmac_sha256_hex("s3cret", &h.body).as_str()),
            "{h:?}"
        );
    };
    let alice_cookie = "user=alice; theme=dark; sid=a%20b";
    // subscribe and unsubscribe: alice in "room", on behalf of her live connection.
    let check_membership = |h: &HookRecord, action: &str| {
        check(h, action, &["action", "channel_name", "secret", "user"]);
        assert_eq!(
            (h.field("channel_name"), h.field("user")),
            (Some("room"), Some("alice"))
        );
        assert_eq!(h.header("cookie"), Some(alice_cookie));
        assert_eq!(h.header("x-real-ip"), Some("127.0.0.1"));
    };

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
    check_membership(&s.web.expect("subscribe").await, "subscribe");
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
    check_membership(&s.web.expect("unsubscribe").await, "unsubscribe");
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
    h.assert_post();
    h.assert_keys(&["action", "conn_id", "payload"]);
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
    h.assert_keys(&["action", "channel_name"]);
    assert_eq!(h.header("cookie"), None);
    let h = s.web.expect("subscribe").await;
    h.assert_keys(&["action", "channel_name", "user"]);
    assert_eq!(h.header("cookie"), None);
    c.expect("SUBSCRIBE").await;
}

#[tokio::test]
async fn cascade_hooks_use_the_last_connections_cookie() {
    let s = Server::start().await;
    let mut t1 = s.connect_with("user=ann; tab=1", None).await;
    let mut t2 = s.connect_with("user=ann; tab=2", None).await;
    let mut t3 = s.connect_with("user=ann; tab=3", None).await;
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
    h.assert_keys(&["action", "channel_name", "user"]);
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
    h.assert_keys(&["action", "name"]);
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
        c.webhooks.cbport = free_port();
        c.webhooks.cbpath = "/nowhere".to_owned();
        c.webhooks.cb_single_url = Some(format!(
            "http://127.0.0.1:{port}/all/hooks.php?app=demo&v=1"
        ));
    })
    .await;
    let url_path = "/all/hooks.php?app=demo&v=1";
    let mut a = s.connect_with("user=a", None).await;
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
        h.assert_post();
    }
    for frame in ["SUBSCRIBE", "PUBLISH", "MESSAGE", "UNSUBSCRIBE"] {
        a.expect(frame).await;
    }
    a.close().await;
    assert_eq!(s.web.expect("disconnect").await.path, url_path);
}
