//! The Web API's front door (§4): dispatch and 404s, the security token, parameter sources (POST
//! body, GET query, repeated keys), response labelling, and the separate API listener.

use crate::common;
use common::*;
use serde_json::{json, Value};

const DISABLED: &str =
    "Rest api is disabled by configuration. (Please supply --rest-secret/-r option at start)";

async fn get(url: &str) -> reqwest::Response {
    http_client().get(url).send().await.unwrap()
}

async fn body_json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

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
    let http = http_client();
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
    let s = Server::unmoderated().await;
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
    let s = Server::unmoderated().await;
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
    let http = http_client();
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
    let resp = http_client()
        .post(format!("http://{}/web/get_server_info", s.addr))
        .form(&[("security_token", "secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}
