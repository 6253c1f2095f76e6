//! The server under test, started in-process on loopback with its own web app, and its Web API
//! client.

use super::{http_client, Client, HookRecord, Reply, WebApp};
use hookbox::app::App;
use hookbox::config::{Config, EngineConfig, RedisConfig};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Server {
    pub addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub web: WebApp,
    pub token: String,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The engine the tests run against: memory, or Redis when `HOOKBOX_TEST_ENGINE=redis` (with
/// `HOOKBOX_TEST_REDIS_URL`). Each server gets keys of its own, so tests can share one Redis.
/// `HOOKBOX_TEST_ENGINE=redis-cluster` uses the Redis Cluster whose seed nodes are
/// `HOOKBOX_TEST_REDIS_CLUSTER` (comma-separated URLs); `HOOKBOX_TEST_ENGINE=redis-sentinel` the
/// master that the Sentinel at `HOOKBOX_TEST_REDIS_SENTINEL` names `hookbox-test`.
pub fn test_engine() -> EngineConfig {
    let prefix = format!("test{:016x}", rand::random::<u64>());
    match std::env::var("HOOKBOX_TEST_ENGINE").as_deref() {
        Ok("redis") => EngineConfig::Redis(RedisConfig {
            urls: vec![std::env::var("HOOKBOX_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())],
            cluster: false,
            sentinel: None,
            sentinel_password: None,
            prefix,
            node_timeout: Duration::from_secs(10),
        }),
        Ok("redis-cluster") => EngineConfig::Redis(RedisConfig {
            urls: redis_cluster_urls().expect("HOOKBOX_TEST_REDIS_CLUSTER"),
            cluster: true,
            sentinel: None,
            sentinel_password: None,
            prefix,
            node_timeout: Duration::from_secs(10),
        }),
        Ok("redis-sentinel") => EngineConfig::Redis(RedisConfig {
            urls: vec![redis_sentinel_url().expect("HOOKBOX_TEST_REDIS_SENTINEL")],
            cluster: false,
            sentinel: Some(TEST_SENTINEL_MASTER.to_owned()),
            sentinel_password: None,
            prefix,
            node_timeout: Duration::from_secs(10),
        }),
        _ => EngineConfig::Memory,
    }
}

/// The name the test Sentinel knows its master by (`scripts/test.sh`).
pub const TEST_SENTINEL_MASTER: &str = "hookbox-test";

/// The test Sentinel, in a `HOOKBOX_TEST_ENGINE=redis-sentinel` run.
pub fn redis_sentinel_url() -> Option<String> {
    std::env::var("HOOKBOX_TEST_REDIS_SENTINEL").ok()
}

/// The seed nodes of the test Redis Cluster, if there is one.
pub fn redis_cluster_urls() -> Option<Vec<String>> {
    let urls = std::env::var("HOOKBOX_TEST_REDIS_CLUSTER").ok()?;
    Some(urls.split(',').map(str::to_owned).collect())
}

/// Whether this run tests the Redis engine.
pub fn engine_is_redis() -> bool {
    matches!(
        std::env::var("HOOKBOX_TEST_ENGINE").as_deref(),
        Ok("redis" | "redis-cluster" | "redis-sentinel")
    )
}

/// A config for tests: loopback, any port, webhooks to `web`, API token `secret`.
pub fn test_config(web: &WebApp) -> Config {
    Config {
        engine: test_engine(),
        interface: "127.0.0.1".to_owned(),
        port: 0,
        api_security_token: Some("secret".to_owned()),
        webhook_timeout: Duration::from_secs(5),
        webhooks: hookbox::webhook::WebhookSettings {
            cbport: web.addr.port(),
            ..Default::default()
        },
        ..Config::default()
    }
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(|_| {}).await
    }

    /// Starts a web app and a server whose config `tweak` may change.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Server {
        let web = WebApp::start().await;
        let mut config = test_config(&web);
        tweak(&mut config);
        let token = config.api_security_token.clone().unwrap_or_default();
        let shutdown = CancellationToken::new();
        let app = App::bind(config, shutdown.clone()).await.expect("bind");
        let addr = app.local_addr();
        let api_addr = app.api_addr().unwrap_or(addr);
        tokio::spawn(app.serve());
        Server {
            addr,
            api_addr,
            web,
            token,
            shutdown,
            http: http_client(),
        }
    }

    /// Stops the server as SIGTERM does (its shutdown token).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// A WebSocket client (not yet CONNECTed).
    pub async fn client(&self) -> Client {
        Client::open(&format!("ws://{}/ws", self.addr)).await
    }

    /// A server whose channels are created unmoderated by the create_channel webhook.
    pub async fn unmoderated() -> Server {
        let s = Server::start().await;
        s.web.channel_options(json!({"moderated": false}));
        s
    }

    /// A client that sent CONNECT with `cookie` and got CONNECTED; returns it with CONNECTED's
    /// args and the connect webhook, which carried `cookie`.
    async fn connect_cookie(&self, cookie: &str) -> (Client, Map<String, Value>, HookRecord) {
        let mut c = self.client().await;
        c.send("CONNECT", json!({"cookie_string": cookie})).await;
        let args = c.expect("CONNECTED").await;
        let hook = self.web.expect("connect").await;
        assert_eq!(hook.header("cookie"), Some(cookie));
        (c, args, hook)
    }

    /// A client that sent CONNECT with cookie `user=<name>` and got CONNECTED.
    pub async fn connected(&self, name: &str) -> Client {
        self.connected_with_id(name).await.0
    }

    /// `connected`, plus the connection id (from the connect webhook).
    pub async fn connected_with_id(&self, name: &str) -> (Client, String) {
        let (c, args, hook) = self.connect_cookie(&format!("user={name}")).await;
        assert_eq!(args["name"], name);
        (c, hook.field("conn_id").unwrap().to_owned())
    }

    /// A client that sent CONNECT with `cookie` and got CONNECTED, named by the connect reply
    /// `[true, reply]` when given (else the default reply names the `user=` cookie).
    pub async fn connect_with(&self, cookie: &str, reply: Option<Value>) -> Client {
        if let Some(r) = reply {
            self.web.once("connect", Reply::ok(r));
        }
        self.connect_cookie(cookie).await.0
    }

    /// POSTs `/web/<method>` with the token plus `params`; returns status and parsed body.
    pub async fn api(&self, method: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let mut form: Vec<(&str, &str)> = vec![("security_token", &self.token)];
        form.extend_from_slice(params);
        self.api_raw(&format!("/web/{method}"), &form).await
    }

    /// POSTs a form to a path of the API listener, returning status and JSON body.
    pub async fn api_raw(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("http://{}{path}", self.api_addr))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Calls the API and asserts `[true, …]`, returning the object.
    pub async fn api_ok(&self, method: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.api(method, params).await;
        assert_eq!(status, 200);
        assert_eq!(body[0], true, "{method} failed: {body}");
        body[1].clone()
    }

    /// Calls the API and asserts `[false, {"msg": …}]`, returning the msg.
    pub async fn api_err(&self, method: &str, params: &[(&str, &str)]) -> String {
        let (status, body) = self.api(method, params).await;
        assert_eq!(status, 200);
        assert_eq!(body[0], false, "{method} should fail: {body}");
        body[1]["msg"].as_str().unwrap().to_owned()
    }
}
