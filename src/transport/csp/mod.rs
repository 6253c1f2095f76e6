//! The Comet Session Protocol at `/csp` (§3.2): what the original `hookbox.js` falls back to
//! when WebSocket is unavailable. Plain HTTP requests: `handshake` creates a session, `comet`
//! long-polls for server packets, `send` delivers client packets, `close` ends the session.
//!
//! Every response carries `Access-Control-Allow-Origin` (pages live on other origins: `*`, or the
//! request's own `Origin` with `Access-Control-Allow-Credentials: true`, so that a page's
//! requests may carry its cookies) and a body that is a JavaScript expression, because the
//! client `eval`s it.

// Public for the fuzz targets (fuzz/targets.rs), which drive its decoding on its own.
pub mod packets;
mod session;

pub use session::{Limits, Registry};

use super::{client_address, PeerAddr, Shared};
use crate::engine::{RelayReply, RelayRequest, Relayed};
use crate::outbox::CloseReason;
use crate::protocol::to_ascii_string;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The request form: the query string, with a POST body as `d`.
struct Form(HashMap<String, String>);

impl Form {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

fn respond(
    status: StatusCode,
    reason: Option<&'static str>,
    content_type: &str,
    body: impl Into<Body>,
) -> Response {
    let mut resp = (status, body.into()).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    if let Some(reason) = reason {
        resp.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    }
    resp
}

/// An error answer: a JS string literal, so that `eval` of the body yields the message.
fn fail(status: StatusCode, reason: Option<&'static str>, msg: &str) -> Response {
    respond(
        status,
        reason,
        "text/html",
        format!("'{}'", msg.replace('\\', "\\\\").replace('\'', "\\'")),
    )
}

fn session_not_found() -> Response {
    fail(
        StatusCode::NOT_FOUND,
        Some("Session not found"),
        "Session not found",
    )
}

/// `/csp/{*endpoint}`. A request from a page (with an `Origin`) may carry the browser's cookies
/// (`hookbox.js` asks for it: `withCredentials`), so the answer names that origin and allows
/// credentials; whether those cookies reach the web app is `Limits::forwarded_cookie`'s
/// decision, made at the handshake. The session's answers concern that session only.
pub async fn handle(
    state: State<Arc<Shared>>,
    peer: ConnectInfo<PeerAddr>,
    endpoint: Path<String>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // A `null` origin (a sandboxed page, a file) gets `*`: it has no origin to name.
    let origin = headers
        .get(header::ORIGIN)
        .filter(|o| o.as_bytes() != b"null")
        .cloned();
    let mut resp = answer(state, peer, endpoint, method, query, headers, body).await;
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

async fn answer(
    State(app): State<Arc<Shared>>,
    ConnectInfo(PeerAddr(peer, _)): ConnectInfo<PeerAddr>,
    Path(endpoint): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method == Method::OPTIONS {
        let mut resp = respond(StatusCode::OK, None, "text/plain", String::new());
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("*"),
        );
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        return resp;
    }
    if !app.limits.origin_allowed(&headers) {
        return fail(StatusCode::FORBIDDEN, None, "Origin not allowed");
    }
    // `reflect` (echo `d` back) is not served: no client uses it, and an echo on hookbox's
    // origin is a script gadget.
    if !matches!(endpoint.as_str(), "handshake" | "comet" | "send" | "close") {
        return respond(StatusCode::NOT_FOUND, None, "text/html", String::new());
    }
    let mut form = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        form.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    if method == Method::POST {
        // A packet batch is at most a few frames; the limit leaves room for base64 and JSON.
        let limit = app.limits.max_message * 2 + 1024;
        match axum::body::to_bytes(body, limit).await {
            Ok(bytes) if !bytes.is_empty() => {
                let Ok(text) = String::from_utf8(bytes.to_vec()) else {
                    return fail(StatusCode::BAD_REQUEST, None, "Request body is not UTF-8");
                };
                form.insert("d".to_owned(), text);
            }
            Ok(_) => {}
            Err(_) => {
                return fail(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    "Request body too large",
                )
            }
        }
    }
    let form = Form(form);
    if endpoint == "handshake" {
        let remote = client_address(&headers, peer, &app.limits.trusted_proxies);
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        tracing::info!(target: "access", "Incoming CSP connection\t{remote}\t{}", crate::log::field(host));
        let cookie = app.limits.forwarded_cookie(&headers);
        let session = match app.csp.create(app.hub.clone(), remote, cookie) {
            Ok(s) => s,
            Err(refused) => {
                return fail(StatusCode::SERVICE_UNAVAILABLE, None, &refused.to_string())
            }
        };
        let request = session.begin_request(|k| form.get(k));
        let vars = session.vars();
        drop(request);
        let body = vars.request_body(&to_ascii_string(&json!({"session": &*session.key})));
        return respond(StatusCode::OK, None, vars.ct, body);
    }
    on_session(&app, &endpoint, form, true).await
}

/// A request for an existing session (`comet`, `send`, `close`). With several nodes, one for a
/// session this node does not have goes to the node its key names (`may_relay`: not for a
/// request that was itself relayed here), through the engine.
async fn on_session(app: &Shared, endpoint: &str, form: Form, may_relay: bool) -> Response {
    let key = form.get("s").unwrap_or_default();
    let Some(session) = app.csp.get(&key) else {
        let engine = app.hub.engine();
        return match key.split_once('-') {
            // Only a node id as this server makes them (16 hex digits) is asked for.
            Some((node, _))
                if may_relay
                    && node.len() == 16
                    && node.bytes().all(|b| b.is_ascii_hexdigit())
                    && Some(node) != engine.node_id() =>
            {
                relay(app, node, endpoint, form).await
            }
            _ => session_not_found(),
        };
    };
    let _request = session.begin_request(|k| form.get(k));
    match endpoint {
        "comet" => {
            let reply = session.comet(app.limits.csp_poll_timeout).await;
            respond(StatusCode::OK, None, session.vars().ct, reply.into_body())
        }
        "send" => match form.get("d") {
            None => fail(StatusCode::BAD_REQUEST, None, "Missing packet data (d)"),
            Some(d) => match session.deliver(&d).await {
                Ok(()) => {
                    let vars = session.vars();
                    respond(StatusCode::OK, None, vars.ct, vars.request_body("\"OK\""))
                }
                Err(e) => fail(StatusCode::BAD_REQUEST, None, &e.to_string()),
            },
        },
        _ => {
            session.close(CloseReason::Closed);
            let vars = session.vars();
            respond(StatusCode::OK, None, vars.ct, vars.request_body("\"OK\""))
        }
    }
}

/// How much longer than a comet's longest wait a relayed request may take (two hops through
/// Redis): short enough that the answer comes before `hookbox.js` gives up on the request (10 s
/// after the longest comet wait).
const RELAY_MARGIN: Duration = Duration::from_secs(5);

/// Relays a session's request to `node`, which has the session; its answer is this request's.
async fn relay(app: &Shared, node: &str, endpoint: &str, form: Form) -> Response {
    let req = RelayRequest {
        endpoint: endpoint.to_owned(),
        form: form.0.into_iter().collect(),
    };
    let wait = app.limits.csp_poll_timeout + RELAY_MARGIN;
    match app.hub.engine().relay(node, req, wait).await {
        Ok(Relayed::Reply(reply)) => from_reply(reply),
        // The node is gone, and its sessions with it: the client starts a new one.
        Ok(Relayed::Gone) => session_not_found(),
        // Not a 404, which ends the session: the client tries again.
        Ok(Relayed::Busy) => fail(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "The session's node is busy",
        ),
        Ok(Relayed::NoAnswer) => fail(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "The session's node did not answer in time",
        ),
        Err(e) => fail(StatusCode::SERVICE_UNAVAILABLE, None, &e.to_string()),
    }
}

/// Runs a request another node relayed to this one (the app registers this with the engine).
pub async fn answer_relayed(app: Arc<Shared>, req: RelayRequest) -> RelayReply {
    let resp = if matches!(req.endpoint.as_str(), "comet" | "send" | "close") {
        let form = Form(req.form.into_iter().collect());
        on_session(&app, &req.endpoint, form, false).await
    } else {
        session_not_found()
    };
    to_reply(resp).await
}

/// A response as a relayed reply.
async fn to_reply(resp: Response) -> RelayReply {
    let (parts, body) = resp.into_parts();
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/html")
        .to_owned();
    // Bodies are what this node would have sent itself: bounded by the session's limits.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    RelayReply {
        status: parts.status.as_u16(),
        reason,
        content_type,
        body,
    }
}

/// A relayed reply as this node's response.
fn from_reply(reply: RelayReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = respond(status, None, &reply.content_type, reply.body);
    if let Some(reason) = reply
        .reason
        .and_then(|r| hyper::ext::ReasonPhrase::try_from(r.into_bytes()).ok())
    {
        resp.extensions_mut().insert(reason);
    }
    resp
}
