//! Failures of a multi-node hookbox: a node killed with SIGKILL is cleaned up after by the
//! survivors (its users' unsubscribe and disconnect webhooks, once), and a Redis that goes away
//! and comes back: clear errors meanwhile, then the cluster works again.

use crate::common;
use common::binary::Running;
use common::cluster::{redis_url, Cluster};
use common::redis_proc::RedisProc;
use common::{free_port, Client, WebApp, GUARD};
use serde_json::json;
use std::process::Command;

/// The run's Redis Cluster, if it tests one, else the test Redis: (URLs, `--redis-cluster=…`).
fn test_redis() -> (String, &'static str) {
    match (common::engine_is_redis(), common::redis_cluster_urls()) {
        (true, Some(urls))
            if std::env::var("HOOKBOX_TEST_ENGINE").as_deref() == Ok("redis-cluster") =>
        {
            (urls.join(","), "--redis-cluster=true")
        }
        _ => (redis_url(), "--redis-cluster=false"),
    }
}

/// A hookbox binary on the test Redis, as one node of cluster `prefix`.
fn node(web: &WebApp, prefix: &str) -> (Running, u16) {
    let cbport = web.addr.port().to_string();
    let (url, cluster) = test_redis();
    let run = Running::spawn(
        &[
            cluster,
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--cbport",
            &cbport,
            "-r",
            "secret",
            "--engine",
            "redis",
            "--redis-url",
            &url,
            "--redis-prefix",
            prefix,
            "--node-timeout",
            "1",
        ],
        &[],
    );
    let port = run.startup_port("127.0.0.1");
    let engine = run.next_line();
    let kind = if cluster.ends_with("true") {
        "Redis Cluster"
    } else {
        "Redis"
    };
    assert!(
        engine.ends_with(&format!(
            " - hookbox - INFO - Engine: {kind} at {url}, key prefix {prefix}"
        )),
        "{engine}"
    );
    (run, port)
}

async fn connected(port: u16, name: &str) -> Client {
    let mut c = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
    c.send("CONNECT", json!({"cookie_string": format!("user={name}")}))
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], name);
    c
}

#[tokio::test]
async fn a_killed_nodes_users_are_cleaned_up_by_the_survivors() {
    let web = WebApp::start().await;
    web.channel_options(json!({"presenceful": true, "moderated": false}));
    let prefix = format!("kill{:016x}", rand::random::<u64>());
    let (doomed, port1) = node(&web, &prefix);
    let (_survivor, port2) = node(&web, &prefix);
    let mut alice = connected(port1, "alice").await;
    let mut bob = connected(port2, "bob").await;
    alice
        .send("SUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    alice.expect("SUBSCRIBE").await;
    bob.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    bob.expect("SUBSCRIBE").await;
    alice.expect("SUBSCRIBE").await;
    web.drain().await;

    let status = doomed.stop("KILL").await;
    assert!(!status.success());
    // The survivor notices the missing heartbeat and runs alice's close handling: bob sees her
    // leave, the web app hears her disconnect, once.
    assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "alice");
    let hook = web.expect("disconnect").await;
    assert_eq!(hook.field("name"), Some("alice"));
    assert_eq!(hook.header("cookie"), Some("user=alice"));
    let form = [("security_token", "secret"), ("channel_name", "room")];
    let info = common::binary::api_post(port2, "get_channel_info", &form).await;
    assert_eq!(info[1]["subscribers"], json!(["bob"]));
    let info =
        common::binary::api_post(port2, "get_server_info", &[("security_token", "secret")]).await;
    assert_eq!(info[1]["connections"].as_array().unwrap().len(), 1);
    bob.assert_quiet().await;
    assert!(web.drain().await.is_empty(), "each webhook once");
}

/// `redis-cli` on the test Redis (following a Redis Cluster's redirections); its output.
fn redis_cli(args: &[&str]) -> String {
    let (urls, _) = test_redis();
    let first = urls.split(',').next().unwrap();
    let port = first.rsplit(':').next().unwrap().trim_end_matches('/');
    let out = Command::new("redis-cli")
        .args(["-c", "-p", port])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn channel_events_a_node_missed_are_noticed_and_logged() {
    let web = WebApp::start().await;
    web.channel_options(json!({"moderated": false}));
    let prefix = format!("gap{:016x}", rand::random::<u64>());
    let (run, port) = node(&web, &prefix);
    let mut bob = connected(port, "bob").await;
    bob.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    bob.expect("SUBSCRIBE").await;

    // Two events of the channel were published while this node's pub/sub link was down (as
    // after a dropped connection), then a third arrives, in the documented message format.
    let meta = format!("{prefix}:c:{{room}}");
    let offset = redis_cli(&["HINCRBY", &meta, "off", "3"]);
    let epoch = redis_cli(&["HGET", &meta, "epoch"]);
    let args = r#"{"channel_name": "room", "payload": "third", "user": null, "datetime": "x"}"#;
    let event = format!(
        "[\"{}\",{},\"P\",\"\",\"*\"]\n{args}",
        epoch.trim(),
        offset.trim()
    );
    let publish = if test_redis().1.ends_with("true") {
        "SPUBLISH"
    } else {
        "PUBLISH"
    };
    assert_eq!(
        redis_cli(&[publish, &format!("{meta}:ev"), &event]).trim(),
        "1"
    );
    assert_eq!(bob.expect("PUBLISH").await["payload"], "third");
    // The node says what it lost (logged before the delivery above).
    loop {
        let line = run.next_line();
        if line.contains("hookbox - WARNING - 2 events of channel room were lost") {
            break;
        }
    }
    // And delivers what follows.
    let form = [
        ("security_token", "secret"),
        ("channel_name", "room"),
        ("payload", "4"),
    ];
    let body = common::binary::api_post(port, "publish", &form).await;
    assert_eq!(body[0], true, "{body}");
    assert_eq!(bob.expect("PUBLISH").await["payload"], 4);
}

/// A member's leave is among the events a node lost (here: bob was removed from the channel in
/// Redis, and the event saying so never reached his node). Once the gap shows, the node checks
/// its members against a snapshot: bob gets his UNSUBSCRIBE and no longer receives the channel,
/// while ann, still a member, does.
#[tokio::test]
async fn a_lost_leave_is_made_good_once_the_gap_shows() {
    let web = WebApp::start().await;
    web.channel_options(json!({"moderated": false}));
    let prefix = format!("lostleave{:016x}", rand::random::<u64>());
    let (_run, port) = node(&web, &prefix);
    let mut ann = connected(port, "ann").await;
    let mut bob = connected(port, "bob").await;
    for c in [&mut ann, &mut bob] {
        c.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
        c.expect("SUBSCRIBE").await;
    }

    let meta = format!("{prefix}:c:{{room}}");
    assert_eq!(
        redis_cli(&["ZREM", &format!("{meta}:m"), "bob"]).trim(),
        "1"
    );
    redis_cli(&["HINCRBY", &meta, "off", "1"]); // the leave's offset, never published
    let form = [
        ("security_token", "secret"),
        ("channel_name", "room"),
        ("payload", "1"),
    ];
    let body = common::binary::api_post(port, "publish", &form).await;
    assert_eq!(body[0], true, "{body}");
    assert_eq!(ann.expect("PUBLISH").await["payload"], 1);
    // The publication came before the check; then bob is let go.
    assert_eq!(bob.expect("PUBLISH").await["payload"], 1);
    assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "bob");
    let form = [
        ("security_token", "secret"),
        ("channel_name", "room"),
        ("payload", "2"),
    ];
    let body = common::binary::api_post(port, "publish", &form).await;
    assert_eq!(body[0], true, "{body}");
    assert_eq!(ann.expect("PUBLISH").await["payload"], 2);
    bob.assert_quiet().await;
}

/// A private redis-server on `port` (this test stops and restarts it), persisting every write
/// so that a restart keeps the data.
fn own_redis(port: u16, dir: &std::path::Path) -> RedisProc {
    let port = port.to_string();
    let args = [
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
    ];
    let more = ["--appendfsync", "always", "--save", "", "--dir"];
    let dir_arg = dir.as_os_str();
    RedisProc::spawn(
        args.iter()
            .chain(more.iter())
            .map(std::ffi::OsStr::new)
            .chain(std::iter::once(dir_arg)),
        dir.to_owned(),
    )
}

/// Retries `f` until it returns `Some` (each try is a request the server answers): a wait for
/// an event, bounded by the hang guard.
async fn until<T, F: std::future::Future<Output = Option<T>>>(mut f: impl FnMut() -> F) -> T {
    tokio::time::timeout(GUARD * 3, async {
        loop {
            if let Some(v) = f().await {
                return v;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the cluster did not recover")
}

#[tokio::test]
async fn redis_going_away_gives_clear_errors_then_the_cluster_recovers() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("hookbox-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = own_redis(port, &dir);
    let url = format!("redis://127.0.0.1:{port}");
    let cli = || {
        let mut c = Command::new("redis-cli");
        c.args(["-p", &port.to_string()]);
        c
    };
    until(|| async {
        cli()
            .arg("ping")
            .output()
            .ok()
            .filter(|o| o.stdout.starts_with(b"PONG"))
    })
    .await;
    let prefix = format!("outage{:016x}", rand::random::<u64>());
    // This Redis, whatever the run's engine (it is the one this test stops).
    let c = Cluster::start_with(2, |config| {
        config.engine = hookbox::config::EngineConfig::Redis(hookbox::config::RedisConfig {
            urls: vec![url.clone()],
            cluster: false,
            sentinel: None,
            sentinel_password: None,
            prefix: prefix.clone(),
            node_timeout: std::time::Duration::from_secs(2),
        })
    })
    .await;
    c.web.channel_options(json!({"moderated": false}));
    let (mut alice, mut bob) = c.alice_and_bob_in("room").await;
    c.api_ok(0, "publish", &[("channel_name", "room"), ("payload", "1")])
        .await;
    for cl in [&mut alice, &mut bob] {
        assert_eq!(cl.expect("PUBLISH").await["payload"], 1);
    }

    redis.kill();
    // What needs Redis is refused with a clear error, to whoever asked.
    let body = c
        .api(1, "publish", &[("channel_name", "room"), ("payload", "2")])
        .await;
    assert_eq!(body[0], false);
    let msg = body[1]["msg"].as_str().unwrap();
    assert!(msg.starts_with("engine unavailable"), "{msg}");
    alice
        .send("PUBLISH", json!({"channel_name": "room", "payload": "3"}))
        .await;
    let err = alice.expect("ERROR").await;
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .starts_with("engine unavailable"),
        "{err:?}"
    );

    // Redis comes back (with its data): the nodes reconnect and resubscribe by themselves.
    let _redis = own_redis(port, &dir);
    until(|| async {
        let body = c
            .api(1, "publish", &[("channel_name", "room"), ("payload", "4")])
            .await;
        (body[0] == true).then_some(())
    })
    .await;
    // Publishes made after the recovery reach both nodes (the retries above may have delivered
    // a few 4s first, once the pub/sub subscriptions were back).
    c.api_ok(0, "publish", &[("channel_name", "room"), ("payload", "5")])
        .await;
    for cl in [&mut alice, &mut bob] {
        loop {
            if cl.expect("PUBLISH").await["payload"] == 5 {
                break;
            }
        }
    }
    let info = c
        .api_ok(1, "get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["subscribers"], json!(["alice", "bob"]));
}
