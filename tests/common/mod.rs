//! Test harness: a real hookbox server on loopback, a real HTTP web app that records every webhook
//! and answers scripted replies, real WebSocket clients, and a Web API client.
//!
//! Waiting is always on an event (a frame, a recorded webhook); the only timeouts are hang guards
//! that fail the test, never synchronisation.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hookbox::app::App;
use hookbox::config::Config;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Longest any single expected event may take before the test fails (a hang guard).
pub const GUARD: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The web application

/// One webhook call as the web app received it.
#[derive(Debug, Clone)]
pub struct HookRecord {
    pub path: String,
    pub method: String,
    pub headers: HeaderMap,
    /// Form fields in wire order.
    pub form: Vec<(String, String)>,
}

impl HookRecord {
    pub fn action(&self) -> &str {
        self.field("action").unwrap_or("")
    }
    pub fn field(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Form field names, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.form.iter().map(|(k, _)| k.clone()).collect();
        k.sort();
        k
    }
}

/// A scripted reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub set_cookie: Option<String>,
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn json(v: Value) -> Reply {
        Reply {
            status: 200,
            body: v.to_string(),
            set_cookie: None,
            delay: None,
        }
    }
    pub fn ok(opts: Value) -> Reply {
        Reply::json(json!([true, opts]))
    }
    pub fn deny(opts: Value) -> Reply {
        Reply::json(json!([false, opts]))
    }
    pub fn raw(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_owned(),
            set_cookie: None,
            delay: None,
        }
    }
    pub fn with_cookie(mut self, cookie: &str) -> Reply {
        self.set_cookie = Some(cookie.to_owned());
        self
    }
    pub fn delayed(mut self, d: Duration) -> Reply {
        self.delay = Some(d);
        self
    }
}

#[derive(Default)]
struct WebAppInner {
    /// Per action: replies used once each, in order, before falling back to `defaults`.
    queued: HashMap<String, VecDeque<Reply>>,
    defaults: HashMap<String, Reply>,
}

#[derive(Clone)]
struct WebAppState {
    inner: Arc<Mutex<WebAppInner>>,
    tx: mpsc::UnboundedSender<HookRecord>,
}

/// The in-test web application. By default: `connect` answers `[true, {"name": <cookie user=…>}]`
/// (or the `payload`'s `"name"`), `create_channel` answers `[true, {}]`, every other hook
/// `[true, {}]`.
pub struct WebApp {
    pub addr: SocketAddr,
    state: WebAppState,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<HookRecord>>,
}

async fn webapp_handler(
    State(st): State<WebAppState>,
    uri: Uri,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let record = HookRecord {
        path: uri.to_string(),
        method: method.to_string(),
        headers: headers.clone(),
        form,
    };
    let action = record.action().to_owned();
    let reply = {
        let mut inner = st.inner.lock();
        let queued = inner.queued.get_mut(&action).and_then(VecDeque::pop_front);
        queued.or_else(|| inner.defaults.get(&action).cloned())
    };
    let reply = reply.unwrap_or_else(|| default_reply(&record));
    let _ = st.tx.send(record);
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(c) = reply.set_cookie {
        resp.headers_mut().insert("set-cookie", c.parse().unwrap());
    }
    resp
}

fn default_reply(record: &HookRecord) -> Reply {
    if record.action() == "connect" {
        let cookie = record.header("cookie").unwrap_or("");
        let from_cookie = cookie
            .split(';')
            .find_map(|c| c.trim().strip_prefix("user=").map(str::to_owned));
        let name = from_cookie.unwrap_or_else(|| "anonymous".to_owned());
        return Reply::ok(json!({ "name": name }));
    }
    Reply::ok(json!({}))
}

impl WebApp {
    pub async fn start() -> WebApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = WebAppState {
            inner: Arc::default(),
            tx,
        };
        let app = axum::Router::new()
            .fallback(webapp_handler)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        WebApp {
            addr,
            state,
            rx: tokio::sync::Mutex::new(rx),
        }
    }

    /// The reply for every later call of `action`.
    pub fn set(&self, action: &str, reply: Reply) {
        self.state
            .inner
            .lock()
            .defaults
            .insert(action.to_owned(), reply);
    }

    /// A one-time reply for the next call of `action` (queued after earlier ones).
    pub fn once(&self, action: &str, reply: Reply) {
        self.state
            .inner
            .lock()
            .queued
            .entry(action.to_owned())
            .or_default()
            .push_back(reply);
    }

    /// Channels created through create_channel get these options.
    pub fn channel_options(&self, opts: Value) {
        self.set("create_channel", Reply::ok(opts));
    }

    /// The next webhook call received.
    pub async fn next(&self) -> HookRecord {
        let mut rx = self.rx.lock().await;
        tokio::time::timeout(GUARD, rx.recv())
            .await
            .expect("timed out waiting for a webhook")
            .expect("web app stopped")
    }

    /// The next webhook call, which must have `action`.
    pub async fn expect(&self, action: &str) -> HookRecord {
        let r = self.next().await;
        assert_eq!(r.action(), action, "unexpected webhook {r:?}");
        r
    }

    /// Webhooks received so far and not yet taken.
    pub async fn drain(&self) -> Vec<HookRecord> {
        let mut rx = self.rx.lock().await;
        let mut out = Vec::new();
        while let Ok(r) = rx.try_recv() {
            out.push(r);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The server

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

/// A config for tests: loopback, any port, webhooks to `web`, API token `secret`.
pub fn test_config(web: &WebApp) -> Config {
    Config {
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
            http: reqwest::Client::new(),
        }
    }

    /// A WebSocket client (not yet CONNECTed).
    pub async fn client(&self) -> Client {
        Client::open(&format!("ws://{}/ws", self.addr)).await
    }

    /// A client that sent CONNECT with cookie `user=<name>` and got CONNECTED.
    pub async fn connected(&self, name: &str) -> Client {
        let mut c = self.client().await;
        c.send("CONNECT", json!({"cookie_string": format!("user={name}")}))
            .await;
        let args = c.expect("CONNECTED").await;
        assert_eq!(args["name"], name);
        self.web.expect("connect").await;
        c
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

// ---------------------------------------------------------------------------------------------
// A WebSocket RTJP client

pub struct Client {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: i64,
    buf: String,
    frames: VecDeque<(i64, String, Map<String, Value>)>,
    /// Every raw text received, to check the wire bytes.
    pub raw: Vec<String>,
    last_server_id: i64,
}

impl Client {
    pub async fn open(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Client {
            ws,
            next_id: 1,
            buf: String::new(),
            frames: VecDeque::new(),
            raw: Vec::new(),
            last_server_id: 0,
        }
    }

    /// Sends `[id, name, args]\r\n` with the next id; returns the id.
    pub async fn send(&mut self, name: &str, args: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(&format!("{}\r\n", json!([id, name, args])))
            .await;
        id
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("ws send");
    }

    /// The next frame `(id, name, args)`, checking that server ids count up by one.
    pub async fn recv(&mut self) -> (i64, String, Map<String, Value>) {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return f;
            }
            let msg = tokio::time::timeout(GUARD, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection closed while waiting for a frame")
                .expect("ws error");
            let Message::Text(text) = msg else {
                panic!("expected a text message, got {msg:?}");
            };
            assert!(text.is_ascii(), "server output must be ASCII: {text}");
            self.raw.push(text.to_string());
            self.buf.push_str(&text);
            while let Some(pos) = self.buf.find("\r\n") {
                let line: String = self.buf.drain(..pos + 2).collect();
                let v: Value = serde_json::from_str(&line[..pos]).expect("server frame is JSON");
                let id = v[0].as_i64().expect("frame id");
                assert_eq!(
                    id,
                    self.last_server_id + 1,
                    "server frame ids count up by one"
                );
                self.last_server_id = id;
                let name = v[1].as_str().expect("frame name").to_owned();
                let args = v[2].as_object().expect("frame args").clone();
                self.frames.push_back((id, name, args));
            }
        }
    }

    /// The next frame, which must be `name`; returns its args.
    pub async fn expect(&mut self, name: &str) -> Map<String, Value> {
        let (_, got, args) = self.recv().await;
        assert_eq!(got, name, "expected {name}, got {got} {args:?}");
        args
    }

    /// The next frame must be ERROR with `msg`; returns its `id` arg.
    pub async fn expect_error(&mut self, msg: &str) -> Value {
        let args = self.expect("ERROR").await;
        assert_eq!(args["msg"], msg, "{args:?}");
        assert_eq!(keys(&args), ["id", "msg"]);
        args["id"].clone()
    }

    /// Proves nothing else is queued for this client: sends a frame the server always answers
    /// with an ERROR and checks that this ERROR is the very next frame.
    pub async fn assert_quiet(&mut self) {
        let id = self.send("PING_BARRIER", json!({})).await;
        let (_, name, args) = self.recv().await;
        assert_eq!(name, "ERROR", "unexpected frame {name} {args:?}");
        assert_eq!(args["id"], id, "unexpected ERROR {args:?}");
    }

    /// Waits for the server to close the socket; returns the close frame's code and reason.
    pub async fn expect_close(&mut self) -> Option<(u16, String)> {
        loop {
            let msg = tokio::time::timeout(GUARD, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Drain until the server acknowledges, so the close is complete when this returns.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(GUARD, self.ws.next()).await {}
    }
}

/// Sorted keys of a frame's args.
pub fn keys(args: &Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = args.keys().map(String::as_str).collect();
    k.sort();
    k
}

/// Asserts a `datetime` value has the original's format `YYYY-MM-DDTHH:MM:SS`.
pub fn assert_datetime(v: &Value) {
    let s = v.as_str().expect("datetime is a string");
    assert_eq!(s.len(), 19, "{s}");
    assert!(
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok(),
        "{s}"
    );
}
