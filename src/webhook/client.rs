//! The pooled HTTP client that calls the web application.

use super::{Decision, Hook, WebhookSettings};
use crate::config::HostRule;
use parking_lot::RwLock;
use reqwest::header::{HeaderValue, COOKIE, SET_COOKIE};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The original's version string, sent in `X-Hookbox-Version` with `--cbsendhookboxversion`.
pub const HOOKBOX_VERSION: &str = "0.3.4a1";

/// A reply body larger than this is refused: the web app is answering with something that is not a
/// hook reply, and we will not buffer it.
const MAX_REPLY_BYTES: usize = 1 << 20;

/// How much of a bad reply is quoted back in error messages.
const QUOTE_BYTES: usize = 1000;

/// One hook invocation.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub hook: Hook,
    pub form: Vec<(&'static str, String)>,
    /// The browser's cookie string, forwarded verbatim when non-empty.
    pub cookie: String,
    /// The client's address when a live connection is behind the call.
    pub real_ip: Option<String>,
}

pub struct WebhookClient {
    http: reqwest::Client,
    /// Hosts that may be called (fixed at startup): no request, and so no secret, cookie or
    /// poll whose answer gets published, goes anywhere else.
    allowed: Vec<HostRule>,
    // Read on every call, written only by `/web/set_config`: a read-mostly lock never held across
    // an await (the URL is built, then the guard dropped).
    settings: RwLock<WebhookSettings>,
    // Bounds the calls in flight so that a slow web app cannot make us open unbounded sockets.
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl WebhookClient {
    pub fn new(
        settings: WebhookSettings,
        allowed: Vec<HostRule>,
        timeout: Duration,
        max_concurrency: usize,
    ) -> WebhookClient {
        // https webhooks (`--cbhttps`, an https `--cb-single-url`) use rustls with the ring
        // provider and the system's trusted certificates. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            // No whole-request timeout here: `send` bounds each call itself, so that a slow web
            // app always gets the same "no reply within" message naming the limit.
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("hookbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a plain HTTP client always builds");
        WebhookClient {
            http,
            allowed,
            settings: RwLock::new(settings),
            permits: Arc::new(Semaphore::new(max_concurrency)),
            timeout,
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
        reqwest::Url::parse(url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && self.allowed.iter().any(|r| r.allows(&u))
        })
    }

    fn refuse(url: &str) -> String {
        format!("failure: {url} is not on an allowed host (see --webhook-allow-hosts)")
    }

    /// Calls a webhook. Never fails: transport errors and bad replies become denials.
    pub async fn call(&self, call: HookCall) -> Decision {
        let (url, secret, send_version) = {
            let s = self.settings.read();
            (
                s.url(call.hook),
                s.webhook_secret.clone(),
                s.cbsendhookboxversion,
            )
        };
        if !self.allows(&url) {
            return Decision::failure(Self::refuse(&url));
        }
        let mut form = Vec::with_capacity(call.form.len() + 2);
        form.push(("action", call.hook.action().to_owned()));
        form.extend(call.form);
        if let Some(secret) = secret {
            form.push(("secret", secret));
        }
        let mut req = self.http.post(&url).form(&form);
        if !call.cookie.is_empty() {
            if let Ok(v) = HeaderValue::from_bytes(call.cookie.as_bytes()) {
                req = req.header(COOKIE, v);
            }
        }
        if let Some(ip) = call.real_ip {
            req = req.header("X-Real-IP", ip);
        }
        if send_version {
            req = req.header("X-Hookbox-Version", HOOKBOX_VERSION);
        }
        self.send(call.hook.action(), &url, req).await
    }

    /// A polling fetch in `persistent`/`once` mode: a webhook-style POST without `action`.
    pub async fn poll_post(&self, url: &str, form: Vec<(String, String)>) -> Decision {
        if !self.allows(url) {
            return Decision::failure(Self::refuse(url));
        }
        let mut form = form;
        if let Some(secret) = self.settings.read().webhook_secret.clone() {
            form.push(("secret".to_owned(), secret));
        }
        let req = self.http.post(url).form(&form);
        self.send("poll", url, req).await
    }

    /// A polling fetch in `simple` mode: `GET url`, body returned as text.
    pub async fn poll_get(&self, url: &str) -> Result<String, String> {
        if !self.allows(url) {
            return Err(Self::refuse(url));
        }
        let _permit = self.permit().await?;
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

    async fn send(&self, action: &str, url: &str, req: reqwest::RequestBuilder) -> Decision {
        let started = Instant::now();
        // Waiting for a permit is queueing, not the web app being slow: the timeout starts once
        // the call is actually made. The wait itself is bounded too.
        let _permit = match self.permit().await {
            Ok(p) => p,
            Err(e) => return Decision::failure(e),
        };
        let outcome = tokio::time::timeout(self.timeout, async {
            let resp = req.send().await.map_err(|e| error_chain(&e))?;
            let status = resp.status().as_u16();
            let set_cookie = resp
                .headers()
                .get(SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_capped(resp).await?;
            Ok::<_, String>((status, set_cookie, body))
        })
        .await;
        let decision = match outcome {
            Err(_) => Decision::failure(format!(
                "failure: no reply within {:.1}s from {url}",
                self.timeout.as_secs_f64()
            )),
            Ok(Err(e)) => Decision::failure(format!("failure: {e}")),
            Ok(Ok((200, set_cookie, body))) => Decision::parse(&body, set_cookie),
            Ok(Ok((status, _, body))) if status >= 400 => {
                let body = quote(&body);
                let text = if body.is_empty() {
                    format!("HTTP {status}")
                } else {
                    body
                };
                Decision::failure(format!("failure: {text}"))
            }
            Ok(Ok((status, _, body))) => {
                let path = reqwest::Url::parse(url)
                    .map(|u| u.path().to_owned())
                    .unwrap_or_default();
                Decision::failure(format!(
                    "Invalid callback response, status={status} ({path}), body: {}",
                    quote(&body)
                ))
            }
        };
        tracing::info!(
            "webhook {action} {url} ==> {} ({} ms)",
            if decision.success { "ok" } else { "denied" },
            started.elapsed().as_millis()
        );
        decision
    }
}

impl WebhookClient {
    /// A slot among the calls in flight, waiting at most the webhook timeout for one: a flood of
    /// actions behind a slow web app is refused rather than queued without end.
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, String> {
        match tokio::time::timeout(self.timeout, self.permits.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err("failure: webhook client closed".to_owned()),
            Err(_) => Err(format!(
                "failure: too many webhook calls in flight (no slot within {:.1}s)",
                self.timeout.as_secs_f64()
            )),
        }
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

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(QUOTE_BYTES) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
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
