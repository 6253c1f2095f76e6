//! Several hookbox nodes sharing one Redis (`HOOKBOX_TEST_REDIS_URL`, which the test command
//! provides), in this process, with one web application behind all of them.

use super::{http_client, test_config, Client, WebApp};
use hookbox::app::App;
use hookbox::config::{Config, EngineConfig, RedisConfig};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The Redis the multi-node tests use.
pub fn redis_url() -> String {
    std::env::var("HOOKBOX_TEST_REDIS_URL").expect(
        "the multi-node tests need a redis-server: set HOOKBOX_TEST_REDIS_URL (./scripts/test.sh does)",
    )
}

/// A Redis engine configuration for the nodes of one test cluster (one key prefix), on `url`,
/// or on the test Redis Cluster in a `HOOKBOX_TEST_ENGINE=redis-cluster` run, or on the master
/// the test Sentinel names in a `HOOKBOX_TEST_ENGINE=redis-sentinel` run.
pub fn redis_engine(url: &str, prefix: &str) -> EngineConfig {
    let engine = std::env::var("HOOKBOX_TEST_ENGINE");
    let cluster = engine.as_deref() == Ok("redis-cluster");
    let sentinel = engine.as_deref() == Ok("redis-sentinel");
    let urls = match (cluster, super::redis_cluster_urls(), sentinel) {
        (true, Some(urls), _) => urls,
        (_, _, true) => vec![super::redis_sentinel_url().expect("HOOKBOX_TEST_REDIS_SENTINEL")],
        _ => vec![url.to_owned()],
    };
    EngineConfig::Redis(RedisConfig {
        urls,
        cluster,
        sentinel: sentinel.then(|| super::TEST_SENTINEL_MASTER.to_owned()),
        sentinel_password: None,
        prefix: prefix.to_owned(),
        node_timeout: Duration::from_secs(2),
    })
}

pub struct Cluster {
    pub web: WebApp,
    pub nodes: Vec<SocketAddr>,
    stops: Vec<CancellationToken>,
    /// Each node's serve task, which ends once its shutdown has drained.
    served: parking_lot::Mutex<Vec<Option<tokio::task::JoinHandle<()>>>>,
    http: reqwest::Client,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &self.stops {
            s.cancel();
        }
    }
}

impl Cluster {
    /// `n` nodes on one Redis key prefix, webhooks to one web app, API token `secret`.
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, |_| {}).await
    }

    pub async fn start_with(n: usize, tweak: impl Fn(&mut Config)) -> Cluster {
        Cluster::start_each(n, |_, config| tweak(config)).await
    }

    /// `n` nodes whose configs `tweak` may change, given each node's index.
    pub async fn start_each(n: usize, tweak: impl Fn(usize, &mut Config)) -> Cluster {
        let web = WebApp::start().await;
        let prefix = format!("cluster{:016x}", rand::random::<u64>());
        let url = redis_url();
        let mut nodes = Vec::new();
        let mut stops = Vec::new();
        let mut served = Vec::new();
        for i in 0..n {
            let mut config = test_config(&web);
            config.engine = redis_engine(&url, &prefix);
            tweak(i, &mut config);
            let stop = CancellationToken::new();
            let app = App::bind(config, stop.clone()).await.expect("bind a node");
            nodes.push(app.local_addr());
            served.push(Some(tokio::spawn(async move {
                let _ = app.serve().await;
            })));
            stops.push(stop);
        }
        Cluster {
            web,
            nodes,
            stops,
            served: parking_lot::Mutex::new(served),
            http: http_client(),
        }
    }

    /// A WebSocket client of node `i` (not yet CONNECTed).
    pub async fn client(&self, i: usize) -> Client {
        Client::open(&format!("ws://{}/ws", self.nodes[i])).await
    }

    /// A client of node `i` that CONNECTed with cookie `user=<name>` (answered by the web app's
    /// default reply) and got CONNECTED.
    pub async fn connected(&self, i: usize, name: &str) -> Client {
        let mut c = self.client(i).await;
        c.send("CONNECT", json!({"cookie_string": format!("user={name}")}))
            .await;
        assert_eq!(c.expect("CONNECTED").await["name"], name);
        c
    }

    /// alice on node 0 and bob on node 1, both subscribed to `channel` (which must need no
    /// webhook: unmoderated).
    pub async fn alice_and_bob_in(&self, channel: &str) -> (Client, Client) {
        let mut alice = self.connected(0, "alice").await;
        let mut bob = self.connected(1, "bob").await;
        for cl in [&mut alice, &mut bob] {
            cl.send("SUBSCRIBE", json!({"channel_name": channel})).await;
            cl.expect("SUBSCRIBE").await;
        }
        (alice, bob)
    }

    /// POSTs `/web/<method>` to node `i`; returns the body.
    pub async fn api(&self, i: usize, method: &str, params: &[(&str, &str)]) -> Value {
        let mut form: Vec<(&str, &str)> = vec![("security_token", "secret")];
        form.extend_from_slice(params);
        let resp = self
            .http
            .post(format!("http://{}/web/{method}", self.nodes[i]))
            .form(&form)
            .send()
            .await
            .unwrap();
        serde_json::from_str(&resp.text().await.unwrap()).unwrap()
    }

    pub async fn api_ok(&self, i: usize, method: &str, params: &[(&str, &str)]) -> Value {
        let body = self.api(i, method, params).await;
        assert_eq!(body[0], true, "{method} on node {i}: {body}");
        body[1].clone()
    }

    /// Number of connections of user `name`, asked of node `i` (0 when the user does not exist).
    pub async fn connections_of(&self, i: usize, name: &str) -> usize {
        let body = self.api(i, "get_user_info", &[("user_name", name)]).await;
        body[1]["connections"].as_array().map_or(0, Vec::len)
    }

    /// Stops node `i` as SIGTERM would.
    pub fn stop(&self, i: usize) {
        self.stops[i].cancel();
    }

    /// Waits until stopped node `i` has finished its shutdown: every connection's close
    /// handling ran (or `--shutdown-timeout` passed).
    pub async fn stopped(&self, i: usize) {
        let task = self.served.lock()[i].take().expect("waited for once");
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the node shut down")
            .expect("the node's task ended");
    }
}
