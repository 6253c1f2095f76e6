//! Server-sent events at `GET /sse`, for pages that only listen (`new EventSource(url)`).
//!
//! The request is the client's whole say: its cookies go to the connect webhook as a CONNECT
//! would carry them, `channel=` names the channels it subscribes to (subscribe webhooks as for a
//! SUBSCRIBE), `payload=` is the CONNECT payload. A refused CONNECT is an HTTP error (the
//! browser's EventSource then stops for good); an accepted one starts the stream, whose events
//! are the RTJP frames (see `events`). Each event that moves a channel's position carries the
//! positions as its id, so a browser that reconnects sends `Last-Event-ID` and the new stream
//! recovers exactly what it missed, through the same recovery as the other transports.
//!
//! One task per stream runs the session (CONNECT, the SUBSCRIBEs, the close handling); the
//! response body drains the outbox. Dropping the body (the client is gone) closes the outbox,
//! which ends the task. The stream counts against `--max-connections` like a WebSocket; it gets
//! a comment line every `--ping-interval`, and, since the client sends nothing once connected,
//! it is exempt from `--idle-timeout` (TCP keepalive finds a vanished peer, as for hixie-75).

mod events;

use super::driver::{gather, PingTimer};
use super::quota::Slot;
use super::{client_address, PeerAddr, Shared};
use crate::metrics::OpenConnection;
use crate::net::Transport;
use crate::outbox::{CloseReason, Outbox};
use crate::protocol::{About, ClientFrame, OutFrame, Position};
use crate::session::{Peer, Session, Stage};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use events::Positions;
use indexmap::IndexSet;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Most channels one stream may name: each is a SUBSCRIBE (and a webhook) per (re)connect, and
/// each is in every id.
pub const MAX_CHANNELS: usize = 100;
/// Most bytes of channel names one stream may name in all: the id of every event that moves a
/// position lists them all, and comes back as a `Last-Event-ID` header (which proxies bound:
/// nginx's default is 8 KiB).
pub const MAX_NAMES_BYTES: usize = 2048;
/// A longer `Last-Event-ID` is not one this server wrote, and is ignored unparsed.
const MAX_LAST_EVENT_ID: usize = 4 * MAX_NAMES_BYTES;
/// The body is written at most about this much at a time (see `Writer`).
const CHUNK: usize = 64 * 1024;
/// How long a browser waits before trying again after a refusal that may pass (`retry:`).
const RETRY_MS: u32 = 5000;

/// Why a stream was not started: the HTTP status and the text of its body.
/// An HTTP error makes a browser's EventSource give up for good: so it is the answer to what
/// will not pass by itself (a bad request, a refusal by the web app or the origin policy), while
/// what may pass (a full server, the engine away, a shutdown) is a stream that says why in a
/// `close` event and asks the browser to retry in `RETRY_MS`. Each carries its text.
#[derive(Debug)]
enum Refusal {
    BadRequest(String),
    Denied(String),
    Unavailable(String),
}

/// What the request asks for.
struct Ask {
    cookie: String,
    /// The CONNECT payload: JSON text, as a CONNECT carries it.
    payload: Option<String>,
    /// Each named channel, with the position to recover it from (from `Last-Event-ID`).
    channels: Vec<(String, Option<Position>)>,
}

impl Ask {
    fn parse(query: &str, headers: &HeaderMap) -> Result<Ask, Refusal> {
        // In the order given, each name once.
        let mut channels: IndexSet<String> = IndexSet::new();
        let mut names_bytes = 0;
        let mut payload = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "channel" if value.is_empty() => {
                    return Err(Refusal::BadRequest("Empty channel name".into()))
                }
                "channel" if !channels.contains(&*value) => {
                    names_bytes += value.len();
                    if channels.len() == MAX_CHANNELS {
                        return Err(Refusal::BadRequest(format!(
                            "Too many channels (at most {MAX_CHANNELS} per stream)"
                        )));
                    }
                    if names_bytes > MAX_NAMES_BYTES {
                        return Err(Refusal::BadRequest(format!(
                            "Channel names too long (at most {MAX_NAMES_BYTES} bytes in all)"
                        )));
                    }
                    channels.insert(value.into_owned());
                }
                "channel" => {}
                "payload" => {
                    if serde_json::from_str::<serde::de::IgnoredAny>(&value).is_err() {
                        return Err(Refusal::BadRequest("Invalid json for payload".into()));
                    }
                    payload = Some(value.into_owned());
                }
                _ => {}
            }
        }
        let mut known: BTreeMap<String, Position> = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| id.len() <= MAX_LAST_EVENT_ID)
            .map(Positions::parse_id)
            .unwrap_or_default();
        let channels = channels
            .into_iter()
            .map(|c| {
                let at = known.remove(&c);
                (c, at)
            })
            .collect();
        // Several Cookie headers (HTTP/2 splits them) are one cookie string.
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Ask {
            cookie,
            payload,
            channels,
        })
    }
}

pub async fn handle(
    State(app): State<Arc<Shared>>,
    ConnectInfo(PeerAddr(peer, idle)): ConnectInfo<PeerAddr>,
    req: Request<Body>,
) -> Response {
    if req.method() != Method::GET {
        // HEAD would run the whole CONNECT for nothing.
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let headers = req.headers();
    let address = client_address(headers, peer, &app.limits.trusted_proxies);
    tracing::info!(target: "access", "Incoming SSE stream\t{}", peer.ip());
    if !origin_may_listen(&app, headers) {
        return refuse(&Refusal::Denied("Origin not allowed".into()), None);
    }
    // The page's origin passed the check above: it may read the stream (with its cookies for
    // hookbox, if it asked withCredentials).
    let cors = headers.get(header::ORIGIN).cloned();
    let ask = match Ask::parse(req.uri().query().unwrap_or(""), headers) {
        Ok(ask) => ask,
        Err(e) => return refuse(&e, cors),
    };
    let slot = match app.quota.take(address) {
        Ok(slot) => slot,
        Err(e) => return refuse(&Refusal::Unavailable(e.to_string()), cors),
    };
    let outbox = Arc::new(Outbox::new(app.limits.outbox_bytes));
    // From here on, however this request ends (the client gone during the connect webhook
    // included), the outbox is closed when the guard goes, which ends the session task.
    let guard = CloseOnDrop(outbox.clone());
    let mut positions = Positions::new(ask.channels.iter().map(|(c, _)| c.as_str()));
    for (i, (channel, at)) in ask.channels.iter().enumerate() {
        if let Some(at) = at {
            positions.expect_recovery(channel, subscribe_id(i), at);
        }
    }
    let (answer, answered) = oneshot::channel();
    // The session runs in a task of its own, tracked for shutdown: if this request goes away
    // during the connect webhook, the task still finishes (and undoes) what it began.
    app.connections.spawn(run(
        app.clone(),
        ask,
        address.to_string(),
        outbox.clone(),
        answer,
    ));
    match answered.await {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => return refuse(&refusal, cors),
        Err(_) => return refuse(&Refusal::Unavailable("Shutting down".into()), cors),
    }
    idle.exempt();
    let writer = Writer {
        outbox,
        positions,
        ping: PingTimer::new(app.limits.ping_interval),
        coalesce: app.limits.write_coalesce,
        backlog: Vec::new(),
        at: 0,
        shows_offsets: true,
        closing: None,
        done: false,
        _guard: guard,
        _slot: slot,
        _open: OpenConnection::new(Transport::Sse),
    };
    let body = futures_util::stream::unfold(writer, |mut w| async move {
        let chunk = w.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), w))
    });
    let mut resp = event_stream(Body::from_stream(body));
    allow_origin(resp.headers_mut(), cors);
    resp
}

/// A `200 text/event-stream` response of `body`: the stream's and the retry answer's.
fn event_stream(body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx would otherwise buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // The connection ends with the response (a stream's was exempted from the idle bound).
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The frame id of the SUBSCRIBE for the request's `i`th channel (CONNECT is 0).
fn subscribe_id(i: usize) -> i64 {
    i as i64 + 1
}

/// A refusal's answer. An HTTP error also ends the connection: a refused request must not leave a
/// kept-alive socket on which the next guess costs no new connection.
fn refuse(refusal: &Refusal, cors: Option<HeaderValue>) -> Response {
    let closing = [(header::CONNECTION, HeaderValue::from_static("close"))];
    let mut resp = match refusal {
        Refusal::BadRequest(text) => {
            (StatusCode::BAD_REQUEST, closing, text.clone()).into_response()
        }
        Refusal::Denied(text) => (StatusCode::FORBIDDEN, closing, text.clone()).into_response(),
        Refusal::Unavailable(text) => {
            let mut body = format!("retry: {RETRY_MS}\n\nevent: close\ndata: ").into_bytes();
            crate::protocol::write_ascii(&mut body, &json!({ "reason": text }));
            body.extend_from_slice(b"\n\n");
            event_stream(Body::from(body))
        }
    };
    allow_origin(resp.headers_mut(), cors);
    resp
}

/// Whether the page behind the request may read a stream that its cookies open. `/sse` forwards
/// the browser's real Cookie header (HttpOnly cookies too) and nothing else identifies the
/// visitor, so a page with an `Origin` must be one that may hand its cookies over, as for the
/// other transports' cookies (`Limits::cookie_origin_allowed`: `--allowed-origins`, or, when it
/// is not set, hookbox's own origin and the web app's).
///
/// A request without `Origin` is a same-origin `EventSource`, a non-browser client, or a
/// browser's request made by another site (`<img src=…/sse?…>`, a link, a `no-cors` fetch),
/// which would open a stream, with the attacker's channels and payload, on the visitor's
/// session. Such a request is refused when the browser says it is cross-site
/// (`Sec-Fetch-Site`, sent to https and localhost), when its `Referer` names another host, or
/// when it does not ask for `text/event-stream` as `EventSource` does (an image, a script, a
/// page). Over plain http a `no-cors` fetch can still pass: there, `SameSite` session cookies
/// are what keeps them from being sent (docs/security.md).
fn origin_may_listen(app: &Shared, headers: &HeaderMap) -> bool {
    let ok = if headers.contains_key(header::ORIGIN) {
        app.limits.cookie_origin_allowed(headers)
    } else {
        same_site_request(headers)
    };
    if !ok {
        crate::metrics::refused("origin");
    }
    ok
}

/// See `origin_may_listen`: a request without `Origin` that shows no sign of another site.
fn same_site_request(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if !matches!(text("sec-fetch-site"), None | Some("same-origin" | "none")) {
        return false;
    }
    let host = text(header::HOST.as_str());
    let foreign_referer = text(header::REFERER.as_str())
        .and_then(|r| url::Url::parse(r).ok())
        .is_some_and(|r| {
            let authority = match (r.host_str(), r.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => String::new(),
            };
            Some(authority.as_str()) != host
        });
    let wants_events = text(header::ACCEPT.as_str())
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/event-stream"));
    !foreign_referer && wants_events
}

fn allow_origin(h: &mut HeaderMap, origin: Option<HeaderValue>) {
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// The stream's session: CONNECT (answering the request with its outcome), the SUBSCRIBEs,
/// then, once the outbox closes (client gone, kicked, shutdown), the close handling.
async fn run(
    app: Arc<Shared>,
    ask: Ask,
    remote: String,
    outbox: Arc<Outbox>,
    answer: oneshot::Sender<Result<(), Refusal>>,
) {
    let mut session = Session::new(
        app.hub.clone(),
        Transport::Sse,
        Peer::at(remote),
        outbox.clone(),
        app.limits.session,
    );
    // The request is the client's CONNECT and SUBSCRIBEs, handed over typed.
    let connect = ClientFrame::Connect {
        cookie: ask.cookie,
        payload: ask.payload.unwrap_or_else(|| "null".to_owned()),
        recovery: true,
        resume: None,
    };
    Box::pin(session.take(0, connect)).await;
    if session.progress().stage() != Stage::Connected {
        let _ = answer.send(Err(refusal_of(&outbox)));
        return;
    }
    if answer.send(Ok(())).is_err() {
        outbox.close(CloseReason::Closed);
    }
    for (i, (channel, at)) in ask.channels.into_iter().enumerate() {
        if outbox.is_closed() {
            break;
        }
        let subscribe = ClientFrame::Subscribe {
            channel,
            recover: at,
        };
        Box::pin(session.take(subscribe_id(i), subscribe)).await;
    }
    tokio::select! {
        _ = outbox.closed() => {}
        _ = app.shutdown.cancelled() => outbox.close(CloseReason::Shutdown),
    }
    Box::pin(session.close()).await;
}

/// Why the CONNECT failed, from what the session queued: its ERROR text, or the engine's
/// close.
fn refusal_of(outbox: &Outbox) -> Refusal {
    let drained = outbox.drain_frames();
    if let Some(reason @ (CloseReason::Unavailable | CloseReason::Throttled { .. })) = drained.close
    {
        return Refusal::Unavailable(reason.text());
    }
    let msg = drained
        .frames
        .iter()
        .find_map(|frame| match frame.about() {
            About::Error { msg, .. } => Some(msg.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "Unauthorized".to_owned());
    Refusal::Denied(msg)
}

/// Closes the outbox when dropped: the request or the response body is gone, so the session
/// is over.
struct CloseOnDrop(Arc<Outbox>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(CloseReason::Closed);
    }
}

/// The response body: drains the outbox into events; pings; ends after the close.
///
/// Every event that moves a position carries the whole id, so the events of a drain can be many
/// times its size: they are written `CHUNK` bytes at a time from the drained frames (the
/// `backlog`), and the outbox is drained again only once they are all out. A stream holds at
/// most its outbox budget in frames plus one chunk, whatever its ids.
struct Writer {
    outbox: Arc<Outbox>,
    positions: Positions,
    ping: PingTimer,
    coalesce: std::time::Duration,
    /// Drained frames not yet written as events, from `at`, and whether they show offsets.
    backlog: Vec<OutFrame>,
    at: usize,
    shows_offsets: bool,
    /// The close that came with the backlog: its event goes after it.
    closing: Option<CloseReason>,
    done: bool,
    _guard: CloseOnDrop,
    /// The stream's place in the connection quota, and in the connection gauge, for as long as
    /// the response lives.
    _slot: Slot,
    _open: OpenConnection,
}

impl Writer {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.at < self.backlog.len() {
                let left = &self.backlog[self.at..];
                // Room for about twice the frames' size, up to a chunk (counted no further).
                let mut size = 0;
                for frame in left {
                    size += 2 * frame.wire_len(true);
                    if size >= CHUNK {
                        break;
                    }
                }
                let mut out = Vec::with_capacity(CHUNK.min(size));
                self.at += self.positions.write_events(
                    &self.backlog[self.at..],
                    self.shows_offsets,
                    &mut out,
                    CHUNK,
                );
                if self.at >= self.backlog.len() {
                    // Gives a burst's room back, as the outbox does.
                    self.backlog = Vec::new();
                    self.at = 0;
                }
                if !out.is_empty() {
                    crate::metrics::bytes_out(out.len());
                    return Some(out.into());
                }
                continue;
            }
            if let Some(reason) = self.closing.take() {
                self.done = true;
                let mut out = b"event: close\ndata: ".to_vec();
                crate::protocol::write_ascii(&mut out, &json!({"reason": reason.text()}));
                out.extend_from_slice(b"\n\n");
                return Some(out.into());
            }
            if self.done {
                return None;
            }
            tokio::select! {
                _ = self.outbox.ready() => {}
                _ = self.ping.due() => return Some(Bytes::from_static(b": ping\n\n")),
            }
            gather(&self.outbox, self.coalesce).await;
            let drained = self.outbox.drain_frames();
            self.backlog = drained.frames;
            self.shows_offsets = drained.positions;
            self.at = 0;
            self.closing = drained.close;
        }
    }
}
