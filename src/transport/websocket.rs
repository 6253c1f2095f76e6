//! RTJP over RFC 6455 WebSocket at `/ws`, in text frames.
//!
//! Two tasks per connection: this reader, which feeds the session and so handles the client's
//! frames one after another, and a writer, which drains the outbox and sends everything queued as
//! one text message (RTJP allows several `\r\n`-ended frames per message). Small socket buffers
//! keep idle connections cheap.
//!
//! Liveness: the writer pings every `--ping-interval`; a live client's pong is traffic, so only
//! a peer that is gone (or stopped reading) goes silent for `--idle-timeout` and has its reads
//! fail (`listener`), which closes it like any other close, webhooks included. A connection
//! that sends no CONNECT within `--connect-timeout` is closed too.

use super::quota::Slot;
use super::{client_address, hixie, PeerAddr, Shared};
use crate::engine::Transport;
use crate::metrics::OpenConnection;
use crate::outbox::{CloseReason, Outbox};
use crate::session::{Peer, Session, Stage};
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
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

async fn run(app: Arc<Shared>, socket: WebSocket, client: Peer, slot: Slot) {
    let _open = OpenConnection::new(Transport::WebSocket);
    let limit = app.limits.max_message;
    let outbox = Arc::new(Outbox::new(app.limits.outbox_bytes));
    let mut session = Session::new(
        app.hub.clone(),
        Transport::WebSocket,
        client,
        outbox.clone(),
        app.limits.session,
    );
    let (sink, mut stream) = socket.split();
    // The writer's end (a failed write, the close written) ends the reader too; its handle is
    // what the reader waits on (no token to allocate per connection).
    let mut writer = tokio::spawn(write_loop(
        sink,
        outbox.clone(),
        app.limits.write_coalesce,
        app.limits.ping_interval,
    ));
    let mut writer_done = false;
    let progress = session.progress();
    let mut connect_by = Some(ConnectDeadline::new(app.limits.connect_timeout));

    // Shutdown reaches the writer through the outbox: the writer itself waits on nothing but
    // the outbox, so a delivery wakes one per-connection primitive and registers on nothing
    // shared (the shutdown token is only polled here, when the client sends something).
    let mut stopping = false;
    loop {
        if progress.stage() != Stage::Initial {
            connect_by = None;
        }
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = &mut writer, if !writer_done => {
                writer_done = true;
                break;
            }
            _ = app.shutdown.cancelled(), if !stopping => {
                stopping = true;
                outbox.close(CloseReason::Shutdown);
                continue;
            }
            reason = ConnectDeadline::wait(&mut connect_by) => {
                outbox.close(reason);
                break;
            }
        };
        let data: axum::body::Bytes = match msg {
            Some(Ok(Message::Text(t))) => t.into(),
            // Binary messages carry UTF-8 text too. The frame decoder works on bytes, so a
            // character split across two messages is fine, like a frame split across two.
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(e)) if is_capacity_error(&e) => {
                tracing::info!(
                    "closed a WebSocket from {}: a message over twice --max-message-size ({limit})",
                    session.remote()
                );
                outbox.close(CloseReason::MessageTooLarge { limit });
                break;
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
        };
        // A message over the limit (but within what the WebSocket layer reads, twice the limit)
        // is dropped with an ERROR saying why; the connection goes on.
        if data.len() > limit {
            session.refuse_message(data.len(), limit);
            continue;
        }
        // Boxed: the handling of a frame (webhooks and all) is a large future, kept off the
        // reader's own state, which every idle connection carries.
        if Box::pin(session.receive(&data)).await.is_err() {
            outbox.close(CloseReason::MessageTooLarge { limit });
            break;
        }
    }
    // The writer flushes what is queued and the close (a reply to the peer's, if it closed).
    outbox.close(CloseReason::Closed);
    if !writer_done {
        let _ = writer.await;
    }
    // The socket is released (the writer completed the close handshake) before the close
    // handling, which may wait on webhooks for a while.
    drop(stream);
    drop(slot);
    tracing::debug!("connection {} closed", session.id());
    // Boxed: the close handling (webhooks, retries) is a large future, only needed at the end.
    Box::pin(session.close()).await;
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

/// The writer's ping timer: resolves every `interval` (never without one).
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

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    outbox: Arc<Outbox>,
    coalesce: Duration,
    ping: Option<Duration>,
) {
    let mut ping = PingTimer::new(ping);
    loop {
        // A ping that wins the race leaves the outbox's wake-up stored for the next turn.
        tokio::select! {
            _ = outbox.ready() => {}
            _ = ping.due() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
                continue;
            }
        }
        gather(&outbox, coalesce).await;
        let drained = outbox.drain();
        if !drained.data.is_empty() {
            // The encoder only ever produces ASCII.
            let text = String::from_utf8(drained.data).expect("frames are ASCII");
            // A peer that takes no bytes for a while fails the write (see `listener`).
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        if let Some(reason) = drained.close {
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
            let _ = sink.send(Message::Close(Some(frame))).await;
            break;
        }
    }
    // Flushes a pending close reply (the peer's close is answered as it is read) and closes.
    let _ = sink.close().await;
}
