//! Inputs at the edges: oversized channel names, non-ASCII cookies, paths below `/csp/`.

use crate::common;
use common::csp::fetch;
use common::*;
use serde_json::json;

#[tokio::test]
async fn channel_names_longer_than_1024_bytes_are_refused_before_any_webhook() {
    let s = Server::unmoderated().await;
    let mut c = s.connected("alice").await;
    let long = "x".repeat(1025);
    let id = c.send("SUBSCRIBE", json!({"channel_name": long})).await;
    assert_eq!(
        c.expect_error("Channel name too long (at most 1024 bytes)")
            .await,
        id
    );
    let id = c
        .send("PUBLISH", json!({"channel_name": long, "payload": "1"}))
        .await;
    assert_eq!(
        c.expect_error("Channel name too long (at most 1024 bytes)")
            .await,
        id
    );
    assert_eq!(
        s.api_err("create_channel", &[("channel_name", &long)])
            .await,
        "Channel name too long (at most 1024 bytes)"
    );
    assert_no_hooks(&s).await;
    // 1024 bytes is fine.
    join(&mut c, &"y".repeat(1024)).await;
    s.web.expect("create_channel").await;
}

#[tokio::test]
async fn a_non_ascii_cookie_reaches_the_web_app_byte_for_byte() {
    let s = Server::start().await;
    s.web.once("connect", Reply::ok(json!({"name": "zoë"})));
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=zoë; city=Zürich"}))
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], "zoë");
    let hook = s.web.expect("connect").await;
    let raw = hook
        .headers
        .get("cookie")
        .expect("a Cookie header")
        .as_bytes();
    assert_eq!(raw, "user=zoë; city=Zürich".as_bytes());
}

#[tokio::test]
async fn deeper_paths_under_csp_are_a_plain_404_with_acao() {
    let s = Server::start().await;
    for path in ["/csp/handshake/extra", "/csp/a/b/c"] {
        let resp = fetch(http_client().post(format!("http://{}{path}", s.addr))).await;
        resp.assert_error(404, "");
    }
}
