//! One node cut off from Redis (a TCP proxy between them that the test cuts and restores), and a
//! Redis that restarts without its data: nothing the cluster owes is dropped, and nobody stays in
//! a state the cluster no longer knows.
//!
//! These tests run on a single Redis whatever the run's engine: the proxy fronts one server.

use crate::common;
use common::cluster::{redis_url, Cluster};
use common::proxy::Proxy;
use common::{free_port, Client, GUARD};
use hookbox::config::{Config, EngineConfig};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Points a node's engine at `url` (a single Redis) with `node_timeout`.
fn on_redis(config: &mut Config, url: &str, node_timeout: Duration) {
    let EngineConfig::Redis(r) = &mut config.engine else {
        unreachable!("cluster nodes use Redis")
    };
    r.urls = vec![url.to_owned()];
    r.cluster = false;
    r.sentinel = None;
    r.node_timeout = node_timeout;
}

/// `redis_url()` as `host:port`.
fn redis_addr(url: &str) -> String {
    url.trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned()
}

/// alice on node 0 and bob on node 1, both in presenceful `room`; the webhooks so far drained.
async fn alice_and_bob(c: &Cluster) -> (Client, Client) {
    c.web
        .channel_options(json!({"presenceful": true, "moderated": false}));
    let mut alice = c.connected(0, "alice").await;
    let mut bob = c.connected(1, "bob").await;
    alice
        .send("SUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    alice.expect("SUBSCRIBE").await;
    bob.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    bob.expect("SUBSCRIBE").await;
    assert_eq!(alice.expect("SUBSCRIBE").await["user"], "bob");
    c.web.drain().await;
    (alice, bob)
}

/// Attack on consistency: alice closes her tab while her node cannot reach Redis. Her close
/// handling waits for Redis instead of being dropped: once the link is back, bob sees her leave
/// and the web app hears her disconnect, once.
#[tokio::test]
async fn a_close_during_an_outage_is_handled_once_redis_is_back() {
    let url = redis_url();
    let proxy = Proxy::start(&redis_addr(&url)).await;
    let proxied = proxy.redis_url();
    // A long node timeout: nobody is given up for dead during the cut.
    let c = Cluster::start_each(2, |i, config| {
        let via = if i == 0 { &proxied } else { &url };
        on_redis(config, via, Duration::from_secs(60));
    })
    .await;
    let (alice, mut bob) = alice_and_bob(&c).await;

    proxy.cut();
    alice.close().await;
    // Node 0 cannot tell Redis: the error is what its Web API says meanwhile.
    let body = c
        .api(0, "get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(body[0], false, "{body}");
    proxy.restore();

    let left = bob.expect("UNSUBSCRIBE").await;
    assert_eq!(left["user"], "alice");
    let hook = c.web.expect("disconnect").await;
    assert_eq!(hook.field("name"), Some("alice"));
    let info = c
        .api_ok(1, "get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["subscribers"], json!(["bob"]));
    bob.assert_quiet().await;
    assert!(c.web.drain().await.is_empty(), "each webhook once");
}

/// A node cut off for longer than the node timeout is given up for dead: the others run its
/// users' close handling (bob sees alice leave, her disconnect webhook fires). When the node
/// reaches Redis again it finds its record gone, and closes alice's connection (1013, "connect
/// again") instead of serving her in a state the cluster no longer has; no webhook fires twice.
#[tokio::test]
async fn a_node_given_up_for_dead_closes_its_clients_when_it_is_back() {
    let url = redis_url();
    let proxy = Proxy::start(&redis_addr(&url)).await;
    let proxied = proxy.redis_url();
    let c = Cluster::start_each(2, |i, config| {
        let via = if i == 0 { &proxied } else { &url };
        on_redis(config, via, Duration::from_secs(1));
    })
    .await;
    let (mut alice, mut bob) = alice_and_bob(&c).await;

    proxy.cut();
    assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "alice");
    let hook = c.web.expect("disconnect").await;
    assert_eq!(hook.field("name"), Some("alice"));
    proxy.restore();

    let (code, reason) = alice.expect_close().await.expect("a close frame");
    assert_eq!(code, 1013, "{reason}");
    // alice connects again, through either node, and is a user like any other.
    let mut again = c.connected(0, "alice").await;
    again
        .send("SUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    assert_eq!(
        again.expect("SUBSCRIBE").await["presence"],
        json!(["bob", "alice"])
    );
    assert_eq!(bob.expect("SUBSCRIBE").await["user"], "alice");
    let hooks = c.web.actions().await;
    assert!(
        !hooks.iter().any(|h| h == "disconnect"),
        "no second disconnect: {hooks:?}"
    );
}

/// A private redis-server without persistence: a restart loses everything.
struct EphemeralRedis {
    port: u16,
    child: Child,
}

impl EphemeralRedis {
    fn start(port: u16) -> EphemeralRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "no", "--save", ""])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (the test command installs it)");
        let r = EphemeralRedis { port, child };
        r.wait_ready();
        r
    }

    /// Waits until it answers PING (each try is a round trip, bounded by the hang guard).
    fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + GUARD;
        loop {
            let out = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "ping"])
                .output()
                .expect("redis-cli");
            if out.stdout.starts_with(b"PONG") {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "redis did not start");
            std::thread::yield_now();
        }
    }
}

impl Drop for EphemeralRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis restarts empty: every node finds its record gone and closes its connections (1013), so
/// that clients connect again and the web app is asked again; after that, the cluster works.
#[tokio::test]
async fn redis_restarted_without_its_data_makes_every_client_start_afresh() {
    let port = free_port();
    let redis = EphemeralRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let c = Cluster::start_each(2, |_, config| {
        on_redis(config, &url, Duration::from_secs(2));
    })
    .await;
    let (mut alice, mut bob) = alice_and_bob(&c).await;

    drop(redis);
    let _redis = EphemeralRedis::start(port);
    for client in [&mut alice, &mut bob] {
        let (code, reason) = client.expect_close().await.expect("a close frame");
        assert_eq!(code, 1013, "{reason}");
    }
    let mut alice = c.connected(0, "alice").await;
    let mut bob = c.connected(1, "bob").await;
    alice
        .send("SUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    alice.expect("SUBSCRIBE").await;
    bob.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    bob.expect("SUBSCRIBE").await;
    c.api_ok(0, "publish", &[("channel_name", "room"), ("payload", "1")])
        .await;
    assert_eq!(bob.expect("PUBLISH").await["payload"], 1);
    assert_eq!(alice.expect("SUBSCRIBE").await["user"], "bob");
    assert_eq!(alice.expect("PUBLISH").await["payload"], 1);
}

/// `/readyz` says whether the node's engine answers: 503 while the node is cut off from Redis,
/// 200 once it is back; `/healthz` answers throughout.
#[tokio::test]
async fn readyz_follows_the_link_to_redis() {
    let url = redis_url();
    let proxy = Proxy::start(&redis_addr(&url)).await;
    let proxied = proxy.redis_url();
    let c = Cluster::start_each(1, |_, config| {
        on_redis(config, &proxied, Duration::from_secs(60));
    })
    .await;
    let http = common::http_client();
    let get = |path: &'static str| {
        let url = format!("http://{}{path}", c.nodes[0]);
        let http = http.clone();
        async move {
            let resp = http.get(url).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    assert_eq!(get("/readyz").await, (200, "ready\n".to_owned()));
    proxy.cut();
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready: engine unavailable"), "{body}");
    assert_eq!(get("/healthz").await.0, 200);
    proxy.restore();
    let deadline = tokio::time::Instant::now() + GUARD;
    while get("/readyz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready again");
        tokio::task::yield_now().await;
    }
}
