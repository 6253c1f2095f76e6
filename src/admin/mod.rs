//! The admin console at `/admin/`: a single-page app embedded in the binary (`static/admin/`)
//! over a small JSON API at `/admin/api/…` and one WebSocket for live updates.
//!
//! Everything but the page itself and the login needs a session (see [`sessions`]); with no
//! admin password (`-a`) the console is off and says how to turn it on. Requests that change
//! anything must carry the `X-Hookbox-Admin` header, which a page on another origin cannot send
//! without a CORS preflight that hookbox never grants, and the session cookie is
//! `SameSite=Strict`: no cross-site request can act as the operator.

mod live;
pub mod sessions;
mod stats;
mod views;

use crate::api::ApiState;
use crate::net::IpRange;
use crate::transport::{client_address, PeerAddr};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sessions::{LoginError, Sessions};
use std::sync::Arc;
use std::time::Instant;

const PAGE: &str = include_str!("../../static/admin/index.html");
const SCRIPT: &str = include_str!("../../static/admin/admin.js");
const STYLE: &str = include_str!("../../static/admin/admin.css");
const COOKIE: &str = "hookbox_admin";
/// The header every admin request that changes something must carry.
const CSRF_HEADER: &str = "x-hookbox-admin";

/// What the console's handlers share.
pub struct AdminState {
    /// The hub, and the admin password (`set_config` may change it).
    pub api: Arc<ApiState>,
    pub sessions: Sessions,
    stats: stats::Stats,
    trusted_proxies: Vec<IpRange>,
    /// hookbox itself serves TLS (`--tls-cert`): the session cookie is `Secure`.
    tls: bool,
    /// The engine, as the startup line describes it.
    engine: String,
    /// Where this node listens.
    address: String,
    started: Instant,
    started_ms: i64,
}

impl AdminState {
    pub fn new(
        api: Arc<ApiState>,
        trusted_proxies: Vec<IpRange>,
        tls: bool,
        engine: String,
        address: String,
    ) -> Arc<AdminState> {
        Arc::new(AdminState {
            api,
            sessions: Sessions::default(),
            stats: stats::Stats::default(),
            trusted_proxies,
            tls,
            engine,
            address,
            started: Instant::now(),
            started_ms: chrono::Utc::now().timestamp_millis(),
        })
    }

    fn password(&self) -> Option<String> {
        self.api.admin_password.read().clone()
    }

    /// Samples the overview's rates once a second, for as long as the server runs.
    pub async fn sample_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            self.stats.sample();
        }
    }
}

/// The console's routes, under `/admin`.
pub fn router(state: Arc<AdminState>) -> Router {
    let api = Router::new()
        .route("/overview", get(views::overview))
        .route("/channels", get(views::channels))
        .route("/channels/{name}", get(views::channel))
        .route("/channels/{name}/options", post(views::set_options))
        .route("/channels/{name}/publish", post(views::publish))
        .route("/channels/{name}/remove", post(views::remove))
        .route("/users", get(views::users))
        .route("/users/{name}", get(views::user))
        .route("/users/{name}/disconnect", post(views::disconnect))
        .route("/webhooks", get(views::webhooks))
        .route("/log", get(views::log))
        .route("/session", get(views::session))
        .route("/logout", post(logout))
        .route("/live", get(live::upgrade))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ))
        .route("/login", post(login));
    Router::new()
        .route(
            "/admin",
            get(|| async {
                (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, "/admin/")],
                )
            }),
        )
        .route("/admin/", get(page))
        .route("/admin/admin.js", get(script))
        .route("/admin/admin.css", get(style))
        .nest("/admin/api", api)
        .with_state(state)
}

/// The console may not be framed by another page (clickjacking its buttons).
const NO_FRAMING: [(header::HeaderName, &str); 2] = [
    (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// The page, or a page saying how to turn the console on.
async fn page(State(admin): State<Arc<AdminState>>) -> Response {
    if admin.password().is_none() {
        let body = "<!DOCTYPE html><meta charset=\"utf-8\"><title>hookbox admin</title>\
            <h1>The admin console is disabled</h1>\
            <p>Start hookbox with an admin password to turn it on: <code>-a PASSWORD</code> \
            (<code>admin-password</code> in the config file, <code>HOOKBOX_ADMIN_PASSWORD</code> \
            in the environment).</p>";
        return (StatusCode::FORBIDDEN, NO_FRAMING, Html(body)).into_response();
    }
    (
        NO_FRAMING,
        [(header::CACHE_CONTROL, "no-store")],
        Html(PAGE),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// An error answer: `{"error": …}` with `status`.
fn refuse(status: StatusCode, error: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": error.to_string()}))).into_response()
}

/// The session token in the request's cookie, if any.
fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
}

/// Lets a request through only with a live session, and a request that changes something only
/// with the `X-Hookbox-Admin` header.
async fn require_session(
    State(admin): State<Arc<AdminState>>,
    req: Request,
    next: Next,
) -> Response {
    let valid =
        token(req.headers()).is_some_and(|t| admin.sessions.check(admin.password().as_deref(), &t));
    if !valid {
        return refuse(StatusCode::UNAUTHORIZED, "not logged in");
    }
    if req.method() != axum::http::Method::GET && !req.headers().contains_key(CSRF_HEADER) {
        return refuse(StatusCode::FORBIDDEN, "missing the X-Hookbox-Admin header");
    }
    next.run(req).await
}

#[derive(serde::Deserialize)]
struct Login {
    password: String,
}

async fn login(
    State(admin): State<Arc<AdminState>>,
    ConnectInfo(PeerAddr(peer, _)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !headers.contains_key(CSRF_HEADER) {
        return refuse(StatusCode::FORBIDDEN, "missing the X-Hookbox-Admin header");
    }
    let Ok(Login { password }) = serde_json::from_slice(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"password\": …}");
    };
    let addr = client_address(&headers, peer, &admin.trusted_proxies);
    match admin
        .sessions
        .login(admin.password().as_deref(), &password, addr)
    {
        Ok(token) => {
            // Over TLS: hookbox's own, or a trusted proxy's that says so.
            let proxied_https = admin.trusted_proxies.iter().any(|r| r.contains(peer.ip()))
                && headers
                    .get("x-forwarded-proto")
                    .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
            let secure = admin.tls || proxied_https;
            let cookie = format!(
                "{COOKIE}={token}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
                sessions::LIFETIME.as_secs(),
                if secure { "; Secure" } else { "" }
            );
            tracing::info!("admin login from {addr}");
            ([(header::SET_COOKIE, cookie)], Json(json!({"ok": true}))).into_response()
        }
        Err(e @ LoginError::Throttled(wait)) => {
            let mut resp = refuse(StatusCode::TOO_MANY_REQUESTS, &e);
            if let Ok(v) = wait.as_secs().max(1).to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(e @ LoginError::WrongPassword) => {
            tracing::warn!("admin login with a wrong password from {addr}");
            refuse(StatusCode::UNAUTHORIZED, e)
        }
        Err(e @ LoginError::Disabled) => refuse(StatusCode::FORBIDDEN, e),
    }
}

async fn logout(State(admin): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if let Some(t) = token(&headers) {
        admin.sessions.logout(&t);
    }
    let clear = format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Json(json!({"ok": true}))).into_response()
}
