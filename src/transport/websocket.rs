//! RTJP over RFC 6455 WebSocket at `/ws`, in text frames.
//!
//! The shared [driver](super::driver) runs each connection in one task; this file brings the
//! upgrade and the framing: everything the outbox gives goes out as one text message (RTJP allows
//! several `\r\n`-ended frames per message), pings, close codes. Small socket buffers keep idle
//! connections cheap.
//!
//! Liveness: the connection pings every `--ping-interval`; a live client's pong is traffic, so only
//! a peer that is gone (or stopped reading) goes silent for `--idle-timeout` and has its reads
//! fail (`listener`), which closes it like any other close, webhooks included. A connection
//! that sends no CONNECT within `--connect-timeout` is closed too.

use super::driver::{self, Inbound, Wire};
use super::{client_address, hixie, PeerAddr, Shared};
use crate::net::Transport;
use crate::outbox::{CloseReason, Drained};
use crate::session::Peer;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;

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
            let ping_every = app.limits.ping_interval;
            connections.track_future(driver::run(
                app,
                WebSocketWire(socket),
                Transport::WebSocket,
                client,
                slot,
                ping_every,
            ))
        })
}

/// RFC 6455 framing for the [driver](super::driver): text messages, pings, close codes.
struct WebSocketWire(WebSocket);

impl Wire for WebSocketWire {
    async fn next(&mut self) -> Inbound {
        loop {
            return match self.0.next().await {
                Some(Ok(Message::Text(t))) => Inbound::Message(t.into()),
                // Binary messages carry UTF-8 text too. The frame decoder works on bytes, so a
                // character split across two messages is fine, like a frame split across two.
                Some(Ok(Message::Binary(b))) => Inbound::Message(b),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Err(e)) if is_capacity_error(&e) => Inbound::TooLarge,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Inbound::Closed,
            };
        }
    }

    async fn write(&mut self, drained: Drained) -> bool {
        write(&mut self.0, drained).await
    }

    async fn ping(&mut self) -> bool {
        self.0.send(Message::Ping(Default::default())).await.is_ok()
    }

    async fn shut(mut self) {
        let _ = self.0.close().await;
    }
}

fn is_capacity_error(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Capacity")
}

/// Writes everything queued as one text message, then the close if the outbox is closed.
/// Returns whether the socket can take more (false once the close is written or a write failed).
async fn write(socket: &mut WebSocket, drained: Drained) -> bool {
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
