//! The in-test web application: records every webhook (and poll) it receives and answers scripted
//! replies.

use super::GUARD;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One webhook call as the web app received it.
#[derive(Debug, Clone)]
pub struct HookRecord {
    pub path: String,
    pub method: String,
    pub headers: HeaderMap,
    /// Form fields in wire order.
    pub form: Vec<(String, String)>,
    /// The body as received.
    pub body: Bytes,
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
    /// Asserts the form's exact key set (in any order).
    pub fn assert_keys(&self, expected: &[&str]) {
        let mut want: Vec<&str> = expected.to_vec();
        want.sort_unstable();
        assert_eq!(self.keys(), want, "form of {self:?}");
    }
    /// Asserts a urlencoded POST, as every hook is.
    pub fn assert_post(&self) {
        assert_eq!(self.method, "POST", "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/x-www-form-urlencoded"),
            "{self:?}"
        );
    }
}

/// A scripted reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub set_cookie: Option<String>,
    pub delay: Option<Duration>,
    /// Held until the test opens the gate: makes an action wait inside its webhook, so that
    /// what other connections do meanwhile happens at a known point.
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Further response headers (e.g. `Location` on a redirect).
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(v: Value) -> Reply {
        Reply {
            status: 200,
            body: v.to_string(),
            set_cookie: None,
            delay: None,
            gate: None,
            headers: Vec::new(),
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
            gate: None,
            headers: Vec::new(),
        }
    }
    pub fn with_cookie(mut self, cookie: &str) -> Reply {
        self.set_cookie = Some(cookie.to_owned());
        self
    }
    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    /// Waits for `gate` to get a permit before answering.
    pub fn gated(mut self, gate: &Arc<tokio::sync::Semaphore>) -> Reply {
        self.gate = Some(gate.clone());
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
    /// Options added to the default connect reply (which names the `user=` cookie).
    connect_extra: Map<String, Value>,
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
    // A JSON body (`--webhook-format json`) is recorded as its fields too: text values as
    // they are, others as their JSON text.
    let is_json = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let form: Vec<(String, String)> = if is_json {
        serde_json::from_slice::<Map<String, Value>>(&body)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect()
    } else {
        url::form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    let record = HookRecord {
        path: uri.to_string(),
        method: method.to_string(),
        headers: headers.clone(),
        form,
        body: body.clone(),
    };
    let action = record.action().to_owned();
    let reply = {
        let mut inner = st.inner.lock();
        let queued = inner.queued.get_mut(&action).and_then(VecDeque::pop_front);
        queued.or_else(|| inner.defaults.get(&action).cloned())
    };
    let reply = reply.unwrap_or_else(|| default_reply(&record, &st.inner.lock().connect_extra));
    let _ = st.tx.send(record);
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    if let Some(gate) = &reply.gate {
        gate.acquire().await.expect("gate open").forget();
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(c) = reply.set_cookie {
        resp.headers_mut().insert("set-cookie", c.parse().unwrap());
    }
    for (name, value) in reply.headers {
        let name: axum::http::HeaderName = name.parse().unwrap();
        resp.headers_mut().append(name, value.parse().unwrap());
    }
    resp
}

fn default_reply(record: &HookRecord, connect_extra: &Map<String, Value>) -> Reply {
    if record.action() == "connect" {
        let cookie = record.header("cookie").unwrap_or("");
        let from_cookie = cookie
            .split(';')
            .find_map(|c| c.trim().strip_prefix("user=").map(str::to_owned));
        let name = from_cookie.unwrap_or_else(|| "anonymous".to_owned());
        let mut reply = connect_extra.clone();
        reply.insert("name".to_owned(), json!(name));
        return Reply::ok(Value::Object(reply));
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

    /// The default connect reply (named after the `user=` cookie) also carries `extra`.
    pub fn connect_options(&self, extra: Value) {
        self.state.inner.lock().connect_extra = extra.as_object().cloned().unwrap_or_default();
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

    /// The actions of the webhooks received so far and not yet taken, in order.
    pub async fn actions(&self) -> Vec<String> {
        self.drain()
            .await
            .iter()
            .map(|h| h.action().to_owned())
            .collect()
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
