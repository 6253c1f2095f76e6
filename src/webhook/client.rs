//! The client that calls the web application: webhook forms and their replies, the log of calls,
//! polling fetches. `http://` goes through `http1`, `https://` through reqwest.

use super::decision::quote;
use super::http1::{Http1, Outgoing, Reply};
use super::signing::{signature, standard_headers, standard_key, SIGNATURE_HEADER};
use super::slots::Slots;
use super::{Decision, Hook, WebhookFormat, WebhookSettings};
use crate::metrics::Outcome;
use crate::net::HostRule;
use parking_lot::RwLock;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, COOKIE, SET_COOKIE};
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// Every webhook request's `User-Agent`.
const USER_AGENT: &str = concat!("hookbox/", env!("CARGO_PKG_VERSION"));
/// How long a kept-alive connection to the web app may stay idle.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// The original's version string, sent in `X-Hookbox-Version` with `--cbsendhookboxversion`.
pub const HOOKBOX_VERSION: &str = "0.3.4a1";

/// A reply body larger than this is refused: the web app is answering with something that is not a
/// hook reply, and we will not buffer it.
const MAX_REPLY_BYTES: usize = 1 << 20;

/// One hook invocation.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub hook: Hook,
    pub form: Vec<(&'static str, String)>,
    /// The browser's cookie string, forwarded verbatim when non-empty.
    pub cookie: String,
    /// The client's address when a live connection is behind the call.
    pub real_ip: Option<String>,
    /// Its `webhook-id` (see `signing`): the same on every retry of the call.
    pub id: String,
}

pub struct WebhookClient {
    /// `http://` webhooks (see `http1`).
    http1: Http1,
    /// `https://` webhooks, and polling fetches.
    http: reqwest::Client,
    /// Hosts that may be called (fixed at startup): no request, and so no secret, cookie or
    /// poll whose answer gets published, goes anywhere else.
    allowed: Vec<HostRule>,
    // Read on every call, written only by `/web/set_config`: a read-mostly lock never held across
    // an await (the URL is built, then the guard dropped).
    settings: RwLock<WebhookSettings>,
    // Bounds the calls in flight so that a slow web app cannot make us open unbounded sockets,
    // and the queue in front of them.
    slots: Slots,
    timeout: Duration,
    /// `--webhook-error-details`: clients see why a call failed (URL, OS error, reply), not
    /// just that it did.
    error_details: bool,
    /// The last calls, oldest first (a bounded ring; one short lock per call).
    calls: parking_lot::Mutex<std::collections::VecDeque<CallRecord>>,
}

/// How the webhook client behaves, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Longest a call may take.
    pub timeout: Duration,
    /// Calls in flight at once.
    pub max_concurrency: usize,
    /// Calls waiting for a slot at once (`--webhook-queue`), and longest a call waits for one
    /// (`--webhook-queue-timeout`).
    pub queue_limit: usize,
    pub queue_timeout: Duration,
    /// Failures are explained to clients in full (for development).
    pub error_details: bool,
}

/// A request body, as sent and as signed.
struct Body {
    bytes: Vec<u8>,
    content_type: &'static str,
}

/// `form` urlencoded, as the original sent every hook.
fn form_body<K: AsRef<str>>(form: &[(K, String)]) -> Body {
    let text = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (k.as_ref(), v.as_str())))
        .finish();
    Body {
        bytes: text.into_bytes(),
        content_type: "application/x-www-form-urlencoded",
    }
}

/// `form` as a JSON object (`--webhook-format json`): the same fields in the same order, with
/// their types: `payload` the JSON value it holds as text, `recipient_exists` a boolean.
fn json_body(form: &[(&str, String)]) -> Body {
    let object: serde_json::Map<String, serde_json::Value> = form
        .iter()
        .map(|(k, v)| {
            let value = match *k {
                "payload" => serde_json::from_str(v).unwrap_or_else(|_| v.clone().into()),
                "recipient_exists" => (v == "True").into(),
                _ => v.clone().into(),
            };
            ((*k).to_owned(), value)
        })
        .collect();
    Body {
        bytes: crate::protocol::to_ascii_string(&serde_json::Value::Object(object)).into_bytes(),
        content_type: "application/json",
    }
}

/// The `secret` form field, as the original sent it: for a secret of its kind, in a form body.
/// A Standard Webhooks secret (`whsec_`) or a JSON body is for an app that checks signatures:
/// the secret itself stays out of the body (where logs and proxies might keep it).
fn legacy_secret(secret: Option<&str>, format: WebhookFormat) -> Option<&str> {
    secret.filter(|s| format == WebhookFormat::Form && matches!(standard_key(s), Ok(None)))
}

/// A POST of `body` to `url` and, when there is a secret, its signatures (see `signing`). `id`
/// is the call's `webhook-id`.
fn signed(url: reqwest::Url, body: Body, secret: Option<&str>, id: &str) -> Outgoing {
    let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static(body.content_type))];
    let mut add = |name: &'static str, value: String| {
        // Hex, base64 and digits: always a valid header value.
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.push((HeaderName::from_static(name), value));
        }
    };
    if let Some(secret) = secret {
        add(SIGNATURE_HEADER, signature(secret, &body.bytes));
        // Validated at startup and by set_config: a bad whsec_ secret never gets here.
        if let Ok(Some(key)) = standard_key(secret) {
            let now = chrono::Utc::now().timestamp();
            for (name, value) in standard_headers(&key, id, now, &body.bytes) {
                add(name, value);
            }
        }
    }
    Outgoing {
        url,
        headers,
        body: body.bytes,
    }
}

impl WebhookClient {
    pub fn new(
        settings: WebhookSettings,
        allowed: Vec<HostRule>,
        limits: ClientLimits,
    ) -> WebhookClient {
        let ClientLimits {
            timeout,
            max_concurrency,
            error_details,
            queue_limit,
            queue_timeout,
        } = limits;
        // https webhooks (`--cbhttps`, an https `--cb-single-url`) use rustls with the ring
        // provider and the system's trusted certificates. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            // No whole-request timeout here: `send` bounds each call itself, so that a slow web
            // app always gets the same "no reply within" message naming the limit.
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(IDLE_FOR)
            .user_agent(USER_AGENT)
            // Webhooks go straight to the web app, whatever HTTP_PROXY says, like `http1`.
            .no_proxy()
            .build()
            .expect("a plain HTTP client always builds");
        WebhookClient {
            // As many kept-alive connections as there are calls at once.
            http1: Http1::new(max_concurrency, IDLE_FOR, USER_AGENT),
            http,
            allowed,
            settings: RwLock::new(settings),
            slots: Slots::new(max_concurrency, queue_limit, queue_timeout),
            timeout,
            error_details,
            calls: parking_lot::Mutex::new(std::collections::VecDeque::with_capacity(CALL_LOG)),
        }
    }

    /// The last webhook calls, newest first.
    pub fn recent_calls(&self) -> Vec<CallRecord> {
        self.calls.lock().iter().rev().cloned().collect()
    }

    /// Checks, once at startup, that the web app's host takes connections, and warns if not:
    /// every webhook would fail until it does.
    pub async fn probe(&self) {
        let url = self.settings.read().url(Hook::Connect);
        let Some(addr) = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        else {
            return;
        };
        let connect = tokio::net::TcpStream::connect(&addr);
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                "the web application at {addr} does not answer ({e}): every webhook fails until it does"
            ),
            Err(_) => tracing::warn!(
                "the web application at {addr} does not answer (no connection within {:.1}s): every webhook fails until it does",
                self.timeout.as_secs_f64()
            ),
        }
    }

    /// How long one call may take (`--webhook-timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn settings(&self) -> WebhookSettings {
        self.settings.read().clone()
    }

    pub fn update_settings(&self, f: impl FnOnce(&mut WebhookSettings)) {
        f(&mut self.settings.write());
    }

    /// Whether `url` is an http(s) URL on an allowed host.
    pub fn allows(&self, url: &str) -> bool {
        self.allowed_url(url).is_some()
    }

    /// `url` parsed, if it is an http(s) URL on an allowed host. A call parses its URL once,
    /// here, and hands the parsed one to the HTTP client.
    fn allowed_url(&self, url: &str) -> Option<reqwest::Url> {
        reqwest::Url::parse(url).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https") && self.allowed.iter().any(|r| r.allows(u))
        })
    }

    fn refuse(url: &str) -> String {
        format!("failure: {url} is not on an allowed host (see --webhook-allow-hosts)")
    }

    /// Calls a webhook. Never fails: transport errors and bad replies become denials.
    pub async fn call(&self, call: HookCall) -> Decision {
        let (url, secret, send_version, format) = {
            let s = self.settings.read();
            (
                s.url(call.hook),
                s.webhook_secret.clone(),
                s.cbsendhookboxversion,
                s.format,
            )
        };
        let Some(target) = self.allowed_url(&url) else {
            return Decision::failure(Self::refuse(&url));
        };
        let mut form = Vec::with_capacity(call.form.len() + 2);
        form.push(("action", call.hook.action().to_owned()));
        form.extend(call.form);
        if let Some(secret) = legacy_secret(secret.as_deref(), format) {
            form.push(("secret", secret.to_owned()));
        }
        let body = match format {
            WebhookFormat::Form => form_body(&form),
            WebhookFormat::Json => json_body(&form),
        };
        let build = move || {
            let mut req = signed(target, body, secret.as_deref(), &call.id);
            if !call.cookie.is_empty() {
                if let Ok(v) = HeaderValue::from_bytes(call.cookie.as_bytes()) {
                    req.headers.push((COOKIE, v));
                }
            }
            if let Some(ip) = call.real_ip.and_then(|ip| HeaderValue::try_from(ip).ok()) {
                req.headers.push((HeaderName::from_static("x-real-ip"), ip));
            }
            if send_version {
                req.headers.push((
                    HeaderName::from_static("x-hookbox-version"),
                    HeaderValue::from_static(HOOKBOX_VERSION),
                ));
            }
            req
        };
        self.send(call.hook.action(), url, build, form).await
    }

    /// A polling fetch in `persistent`/`once` mode: a webhook-style POST without `action`.
    pub async fn poll_post(&self, url: &str, form: Vec<(String, String)>) -> Decision {
        let Some(target) = self.allowed_url(url) else {
            return Decision::failure(Self::refuse(url));
        };
        let mut form = form;
        let secret = self.settings.read().webhook_secret.clone();
        if let Some(secret) = legacy_secret(secret.as_deref(), WebhookFormat::Form) {
            form.push(("secret".to_owned(), secret.to_owned()));
        }
        let id = super::signing::message_id();
        let body = form_body(&form);
        let build = move || signed(target, body, secret.as_deref(), &id);
        self.send("poll", url.to_owned(), build, form).await
    }

    /// A polling fetch in `simple` mode: `GET url`, body returned as text.
    pub async fn poll_get(&self, url: &str) -> Result<String, String> {
        if !self.allows(url) {
            return Err(Self::refuse(url));
        }
        let _permit = self
            .slots
            .take()
            .await
            .map_err(|b| format!("too busy: try again in {} s", b.retry_after_secs))?;
        let resp = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status();
        let body = read_capped(resp).await?;
        if status != reqwest::StatusCode::OK {
            return Err(format!("status {}", status.as_u16()));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Makes one call: waits for a slot, then builds the request (so that its signature's
    /// timestamp is the send time, not the time it started waiting) and sends it. `form`, the
    /// body's fields, moves into the console's log of calls.
    async fn send<K: Into<Cow<'static, str>>>(
        &self,
        action: &'static str,
        url: String,
        build: impl FnOnce() -> Outgoing,
        form: Vec<(K, String)>,
    ) -> Decision {
        let started = Instant::now();
        let mut record = CallRecord {
            time: chrono::Utc::now().timestamp_millis(),
            hook: action,
            url,
            status: None,
            ms: 0.0,
            outcome: "",
            // Secrets are not kept (cookies travel in a header, never stored here).
            form: form
                .into_iter()
                .map(|(k, v)| {
                    let k = k.into();
                    let v = if k == "secret" {
                        "(redacted)".to_owned()
                    } else {
                        v
                    };
                    (k, v)
                })
                .collect(),
            response: String::new(),
        };
        // Waiting for a permit is queueing, not the web app being slow: the timeout starts once
        // the call is actually made. The wait itself is bounded too.
        let _permit = match self.slots.take().await {
            Ok(p) => p,
            Err(busy) => {
                let secs = busy.retry_after_secs;
                let text =
                    format!("Too busy to ask the web application now: try again in {secs} s");
                let mut failure = Failure::new(Outcome::Failed, text.clone(), text);
                failure.retry_after = Some(secs);
                return self.finish(record, started, Err(failure));
            }
        };
        let holding = Instant::now();
        let req = build();
        let outcome = tokio::time::timeout(self.timeout, async {
            let reply = match req.url.scheme() {
                "http" => self.http1.post(&req, MAX_REPLY_BYTES).await?,
                _ => self.post_tls(req).await?,
            };
            Ok::<_, String>((reply.status, reply.set_cookie, reply.body))
        })
        .await;
        if let Ok(Ok((status, _, body))) = &outcome {
            record.status = Some(*status);
            record.response = quote(body);
        }
        let result = match outcome {
            Err(_) => {
                let within = format!(
                    "failure: no reply within {:.1}s",
                    self.timeout.as_secs_f64()
                );
                Err(Failure::new(
                    Outcome::Timeout,
                    within.clone(),
                    format!("{within} from {}", record.url),
                ))
            }
            Ok(Err(e)) => Err(Failure::new(
                Outcome::Failed,
                "failure: the web application could not be reached".to_owned(),
                format!("failure: {e}"),
            )
            .retryable()),
            Ok(Ok((200, set_cookie, body))) => Decision::parse(&body, set_cookie)
                .map_err(|bad| Failure::new(Outcome::Failed, bad.public, bad.detail)),
            Ok(Ok((status, _, body))) if status >= 400 => {
                let body = quote(&body);
                let text = if body.is_empty() {
                    format!("HTTP {status}")
                } else {
                    body
                };
                let failure = Failure::new(
                    Outcome::Failed,
                    format!("failure: HTTP {status}"),
                    format!("failure: {text}"),
                );
                Err(if status >= 500 {
                    failure.retryable()
                } else {
                    failure
                })
            }
            Ok(Ok((status, _, body))) => {
                let path = reqwest::Url::parse(&record.url)
                    .map(|u| u.path().to_owned())
                    .unwrap_or_default();
                let public = format!("Invalid callback response, status={status}");
                Err(Failure::new(
                    Outcome::Failed,
                    public.clone(),
                    format!("{public} ({path}), body: {}", quote(&body)),
                ))
            }
        };
        self.slots.record(holding.elapsed());
        self.finish(record, started, result)
    }

    /// Counts and logs a call, and turns a failure into the denial the client sees: with the
    /// details only under `--webhook-error-details`, since they name internal hosts and errors.
    /// Failures are WARNINGs (in the error log too); answers are DEBUG lines.
    fn finish(
        &self,
        mut record: CallRecord,
        started: Instant,
        result: Result<Decision, Failure>,
    ) -> Decision {
        let took = started.elapsed();
        let (action, url) = (record.hook, record.url.as_str());
        // Tenths of a millisecond: a web app on the same machine answers in well under one.
        record.ms = (took.as_secs_f64() * 10_000.0).round() / 10.0;
        let outcome = match &result {
            Ok(d) if d.success => Outcome::Ok,
            Ok(_) => Outcome::Denied,
            Err(f) => f.outcome,
        };
        record.outcome = outcome.name();
        crate::metrics::webhook_call(action, outcome, took);
        match &result {
            Ok(decision) => tracing::debug!(
                "webhook {action} {url} ==> {} ({} ms)",
                if decision.success { "ok" } else { "denied" },
                took.as_millis()
            ),
            Err(f) => tracing::warn!(
                "webhook {action} {url} failed ({} ms): {}",
                took.as_millis(),
                f.detail
            ),
        }
        // The record moves into the log; the one it pushes out is freed after the lock.
        let oldest = {
            let mut calls = self.calls.lock();
            let oldest = (calls.len() == CALL_LOG).then(|| calls.pop_front());
            calls.push_back(record);
            oldest
        };
        drop(oldest);
        match result {
            Ok(decision) => decision,
            Err(f) => {
                let mut decision = Decision::failure(if self.error_details {
                    f.detail
                } else {
                    f.public
                });
                decision.retryable = f.retryable;
                decision.retry_after = f.retry_after;
                decision
            }
        }
    }
}

/// Webhook calls kept for the admin console's log.
const CALL_LOG: usize = 100;

/// One webhook call, as the admin console's log shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallRecord {
    /// When it was made (Unix milliseconds).
    pub time: i64,
    pub hook: &'static str,
    pub url: String,
    /// The reply's HTTP status, if one came.
    pub status: Option<u16>,
    /// How long the call took, in milliseconds (to a tenth).
    pub ms: f64,
    pub outcome: &'static str,
    /// The form sent, `secret` redacted.
    pub form: Vec<(Cow<'static, str>, String)>,
    /// The reply's start (at most 1000 characters).
    pub response: String,
}

/// A call that got no decision: the text clients see by default, and the full one.
struct Failure {
    outcome: Outcome,
    public: String,
    detail: String,
    /// The call surely did not reach the web app's logic (see `Decision::retryable`).
    retryable: bool,
    /// It was refused for want of a slot: try again in this many seconds.
    retry_after: Option<u32>,
}

impl Failure {
    fn new(outcome: Outcome, public: String, detail: String) -> Failure {
        Failure {
            outcome,
            public,
            detail,
            retryable: false,
            retry_after: None,
        }
    }

    fn retryable(mut self) -> Failure {
        self.retryable = true;
        self
    }
}

impl WebhookClient {
    /// An `https://` webhook, through reqwest (TLS, certificates).
    async fn post_tls(&self, req: Outgoing) -> Result<Reply, String> {
        let mut builder = self.http.post(req.url).body(req.body);
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        let resp = builder.send().await.map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let set_cookie = resp
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_capped(resp).await?;
        Ok(Reply {
            status,
            set_cookie,
            body,
        })
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(format!("reply larger than {MAX_REPLY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its causes: "error sending request …: tcp connect error: Connection refused".
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}
