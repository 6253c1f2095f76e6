//! The 0.3.3 REST dialect at `/rest/<method>` (django-hookbox 0.3 and other apps of that era):
//! the token in `secret`, `Invalid secret`, the 0.3.3 method set, and a publish that creates a
//! missing channel through the create_channel webhook. `/web` keeps 0.3.4a1's behaviour.

use crate::common;
use common::*;
use serde_json::{json, Value};

/// POSTs `/rest/<method>` with `secret=<token>` plus `params`.
async fn rest(s: &Server, method: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("secret", s.token.as_str())];
    form.extend_from_slice(params);
    s.api_raw(&format!("/rest/{method}"), &form).await
}

async fn rest_ok(s: &Server, method: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = rest(s, method, params).await;
    assert_eq!((status, &body[0]), (200, &json!(true)), "{method}: {body}");
    body[1].clone()
}

async fn rest_err(s: &Server, method: &str, params: &[(&str, &str)]) -> String {
    let (status, body) = rest(s, method, params).await;
    assert_eq!((status, &body[0]), (200, &json!(false)), "{method}: {body}");
    body[1]["msg"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn wrong_or_missing_secret_is_refused_before_any_webhook() {
    let s = Server::start().await;
    for form in [
        vec![("secret", "nope"), ("channel_name", "news")],
        vec![("channel_name", "news")],
        vec![("secret", ""), ("channel_name", "news")],
    ] {
        let (status, body) = s.api_raw("/rest/publish", &form).await;
        assert_eq!(status, 200);
        assert_eq!(body, json!([false, {"msg": "Invalid secret"}]));
    }
    assert_no_hooks(&s).await;
    // The channel was not created either.
    assert!(channel_names(&s).await.is_empty());
}

#[tokio::test]
async fn security_token_is_accepted_too() {
    let s = Server::start().await;
    let form = [("security_token", "secret"), ("channel_name", "news")];
    let (_, body) = s.api_raw("/rest/publish", &form).await;
    assert_eq!(body, json!([true, {}]));
}

#[tokio::test]
async fn disabled_api_says_so() {
    let s = Server::start_with(|c| c.api_security_token = None).await;
    let (status, body) = s
        .api_raw("/rest/publish", &[("secret", "x"), ("channel_name", "a")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([false, {"msg": "Rest api is disabled by configuration. (Please supply --rest-secret/-r option at start)"}])
    );
}

#[tokio::test]
async fn publish_creates_a_missing_channel_through_the_webhook() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"history_size": 5, "moderated": false}));
    rest_ok(
        &s,
        "publish",
        &[
            ("channel_name", "news"),
            ("payload", r#"{"headline": "hi"}"#),
            ("originator", "desk"),
        ],
    )
    .await;
    let hook = s.web.expect("create_channel").await;
    hook.assert_keys(&["action", "channel_name"]);
    assert_eq!(hook.field("channel_name"), Some("news"));
    assert_eq!(hook.header("cookie"), None);
    assert_eq!(hook.header("x-real-ip"), None);
    // Created with the webhook's options, and the publication is in its history.
    let info = rest_ok(&s, "get_channel_info", &[("channel_name", "news")]).await;
    assert_eq!(info["name"], "news");
    assert_eq!(info["options"]["history_size"], 5);
    let history = info["options"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_history_entry(
        &history[0],
        "PUBLISH",
        "desk",
        Some(json!({"headline": "hi"})),
    );
    // A second publish finds the channel: no second create_channel webhook, no publish webhook.
    rest_ok(&s, "publish", &[("channel_name", "news")]).await;
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn publish_reaches_subscribers_with_the_originator() {
    let s = Server::unmoderated().await;
    let mut c = s.connected("alice").await;
    join(&mut c, "news").await;
    rest_ok(
        &s,
        "publish",
        &[
            ("channel_name", "news"),
            ("payload", "[1, 2]"),
            ("originator", "desk"),
        ],
    )
    .await;
    let f = c.expect("PUBLISH").await;
    assert_eq!(
        (&f["channel_name"], &f["payload"], &f["user"]),
        (&json!("news"), &json!([1, 2]), &json!("desk"))
    );
    rest_ok(&s, "publish", &[("channel_name", "news")]).await;
    let f = c.expect("PUBLISH").await;
    assert_eq!((&f["payload"], &f["user"]), (&Value::Null, &Value::Null));
}

#[tokio::test]
async fn refused_creation_reports_the_web_apps_message_and_publishes_nothing() {
    let s = Server::start().await;
    // django-hookbox refuses with {"msg": …}.
    s.web.once(
        "create_channel",
        Reply::deny(json!({"msg": "no such topic"})),
    );
    let msg = rest_err(&s, "publish", &[("channel_name", "news"), ("payload", "1")]).await;
    assert_eq!(msg, "no such topic");
    s.web.expect("create_channel").await;
    // HookBox's own `error` key works too, and a bare refusal says Unauthorized.
    s.web
        .once("create_channel", Reply::deny(json!({"error": "closed"})));
    assert_eq!(
        rest_err(&s, "publish", &[("channel_name", "news")]).await,
        "closed"
    );
    s.web.expect("create_channel").await;
    s.web.once("create_channel", Reply::deny(json!({})));
    assert_eq!(
        rest_err(&s, "publish", &[("channel_name", "news")]).await,
        "Unauthorized"
    );
    s.web.expect("create_channel").await;
    // A web app that is down.
    s.web.once("create_channel", Reply::raw(500, "boom"));
    assert_eq!(
        rest_err(&s, "publish", &[("channel_name", "news")]).await,
        "failure: HTTP 500"
    );
    s.web.expect("create_channel").await;
    assert!(channel_names(&s).await.is_empty());
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn web_publish_still_needs_an_existing_channel() {
    let s = Server::start().await;
    let msg = s.api_err("publish", &[("channel_name", "news")]).await;
    assert_eq!(msg, "Channel news doesn't exist");
    assert_no_hooks(&s).await;
    // And /web does not take 0.3.3's `secret`.
    let (_, body) = s
        .api_raw(
            "/web/publish",
            &[("secret", "secret"), ("channel_name", "news")],
        )
        .await;
    assert_eq!(body, json!([false, {"msg": "Invalid Security Token"}]));
}

#[tokio::test]
async fn methods_0_3_3_did_not_implement_or_have() {
    let s = Server::start().await;
    for method in ["create_channel", "destroy_channel", "disconnect"] {
        let msg = rest_err(&s, method, &[("channel_name", "a"), ("identifier", "x")]).await;
        assert_eq!(msg, "Not Implemented", "{method}");
    }
    for method in [
        "publish_multi",
        "message",
        "get_server_info",
        "get_user_info",
        "bogus",
    ] {
        let (status, body) = rest(&s, method, &[]).await;
        assert_eq!((status, body), (404, json!("Not Found")), "{method}");
    }
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn subscribe_state_and_unsubscribe_in_the_0_3_3_dialect() {
    let s = Server::unmoderated().await;
    let mut c = s.connected("alice").await;
    rest_ok(
        &s,
        "subscribe",
        &[("channel_name", "room"), ("name", "alice")],
    )
    .await;
    s.web.expect("create_channel").await;
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "room");
    assert_eq!(
        rest_err(
            &s,
            "subscribe",
            &[("channel_name", "room"), ("name", "bob")]
        )
        .await,
        "User bob doesn't exist"
    );
    rest_ok(
        &s,
        "state_set_key",
        &[("channel_name", "room"), ("key", "k"), ("val", "7")],
    )
    .await;
    let f = c.expect("STATE_UPDATE").await;
    assert_eq!(
        (&f["updates"], &f["deletes"]),
        (&json!({"k": 7}), &json!([]))
    );
    rest_ok(
        &s,
        "state_delete_key",
        &[("channel_name", "room"), ("key", "k")],
    )
    .await;
    assert_eq!(c.expect("STATE_UPDATE").await["deletes"], json!(["k"]));
    rest_ok(
        &s,
        "set_channel_options",
        &[("channel_name", "room"), ("history_size", "3")],
    )
    .await;
    let info = rest_ok(&s, "get_channel_info", &[("channel_name", "room")]).await;
    assert_eq!(
        (&info["options"]["history_size"], &info["subscribers"]),
        (&json!(3), &json!(["alice"]))
    );
    rest_ok(
        &s,
        "unsubscribe",
        &[("channel_name", "room"), ("name", "alice")],
    )
    .await;
    assert_eq!(c.expect("UNSUBSCRIBE").await["user"], "alice");
    s.web.expect("destroy_channel").await;
    assert_eq!(
        rest_err(&s, "get_channel_info", &[("channel_name", "room")]).await,
        "Channel room doesn't exist"
    );
}

#[tokio::test]
async fn set_config_takes_rest_secret() {
    let s = Server::start().await;
    rest_ok(&s, "set_config", &[("rest_secret", "\"fresh\"")]).await;
    assert_eq!(
        rest_err(&s, "get_channel_info", &[("channel_name", "a")]).await,
        "Invalid secret"
    );
    let (_, body) = s
        .api_raw(
            "/rest/get_channel_info",
            &[("secret", "fresh"), ("channel_name", "a")],
        )
        .await;
    assert_eq!(body, json!([false, {"msg": "Channel a doesn't exist"}]));
}

#[tokio::test]
async fn rest_is_on_the_main_listener_and_on_a_separate_api_listener() {
    let s = Server::start_with(|c| c.web_api = Some(("127.0.0.1".to_owned(), 0))).await;
    assert_ne!(s.addr, s.api_addr);
    for addr in [s.addr, s.api_addr] {
        let resp = http_client()
            .post(format!("http://{addr}/rest/publish"))
            .form(&[("secret", "secret"), ("channel_name", "news")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), "[true, {}]", "{addr}");
    }
    // `/web` moved to the API listener.
    let resp = http_client()
        .post(format!("http://{}/web/publish", s.addr))
        .form(&[("security_token", "secret"), ("channel_name", "news")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
