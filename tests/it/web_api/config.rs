//! The Web API's `set_config` (§4): webhook target, paths, secret and the API token change live,
//! and a bad key or value changes nothing. Where webhooks may go is fixed at startup (see
//! tests/it/security/webhooks.rs for the refusals).

use crate::common;
use common::*;
use hookbox::net::HostRule;
use serde_json::json;

#[tokio::test]
async fn set_config_moves_webhooks_live() {
    // Allowed at startup: moving webhooks, and the second web app's address.
    let web2 = WebApp::start().await;
    let s = Server::start_with(|c| {
        c.allow_set_config_webhooks = true;
        c.webhook_allow_hosts = vec![HostRule::parse(&web2.addr.to_string()).unwrap()];
    })
    .await;
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
