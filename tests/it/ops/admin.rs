//! The admin console's HTTP surface: the page, the login (wrong passwords throttled, sessions
//! that end), every API call refused without a login and doing its job with one, and the live
//! socket. The console in a real browser is in `tests/browser/admin.test.mjs`.

use crate::common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "correct horse";

async fn admin_server() -> Server {
    let s = Server::start_with(|c| {
        c.admin_password = Some(PASSWORD.to_owned());
        c.webhooks.webhook_secret = Some("hook-secret".to_owned());
    })
    .await;
    s.web.channel_options(json!({"moderated": false}));
    s
}

/// An HTTP answer: status, headers, body as JSON (or a string).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn request(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = http_client().request(method.clone(), format!("http://{}{path}", s.addr));
    if method != reqwest::Method::GET {
        req = req.header("X-Hookbox-Admin", "1");
    }
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn get(s: &Server, path: &str, cookie: Option<&str>) -> Answer {
    request(s, reqwest::Method::GET, path, cookie, None).await
}

async fn post(s: &Server, path: &str, cookie: Option<&str>, body: Value) -> Answer {
    request(s, reqwest::Method::POST, path, cookie, Some(body)).await
}

/// Logs in; the `Cookie` header value of the session.
async fn login(s: &Server) -> String {
    let a = post(s, "/admin/api/login", None, json!({"password": PASSWORD})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let set = a.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_password_the_console_says_how_to_turn_it_on() {
    let s = Server::start().await;
    let a = get(&s, "/admin/", None).await;
    assert_eq!(a.status, 403);
    assert!(
        a.body.as_str().unwrap().contains("-a PASSWORD"),
        "{}",
        a.body
    );
    let a = post(&s, "/admin/api/login", None, json!({"password": ""})).await;
    assert_eq!(a.status, 403, "{}", a.body);
}

#[tokio::test]
async fn the_page_and_its_assets() {
    let s = admin_server().await;
    let resp = http_client()
        .get(format!("http://{}/admin", s.addr))
        .send()
        .await
        .unwrap();
    // reqwest follows the redirect to the page.
    assert_eq!(resp.url().path(), "/admin/");
    let page = resp.text().await.unwrap();
    assert!(page.contains("/admin/admin.js"), "{page}");
    let js = get(&s, "/admin/admin.js", None).await;
    assert_eq!(js.status, 200);
    assert_eq!(js.headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(get(&s, "/admin/admin.css", None).await.status, 200);
}

/// Every API call, without a session: 401, and nothing happens.
#[tokio::test]
async fn every_api_call_needs_a_login() {
    let s = admin_server().await;
    let mut c = s.connected("ann").await;
    join(&mut c, "room").await;
    s.web.expect("create_channel").await;
    for path in [
        "overview",
        "channels",
        "channels/room",
        "users",
        "users/ann",
        "webhooks",
        "log",
        "session",
    ] {
        let a = get(&s, &format!("/admin/api/{path}"), None).await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
        let a = get(
            &s,
            &format!("/admin/api/{path}"),
            Some("hookbox_admin=forged"),
        )
        .await;
        assert_eq!(a.status, 401, "{path} with a forged cookie");
    }
    for (path, body) in [
        ("channels/room/options", json!({"history_size": 3})),
        ("channels/room/publish", json!({"payload": 1})),
        ("channels/room/remove", json!({"user": "ann"})),
        ("users/ann/disconnect", json!({})),
        ("logout", json!({})),
    ] {
        let a = post(&s, &format!("/admin/api/{path}"), None, body).await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }
    c.assert_quiet().await;
    let info = s
        .api_ok("get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["options"]["history_size"], 0);
}

/// Attack: a page on another site makes the operator's browser post to the console (the cookie
/// would go along). Without the `X-Hookbox-Admin` header, which such a page cannot add, nothing
/// is done.
#[tokio::test]
async fn changes_need_the_admin_header() {
    let s = admin_server().await;
    let cookie = login(&s).await;
    let mut c = s.connected("ann").await;
    let resp = http_client()
        .post(format!("http://{}/admin/api/users/ann/disconnect", s.addr))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = http_client()
        .post(format!("http://{}/admin/api/login", s.addr))
        .header("Content-Type", "application/json")
        .body(json!({"password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403, "a login needs it too");
    c.assert_quiet().await;
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_throttled() {
    let s = admin_server().await;
    for _ in 0..5 {
        let a = post(&s, "/admin/api/login", None, json!({"password": "guess"})).await;
        assert_eq!(
            (a.status, &a.body),
            (401, &json!({"error": "wrong password"}))
        );
        assert!(!a.headers.contains_key("set-cookie"));
    }
    // Even the right password waits now: guessing is slow.
    let a = post(&s, "/admin/api/login", None, json!({"password": PASSWORD})).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.headers.contains_key("retry-after"));
    assert!(a.body["error"]
        .as_str()
        .unwrap()
        .starts_with("too many wrong passwords"));
}

#[tokio::test]
async fn a_session_ends_at_logout_and_when_the_password_changes() {
    let s = admin_server().await;
    let cookie = login(&s).await;
    assert_eq!(
        get(&s, "/admin/api/session", Some(&cookie)).await.status,
        200
    );
    assert_eq!(
        post(&s, "/admin/api/logout", Some(&cookie), json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        get(&s, "/admin/api/session", Some(&cookie)).await.status,
        401
    );

    let cookie = login(&s).await;
    s.api_ok("set_config", &[("admin_password", "something else")])
        .await;
    assert_eq!(
        get(&s, "/admin/api/session", Some(&cookie)).await.status,
        401
    );
    let a = post(
        &s,
        "/admin/api/login",
        None,
        json!({"password": "something else"}),
    )
    .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn reads_show_the_server() {
    let s = admin_server().await;
    let cookie = login(&s).await;
    let cookie = Some(cookie.as_str());
    let mut ann = s.connected("ann").await;
    join(&mut ann, "room").await;
    s.web.expect("create_channel").await;

    let o = get(&s, "/admin/api/overview", cookie).await;
    assert_eq!(o.status, 200);
    assert_eq!(o.body["version"], env!("CARGO_PKG_VERSION"));
    let nodes = o.body["nodes"].as_array().unwrap();
    assert!(
        nodes
            .iter()
            .any(|n| n["this"] == true && n["alive"] == true),
        "{nodes:?}"
    );
    // Every transport has its count (the counts are the process's: see the browser test).
    for transport in ["websocket", "hixie", "csp", "sse"] {
        assert!(
            o.body["connections"][transport].as_u64().is_some(),
            "{transport}: {}",
            o.body
        );
    }

    let list = get(&s, "/admin/api/channels", cookie).await.body;
    assert_eq!(
        list["channels"],
        json!([{"name": "room", "subscribers": 1}])
    );
    let info = get(&s, "/admin/api/channels/room", cookie).await.body;
    assert_eq!(info["subscribers"], json!(["ann"]));
    assert_eq!(
        get(&s, "/admin/api/channels/nowhere", cookie).await.status,
        404
    );

    let users = get(&s, "/admin/api/users", cookie).await.body;
    assert_eq!(users["users"], json!(["ann"]));
    let u = get(&s, "/admin/api/users/ann", cookie).await.body;
    assert_eq!(u["channels"], json!(["room"]));
    let conns = u["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{u}");
    assert_eq!(conns[0]["transport"], "websocket");
    assert!(conns[0]["since"].as_i64().unwrap() > 0);
    assert_eq!(get(&s, "/admin/api/users/nobody", cookie).await.status, 404);

    // The webhook log: the connect call, its secret redacted; no cookie anywhere.
    let calls = get(&s, "/admin/api/webhooks", cookie).await.body;
    let calls = calls["calls"].as_array().unwrap();
    let connect = calls
        .iter()
        .find(|c| c["hook"] == "connect")
        .expect("connect logged");
    assert_eq!(connect["outcome"], "ok");
    assert_eq!(connect["status"], 200);
    assert_eq!(connect["form"]["secret"], "(redacted)");
    let text = serde_json::to_string(calls).unwrap();
    assert!(
        !text.contains("hook-secret") && !text.contains("user=ann"),
        "{text}"
    );

    let log = get(&s, "/admin/api/log", cookie).await;
    assert_eq!(log.status, 200);
    assert!(log.body["lines"].is_array());
}

#[tokio::test]
async fn actions_steer_the_server() {
    let s = admin_server().await;
    let cookie = login(&s).await;
    let cookie = Some(cookie.as_str());
    let mut ann = s.connected("ann").await;
    join(&mut ann, "room").await;
    s.web.expect("create_channel").await;

    // Options, validated as the Web API does.
    let a = post(
        &s,
        "/admin/api/channels/room/options",
        cookie,
        json!({"history_size": 3}),
    )
    .await;
    assert_eq!((a.status, &a.body), (200, &json!({"ok": true})));
    let info = s
        .api_ok("get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["options"]["history_size"], 3);
    let a = post(
        &s,
        "/admin/api/channels/room/options",
        cookie,
        json!({"history_size": "x"}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body["error"],
        "Invalid type for history_size (should be int)"
    );

    // A publication reaches the subscriber.
    let a = post(
        &s,
        "/admin/api/channels/room/publish",
        cookie,
        json!({"payload": {"hi": 1}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let p = ann.expect("PUBLISH").await;
    assert_eq!(
        (&p["payload"], &p["user"]),
        (&json!({"hi": 1}), &Value::Null)
    );

    // Removing a subscriber.
    let a = post(
        &s,
        "/admin/api/channels/room/remove",
        cookie,
        json!({"user": "ann"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(ann.expect("UNSUBSCRIBE").await["user"], "ann");
    // The channel, empty now, goes the usual way.
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("room")
    );

    // Disconnecting a user closes its connections.
    let a = post(&s, "/admin/api/users/ann/disconnect", cookie, json!({})).await;
    assert_eq!(a.body, json!({"ok": true, "connections": 1}));
    let (code, _) = ann.expect_close().await.expect("a close frame");
    assert_eq!(code, 1000);
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("ann"));
}

/// The live socket: an overview every second, and the watched channel's events.
#[tokio::test]
async fn the_live_socket_pushes_the_overview_and_channel_events() {
    let s = admin_server().await;
    let cookie = login(&s).await;
    let url = format!("ws://{}/admin/api/live", s.addr);

    // Without a session, or from another site's page: refused.
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("Cookie", cookie.parse().unwrap());
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");

    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("Cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("live socket");
    async fn next<S>(ws: &mut S) -> Value
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        let msg = tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("a live message")
            .expect("open")
            .expect("no error");
        match msg {
            Message::Text(t) => serde_json::from_str::<Value>(&t).unwrap(),
            other => panic!("{other:?}"),
        }
    }
    let first = next(&mut ws).await;
    assert_eq!(first["type"], "overview");

    let mut ann = s.connected("ann").await;
    join(&mut ann, "room").await;
    ws.send(Message::Text(json!({"watch": "room"}).to_string().into()))
        .await
        .unwrap();
    loop {
        let m = next(&mut ws).await;
        if m["type"] == "watching" {
            assert_eq!(m["channel"], "room");
            break;
        }
    }
    s.api_ok("publish", &[("channel_name", "room"), ("payload", "42")])
        .await;
    loop {
        let m = next(&mut ws).await;
        // (With the Redis engine the join may be told after the watch began.)
        if m["type"] == "event" && m["frame"] != "SUBSCRIBE ann" {
            assert_eq!(m["channel"], "room");
            let frame = m["frame"].as_str().unwrap();
            assert!(frame.starts_with("\"PUBLISH\", {"), "{frame}");
            assert!(frame.contains("\"payload\": 42"), "{frame}");
            break;
        }
    }
}
