//! RTJP over RFC 6455 WebSocket at `/ws`, in text frames.
//!
//! One task per connection reads the client's frames (handled one after another), drains the
//! outbox (everything queued goes out as one text message: RTJP allows several `\r\n`-ended
//! frames per message) and pings. Small socket buffers keep idle connections cheap.
//!
//! Liveness: the connection pings every `--ping-interval`; a live client's pong is traffic, so only
//! a peer that is gone (or stopped reading) goes silent for `--idle-timeout` and has its reads
//! fail (`listener`), which closes it like any other close, webhooks included. A connection
//! that sends no CONNECT within `--connect-timeout` is closed too.

use super::quota::Slot;
use super::{client_address, hixie, PeerAddr, Shared};
use crate::metrics::OpenConnection;
use crate::net::Transport;
use crate::outbox::{CloseReason, Outbox};
use crate::protocol::FrameTooLarge;
use crate::session::{Peer, Session, Stage};
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Sleep;

/// Socket read buffer per connection, to start with: RTJP frames are small and idle connections
/// many (it grows for a larger message). Measured: 4 KiB here cost ~4 KB of RSS per idle
/// connection.
const READ_BUFFER: usize = 256;
/// Socket write buffer: 0 writes each message at once (the outbox holds the backlog, and the
/// writer sends everything queued as one message).
const WRITE_BUFFER: usize = 0;

pub async fn upgrade(
    State(app): State<Arc<Shared>>,
    ConnectInfo(PeerAddr(peer, idle)): ConnectInfo<PeerAddr>,
    req: Request<Body>,
) -> Response {
    let address = client_address(req.headers(), peer, &app.limits.trusted_proxies);
    let client = Peer {
        address: address.to_string(),
        cookie: app.limits.forwarded_cookie(req.headers()),
    };
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    tracing::info!(target: "access", "Incoming WebSocket connection\t{}\t{}", peer.ip(), crate::log::field(&host));
    if !app.limits.origin_allowed(req.headers()) {
        return (axum::http::StatusCode::FORBIDDEN, "Origin not allowed").into_response();
    }
    let slot = match app.quota.take(address) {
        Ok(slot) => slot,
        Err(e) => {
            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    };
    if hixie::is_hixie75(req.headers()) {
        return hixie::upgrade(app, req, client, idle, slot);
    }
    let (mut parts, _body) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &app).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let limit = app.limits.max_message;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Let a message somewhat over the limit through so that we can refuse it with an ERROR
        // that names the limit; anything larger is refused by the WebSocket layer itself (a
        // close frame naming the limit).
        .max_message_size(limit * 2)
        .max_frame_size(limit * 2)
        .on_upgrade(move |socket| {
            // Counted by the connection quota from here on, not among plain HTTP connections
            // (only once upgraded: a request that merely names /ws stays plain HTTP).
            idle.leave_http();
            let connections = app.connections.clone();
            connections.track_future(run(app, socket, client, slot))
        })
}

/// What a frame's handling gives back: the session (moved into the handling, so that the
/// connection's one task can write and ping while a webhook is awaited) and its result.
type Handled = (Session, Result<(), FrameTooLarge>);

/// One task per connection reads, writes and pings: no second task, no lock splitting the
/// socket (measured: about 0.2 KB per idle connection, see docs/BENCHMARKS.md). The handling of
/// a client's frame may wait on webhooks for seconds, so it runs as a future of its own, polled
/// beside the socket; the client's next frame is read only once it is done (frames are
/// handled in order, as before).
///
/// Not an `async fn`: that keeps room for its arguments beside the locals they move into (456
/// bytes a connection here, by `-Zprint-type-sizes`); an async block uses what it captures in
/// place.
#[allow(clippy::manual_async_fn)]
fn run(
    app: Arc<Shared>,
    mut socket: WebSocket,
    client: Peer,
    slot: Slot,
) -> impl Future<Output = ()> + Send {
    async move {
        let _open = OpenConnection::new(Transport::WebSocket);
        let limit = app.limits.max_message;
        let coalesce = app.limits.write_coalesce;
        let outbox = Arc::new(Outbox::new(app.limits.outbox_bytes));
        let session = Session::new(
            app.hub.clone(),
            Transport::WebSocket,
            client,
            outbox.clone(),
            app.limits.session,
        );
        let progress = session.progress();
        // `None` while a frame's handling holds it.
        let mut session = Some(session);
        let mut handling: Option<Handling> = None;
        let mut connect_by = Some(ConnectDeadline::new(app.limits.connect_timeout));
        // The ping timer is held inline, not boxed as `PingTimer` does: the task's state has
        // room for it below the next size its allocation would round up to (measured), so it
        // saves a 112-byte allocation per connection.
        let ping_every = app.limits.ping_interval;
        let ping = tokio::time::sleep(ping_every.unwrap_or(Duration::from_secs(86_400)));
        tokio::pin!(ping);
        // Whether the socket can still be written: the close frame goes out once, and nothing
        // after a failed write.
        let mut writable = true;

        // Shutdown reaches the writing through the outbox, like every other close.
        let mut stopping = false;
        loop {
            if progress.stage() != Stage::Initial {
                connect_by = None;
            }
            tokio::select! {
                // The client's next frame, once the previous one's handling is done.
                m = socket.next(), if handling.is_none() => {
                    let data: axum::body::Bytes = match m {
                        Some(Ok(Message::Text(t))) => t.into(),
                        // Binary messages carry UTF-8 text too. The frame decoder works on bytes,
                        // so a character split across two messages is fine, like a frame split
                        // across two.
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Err(e)) if is_capacity_error(&e) => {
                            tracing::info!(
                                "closed a WebSocket from {}: a message over twice --max-message-size ({limit})",
                                session.as_ref().map_or("", |s| s.remote())
                            );
                            outbox.close(CloseReason::MessageTooLarge { limit });
                            break;
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    };
                    let mut s = session.take().expect("no handling in progress");
                    // A message over the limit (but within what the WebSocket layer reads, twice
                    // the limit) is dropped with an ERROR saying why; the connection goes on.
                    if data.len() > limit {
                        s.refuse_message(data.len(), limit);
                        session = Some(s);
                        continue;
                    }
                    handling = Some(Box::pin(async move {
                        let result = s.receive(&data).await;
                        (s, result)
                    }));
                }
                result = finish(&mut handling, &mut session) => {
                    if result.is_err() {
                        outbox.close(CloseReason::MessageTooLarge { limit });
                        break;
                    }
                }
                // A ping that wins the race leaves the outbox's wake-up stored for the next turn.
                _ = outbox.ready() => {
                    gather(&outbox, coalesce).await;
                    if !write(&mut socket, &outbox).await {
                        writable = false;
                        break;
                    }
                }
                _ = &mut ping, if ping_every.is_some() => {
                    let every = ping_every.unwrap_or_default();
                    ping.as_mut().reset(tokio::time::Instant::now() + every);
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        writable = false;
                        break;
                    }
                }
                _ = app.shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    outbox.close(CloseReason::Shutdown);
                }
                reason = ConnectDeadline::wait(&mut connect_by) => {
                    outbox.close(reason);
                    break;
                }
            }
        }
        // What is queued and the close go out (a reply to the peer's close, if it closed).
        outbox.close(CloseReason::Closed);
        if writable {
            let _ = write(&mut socket, &outbox).await;
        }
        let _ = socket.close().await;
        // The socket is released before the close handling, which may wait on webhooks for a
        // while; so is a handling still in progress (its webhook may take as long).
        drop(socket);
        drop(slot);
        let session = match handling {
            Some(f) => f.await.0,
            None => session.expect("no handling in progress"),
        };
        tracing::debug!("connection {} closed", session.id());
        // Boxed: the close handling (webhooks, retries) is a large future, only needed at the end.
        Box::pin(session.close()).await;
    }
}

/// The deadline for a connection's CONNECT (`--connect-timeout`), shared with hixie-75. Boxed,
/// and dropped once the client has connected, so that a connected idle connection carries no
/// timer for it.
pub(super) struct ConnectDeadline {
    timer: Pin<Box<Sleep>>,
    after: Duration,
}

impl ConnectDeadline {
    pub(super) fn new(after: Duration) -> ConnectDeadline {
        ConnectDeadline {
            timer: Box::pin(tokio::time::sleep(after)),
            after,
        }
    }

    /// Resolves when the deadline passes (never, once dropped), with the reason to close.
    pub(super) async fn wait(deadline: &mut Option<ConnectDeadline>) -> CloseReason {
        match deadline {
            Some(d) => {
                d.timer.as_mut().await;
                crate::metrics::timed_out("connect");
                CloseReason::ConnectTimeout { after: d.after }
            }
            None => std::future::pending().await,
        }
    }
}

/// A ping timer that resolves every `interval` (never without one), boxed (SSE streams).
pub(super) struct PingTimer(Option<(Pin<Box<Sleep>>, Duration)>);

impl PingTimer {
    pub(super) fn new(interval: Option<Duration>) -> PingTimer {
        PingTimer(interval.map(|i| (Box::pin(tokio::time::sleep(i)), i)))
    }

    pub(super) async fn due(&mut self) {
        match &mut self.0 {
            Some((timer, interval)) => {
                timer.as_mut().await;
                let next = tokio::time::Instant::now() + *interval;
                timer.as_mut().reset(next);
            }
            None => std::future::pending().await,
        }
    }
}

/// With `--write-coalesce-ms`, lets more frames join the first before the write: one system call
/// for several deliveries, at the cost of that much latency. A close is written at once.
pub(super) async fn gather(outbox: &Outbox, coalesce: Duration) {
    if !coalesce.is_zero() && !outbox.is_closed() {
        tokio::select! {
            _ = tokio::time::sleep(coalesce) => {}
            _ = outbox.closed() => {}
        }
    }
}

fn is_capacity_error(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Capacity")
}

/// A frame's handling in progress: it owns the session while it runs.
type Handling = Pin<Box<dyn Future<Output = Handled> + Send>>;

/// Resolves when the handling in progress ends (never without one), with its result; the
/// session is back in `session`. Taken back here, not in the caller, so that the connection's
/// state does not keep room for a session in transit.
async fn finish(
    handling: &mut Option<Handling>,
    session: &mut Option<Session>,
) -> Result<(), FrameTooLarge> {
    let Some(f) = handling else {
        return std::future::pending().await;
    };
    let (s, result) = f.as_mut().await;
    *handling = None;
    *session = Some(s);
    result
}

/// Writes everything queued as one text message, then the close if the outbox is closed.
/// Returns whether the socket can take more (false once the close is written or a write failed).
async fn write(socket: &mut WebSocket, outbox: &Outbox) -> bool {
    let drained = outbox.drain();
    if !drained.data.is_empty() {
        // The encoder only ever produces ASCII.
        let text = String::from_utf8(drained.data).expect("frames are ASCII");
        // A peer that takes no bytes for a while fails the write (see `listener`).
        if socket.send(Message::Text(text.into())).await.is_err() {
            return false;
        }
    }
    let Some(reason) = drained.close else {
        return true;
    };
    let code = match reason {
        CloseReason::Overflow { .. } | CloseReason::TooManyFailedConnects { .. } => 1008,
        CloseReason::Kicked | CloseReason::Closed => 1000,
        CloseReason::Shutdown => 1001,
        CloseReason::MessageTooLarge { .. } => 1009,
        // "Try Again Later".
        CloseReason::Unavailable | CloseReason::Throttled { .. } => 1013,
        CloseReason::ConnectTimeout { .. } => 1008,
    };
    let frame = CloseFrame {
        code,
        reason: reason.text().into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
    false
}
