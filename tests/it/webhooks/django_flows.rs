//! django-hookbox's server-side flows (§10.4) against the real binary, started the way its
//! `runhookbox` command does: `--cbhost localhost --cbport 8000` first, then the project's own
//! settings repeating those flags (the last occurrence wins). Its tests read the first line of
//! combined stdout+stderr, use `/web/create_channel` and `/web/publish` with `security_token`,
//! and stop the server with SIGTERM.

use crate::common;
use common::binary::{api_post, Running};
use common::{free_port, Client, WebApp};
use serde_json::json;

const SECRET: &str = "hook-secret";
const TOKEN: &str = "api-token";

/// A hookbox started like `manage.py runhookbox`, its stdout and stderr merged into one stream.
struct Hookbox {
    run: Running,
    port: u16,
}

impl Hookbox {
    fn start(web: &WebApp) -> Hookbox {
        let port = free_port();
        let port_s = port.to_string();
        let cbport = web.addr.port().to_string();
        let args = [
            "--cbhost",
            "localhost",
            "--cbport",
            "8000",
            "--port",
            &port_s,
            "--interface",
            "127.0.0.1",
            "--cbhost",
            "127.0.0.1",
            "--cbport",
            &cbport,
            "--cbpath",
            "/hookbox",
            "--webhook-secret",
            SECRET,
            "--api-security-token",
            TOKEN,
            "--admin-password",
            "admin-pw",
        ];
        Hookbox {
            run: Running::spawn(&args, &[]),
            port,
        }
    }
}

/// djhookbox's startup check: `re.search(r'hookbox - INFO - Listening to hookbox on
/// http://([\w\d\.]+):(\d+)', line)`; returns the two groups.
fn match_startup(line: &str) -> Option<(String, u16)> {
    let rest = line
        .split_once("hookbox - INFO - Listening to hookbox on http://")?
        .1;
    let host: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let rest = rest[host.len()..].strip_prefix(':')?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if host.is_empty() || digits.is_empty() {
        return None;
    }
    Some((host, digits.parse().ok()?))
}

#[test]
fn startup_pattern_matcher() {
    let ok =
        "2026-01-02 03:04:05,678 - hookbox - INFO - Listening to hookbox on http://127.0.0.1:8001";
    assert_eq!(match_startup(ok), Some(("127.0.0.1".to_owned(), 8001)));
    assert_eq!(
        match_startup("hookbox - INFO - Listening to hookbox/webapi on http://a:1"),
        None
    );
    assert_eq!(
        match_startup("hookbox - INFO - Listening to hookbox on http://:1"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_publish_with_the_security_token() {
    let web = WebApp::start().await;
    let hb = Hookbox::start(&web);
    let line = hb.run.next_line();
    assert_eq!(
        match_startup(&line),
        Some(("127.0.0.1".to_owned(), hb.port)),
        "first line of output: {line:?}"
    );

    // The webhooks go to the last --cbhost/--cbport, under --cbpath, with the secret.
    let mut client = Client::open(&format!("ws://127.0.0.1:{}/ws", hb.port)).await;
    client
        .send("CONNECT", json!({"cookie_string": "sessionid=abc"}))
        .await;
    let hook = web.expect("connect").await;
    assert_eq!(hook.path, "/hookbox/connect");
    assert_eq!(hook.field("secret"), Some(SECRET));
    assert_eq!(hook.header("cookie"), Some("sessionid=abc"));
    assert_eq!(client.expect("CONNECTED").await["name"], "anonymous");

    // test_create: publishing to a missing channel fails; create + publish succeed.
    let body = api_post(
        hb.port,
        "publish",
        &[
            ("security_token", TOKEN),
            ("channel_name", "news"),
            ("payload", "\"hi\""),
        ],
    )
    .await;
    assert_eq!(body[0], false, "{body}");
    assert!(
        body[1]["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    let body = api_post(
        hb.port,
        "create_channel",
        &[("security_token", TOKEN), ("channel_name", "news")],
    )
    .await;
    assert_eq!(body, json!([true, {}]));

    client
        .send("SUBSCRIBE", json!({"channel_name": "news"}))
        .await;
    let hook = web.expect("subscribe").await;
    assert_eq!(hook.path, "/hookbox/subscribe");
    assert_eq!(client.expect("SUBSCRIBE").await["channel_name"], "news");

    let payload = json!({"headline": "caf\u{e9}"}).to_string();
    let body = api_post(
        hb.port,
        "publish",
        &[
            ("security_token", TOKEN),
            ("channel_name", "news"),
            ("payload", &payload),
        ],
    )
    .await;
    assert_eq!(body, json!([true, {}]));
    let args = client.expect("PUBLISH").await;
    assert_eq!(args["payload"], json!({"headline": "caf\u{e9}"}));

    let status = hb.run.signal("TERM");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_security_token_fails() {
    let web = WebApp::start().await;
    let hb = Hookbox::start(&web);
    let line = hb.run.next_line();
    assert!(
        match_startup(&line).is_some(),
        "first line of output: {line:?}"
    );

    for method in ["create_channel", "publish"] {
        let body = api_post(
            hb.port,
            method,
            &[
                ("security_token", "wrong"),
                ("channel_name", "x"),
                ("payload", "1"),
            ],
        )
        .await;
        assert_eq!(
            body,
            json!([false, {"msg": "Invalid Security Token"}]),
            "{method}"
        );
    }
    // Without any token at all, too.
    let body = api_post(hb.port, "create_channel", &[("channel_name", "x")]).await;
    assert_eq!(body, json!([false, {"msg": "Invalid Security Token"}]));
    // The right token still works: the refusals changed nothing.
    let body = api_post(
        hb.port,
        "create_channel",
        &[("security_token", TOKEN), ("channel_name", "x")],
    )
    .await;
    assert_eq!(body, json!([true, {}]));
    assert!(web.drain().await.is_empty(), "no webhooks from the Web API");

    let status = hb.run.signal("TERM");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}
