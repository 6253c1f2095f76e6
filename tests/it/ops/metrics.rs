//! `/metrics`, `/healthz` and `/readyz` of the real binary (the metrics recorder is per process,
//! so every test here runs its own server process), and what a failing webhook leaves in the
//! logs: the reason, in the error log, while the client gets a text without internals.

use crate::common;
use common::binary::{api_post, Running};
use common::{free_port, http_client, Client, WebApp, GUARD};
use serde_json::json;
use std::collections::HashMap;

/// Starts the binary on a free port with webhooks to `web` (unless `extra` says otherwise).
fn server(web: &WebApp, extra: &[&str]) -> (Running, u16) {
    let cbport = web.addr.port().to_string();
    let mut args = vec![
        "-i",
        "127.0.0.1",
        "-p",
        "0",
        "--cbport",
        &cbport,
        "-r",
        "secret",
    ];
    args.extend_from_slice(extra);
    let run = Running::spawn(&args, &[]);
    let port = run.startup_port("127.0.0.1");
    (run, port)
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let resp = http_client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The samples of a Prometheus text exposition: `name{labels}` (labels as written) → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
            (
                key.to_owned(),
                value.parse().unwrap_or_else(|_| panic!("value in {l:?}")),
            )
        })
        .collect()
}

async fn scrape(port: u16) -> HashMap<String, f64> {
    let (status, text) = get(port, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    samples(&text)
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:?}", m.keys().collect::<Vec<_>>()))
}

async fn connected(port: u16, name: &str) -> Client {
    let mut c = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
    c.send("CONNECT", json!({"cookie_string": format!("user={name}")}))
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], name);
    c
}

/// A scripted session, then one scrape: every counter moved by what the session did.
#[tokio::test]
async fn metrics_count_what_a_session_did() {
    let web = WebApp::start().await;
    web.channel_options(json!({"moderated": false}));
    let (_run, port) = server(&web, &[]);
    let mut a = connected(port, "ann").await;
    let mut b = connected(port, "bob").await;
    for c in [&mut a, &mut b] {
        c.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
        c.expect("SUBSCRIBE").await;
    }
    for i in 0..3 {
        let p = i.to_string();
        let form = [
            ("security_token", "secret"),
            ("channel_name", "room"),
            ("payload", p.as_str()),
        ];
        assert_eq!(api_post(port, "publish", &form).await[0], true);
    }
    for c in [&mut a, &mut b] {
        for i in 0..3 {
            assert_eq!(c.expect("PUBLISH").await["payload"], i);
        }
    }
    a.send("NOPE", json!({})).await;
    a.expect_error("Unknown frame type NOPE").await;

    let m = scrape(port).await;
    assert_eq!(
        value(&m, r#"hookbox_connections{transport="websocket"}"#),
        2.0
    );
    assert_eq!(value(&m, "hookbox_users"), 2.0);
    assert_eq!(value(&m, "hookbox_channels"), 1.0);
    assert_eq!(value(&m, r#"hookbox_frames_in_total{name="CONNECT"}"#), 2.0);
    assert_eq!(
        value(&m, r#"hookbox_frames_in_total{name="SUBSCRIBE"}"#),
        2.0
    );
    assert_eq!(value(&m, r#"hookbox_frames_in_total{name="unknown"}"#), 1.0);
    assert_eq!(
        value(&m, r#"hookbox_frames_out_total{name="CONNECTED"}"#),
        2.0
    );
    assert_eq!(
        value(&m, r#"hookbox_frames_out_total{name="SUBSCRIBE"}"#),
        2.0
    );
    assert_eq!(
        value(&m, r#"hookbox_frames_out_total{name="PUBLISH"}"#),
        6.0
    );
    assert_eq!(value(&m, r#"hookbox_frames_out_total{name="ERROR"}"#), 1.0);
    assert_eq!(value(&m, "hookbox_deliveries_total"), 11.0);
    assert!(value(&m, "hookbox_bytes_out_total") > 0.0);
    assert_eq!(value(&m, "hookbox_publishes_total"), 3.0);
    let ok = |hook: &str| format!(r#"hookbox_webhook_calls_total{{hook="{hook}",outcome="ok"}}"#);
    assert_eq!(value(&m, &ok("connect")), 2.0);
    assert_eq!(value(&m, &ok("create_channel")), 1.0);
    assert_eq!(
        value(
            &m,
            r#"hookbox_webhook_duration_seconds_count{hook="connect"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            r#"hookbox_webhook_duration_seconds_bucket{hook="connect",le="+Inf"}"#
        ),
        2.0
    );
    // No channel or user name is ever a label.
    let text = get(port, "/metrics").await.1;
    assert!(
        !text.contains("\"room\"") && !text.contains("\"ann\""),
        "{text}"
    );

    // A closed connection leaves the gauge (its close handling runs after the socket closes, so
    // this waits for the scrape that shows it).
    b.close().await;
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let m = scrape(port).await;
        if value(&m, r#"hookbox_connections{transport="websocket"}"#) == 1.0
            && value(&m, "hookbox_users") == 1.0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gauges never dropped"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let web = WebApp::start().await;
    let (_run, port) = server(&web, &[]);
    assert_eq!(get(port, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(get(port, "/readyz").await, (200, "ready\n".to_owned()));
}

/// A web app that is not there: the startup warns, each failed call is a WARNING with its real
/// reason in the error log (`-E`), the client's ERROR names no host or OS error, and the call is
/// counted as failed.
#[tokio::test]
async fn a_failing_webhook_is_logged_with_its_reason_and_counted() {
    let dead = free_port().to_string();
    let dir = std::env::temp_dir().join(format!("hookbox-elog-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let elog = dir.join("errors.log");
    let elog_arg = elog.to_str().unwrap().to_owned();
    let run = Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--cbport",
            &dead,
            "-E",
            &elog_arg,
        ],
        &[],
    );
    let port = run.startup_port("127.0.0.1");
    let mut c = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
    c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    let msg = c.expect("ERROR").await["msg"].as_str().unwrap().to_owned();
    assert_eq!(msg, "failure: the web application could not be reached");

    let failed = format!("webhook connect http://127.0.0.1:{dead}/hookbox/connect failed");
    let probe = format!("the web application at 127.0.0.1:{dead} does not answer");
    // Both lines: the startup probe runs on its own and may log after the client's call.
    let deadline = std::time::Instant::now() + GUARD;
    let log = loop {
        let log = std::fs::read_to_string(&elog).unwrap_or_default();
        if log.contains(&failed) && log.contains(&probe) {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not in the error log: {log}"
        );
        tokio::task::yield_now().await;
    };
    assert!(log.contains(" - hookbox - WARNING - "), "{log}");
    let m = scrape(port).await;
    assert_eq!(
        value(
            &m,
            r#"hookbox_webhook_calls_total{hook="connect",outcome="failed"}"#
        ),
        1.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--webhook-error-details` (development): the client's ERROR says what happened.
#[tokio::test]
async fn error_details_on_request() {
    let dead = free_port().to_string();
    let run = Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--cbport",
            &dead,
            "--webhook-error-details",
        ],
        &[],
    );
    let port = run.startup_port("127.0.0.1");
    let mut c = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
    c.send("CONNECT", json!({"cookie_string": "user=a"})).await;
    let msg = c.expect("ERROR").await["msg"].as_str().unwrap().to_owned();
    assert!(msg.starts_with("failure: "), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{dead}")), "{msg}");
}

/// `--log-format json`: every line is a JSON object, the startup line among them.
#[tokio::test]
async fn json_log_lines() {
    let run = Running::spawn(&["-i", "127.0.0.1", "-p", "0", "--log-format", "json"], &[]);
    let line = run.next_line();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
    assert_eq!(v["level"], "INFO");
    let msg = v["fields"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Listening to hookbox on http://127.0.0.1:"),
        "{msg}"
    );
}

/// Connections closed for doing nothing are counted by kind.
#[tokio::test]
async fn timeouts_are_counted_by_kind() {
    use tokio::io::AsyncReadExt;
    let web = WebApp::start().await;
    let (_run, port) = server(
        &web,
        &["--header-timeout", "0.3", "--connect-timeout", "0.3"],
    );
    // A socket that sends nothing, and a WebSocket that sends no CONNECT.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(GUARD, silent.read(&mut buf))
        .await
        .expect("the silent socket was not closed");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let mut ws = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
    assert_eq!(
        ws.expect_close().await,
        Some((1008, "no CONNECT within 0.3 s".to_owned()))
    );
    let m = scrape(port).await;
    assert_eq!(value(&m, r#"hookbox_timeouts_total{kind="header"}"#), 1.0);
    assert_eq!(value(&m, r#"hookbox_timeouts_total{kind="connect"}"#), 1.0);
}

/// Each per-client limit counts its refusals, by reason.
#[tokio::test]
async fn refused_publishes_and_subscriptions_are_counted_by_reason() {
    let web = WebApp::start().await;
    web.channel_options(json!({"moderated": false}));
    let (_run, port) = server(
        &web,
        &[
            "--publish-rate",
            "0.000001",
            "--publish-burst",
            "1",
            "--user-publish-rate",
            "0.000001",
            "--user-publish-burst",
            "2",
            "--max-channels-per-user",
            "1",
        ],
    );
    let mut a = connected(port, "ann").await;
    let mut b = connected(port, "ann").await;
    a.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    a.expect("SUBSCRIBE").await;
    b.expect("SUBSCRIBE").await;
    a.send("SUBSCRIBE", json!({"channel_name": "hall"})).await;
    a.expect_error("Too many channels for one user (at most 1)")
        .await;
    let publish = json!({"channel_name": "room", "payload": "1"});
    a.send("PUBLISH", publish.clone()).await;
    a.expect("PUBLISH").await;
    b.expect("PUBLISH").await;
    a.send("PUBLISH", publish.clone()).await;
    a.expect_error("Publishing too fast (at most 0.000001 per second per connection)")
        .await;
    b.send("PUBLISH", publish.clone()).await;
    b.expect("PUBLISH").await;
    a.expect("PUBLISH").await;
    // b has a token of its own left, but ann's two are spent.
    let mut c = connected(port, "ann").await;
    c.expect("SUBSCRIBE").await;
    c.send("PUBLISH", publish).await;
    c.expect_error("Publishing too fast (at most 0.000001 per second per user)")
        .await;

    let m = scrape(port).await;
    let refusals = |reason: &str| {
        value(
            &m,
            &format!(r#"hookbox_refusals_total{{reason="{reason}"}}"#),
        )
    };
    assert_eq!(refusals("channels_per_user"), 1.0);
    assert_eq!(refusals("publish_rate"), 1.0);
    assert_eq!(refusals("user_publish_rate"), 1.0);
}
