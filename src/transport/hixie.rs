//! The 2010 "hixie-75" WebSocket handshake and framing, still spoken by python-hookboxclient.
//!
//! Handshake: `GET /ws` with `Upgrade: WebSocket` and no `Sec-WebSocket-Key`; we answer
//! `101 Web Socket Protocol Handshake`. Frames are `0x00` + UTF-8 text + `0xFF`; `0xFF 0x00`
//! closes. That client sends an extra CRLF before its first frame, so bytes outside a frame are
//! skipped. Every server frame ends in `\r\n` inside the WebSocket frame, one RTJP frame each.

use super::driver::{self, Inbound, Wire};
use super::quota::Slot;
use super::{IdleSwitch, Shared};
use crate::net::Transport;
use crate::outbox::Drained;
use crate::session::Peer;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 512;

/// A hixie-75 request: an upgrade to "WebSocket" without any of RFC 6455's headers.
pub fn is_hixie75(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, want: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains(want))
    };
    has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && !headers.contains_key(header::SEC_WEBSOCKET_KEY)
        && !headers.contains_key("sec-websocket-key1")
}

/// Answers the handshake and runs the connection once hyper hands over the socket.
pub fn upgrade(
    app: Arc<Shared>,
    mut req: Request<Body>,
    client: Peer,
    idle: IdleSwitch,
    slot: Slot,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let location = format!(
        "ws://{host}{}",
        req.uri().path_and_query().map_or("/ws", |p| p.as_str())
    );
    let origin = req.headers().get(header::ORIGIN).cloned();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let connections = app.connections.clone();
    connections.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                // A WebSocket now, counted by the connection quota rather than as plain HTTP.
                idle.leave_http();
                let wire = HixieWire::new(TokioIo::new(upgraded), idle, app.limits.max_message);
                // hixie-75 has no ping. A connected client may listen in silence for as long
                // as it likes: from then on only TCP keepalive bounds it (`listener`).
                driver::run(app, wire, Transport::Hixie, client, slot, None).await
            }
            Err(e) => tracing::info!("hixie-75 upgrade failed: {e}"),
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    resp.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(
            b"Web Socket Protocol Handshake",
        ));
    let headers = resp.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Some(origin) = origin {
        headers.insert("WebSocket-Origin", origin);
    }
    if let Ok(loc) = HeaderValue::from_str(&location) {
        headers.insert("WebSocket-Location", loc);
    }
    resp
}

/// hixie-75 framing for the [driver](super::driver), on the raw upgraded socket.
struct HixieWire<S> {
    io: S,
    decoder: Deframer,
    /// Frames read but not yet handed over (one read may carry several).
    pending: VecDeque<Event>,
    buf: Box<[u8]>,
    idle: IdleSwitch,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> HixieWire<S> {
    fn new(io: S, idle: IdleSwitch, limit: usize) -> HixieWire<S> {
        HixieWire {
            io,
            decoder: Deframer::new(limit),
            pending: VecDeque::new(),
            buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
            idle,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Wire for HixieWire<S> {
    async fn next(&mut self) -> Inbound {
        loop {
            match self.pending.pop_front() {
                Some(Event::Text(text)) => return Inbound::Message(Bytes::from(text)),
                Some(Event::Close) => return Inbound::Closed,
                Some(Event::TooLarge) => return Inbound::TooLarge,
                None => {}
            }
            // Cancel-safe: the read is, and its bytes are decoded before the next await.
            match self.io.read(&mut self.buf).await {
                Ok(0) | Err(_) => return Inbound::Closed,
                Ok(n) => self.pending.extend(self.decoder.push(&self.buf[..n])),
            }
        }
    }

    async fn write(&mut self, drained: Drained) -> bool {
        let mut out = Vec::with_capacity(drained.data.len() + 2 * drained.frames + 2);
        for frame in drained.data.split_inclusive(|b| *b == b'\n') {
            out.push(0x00);
            out.extend_from_slice(frame);
            out.push(0xFF);
        }
        if drained.close.is_some() {
            out.extend_from_slice(&[0xFF, 0x00]);
        }
        if out.is_empty() {
            return true;
        }
        // A peer that takes no bytes for a while fails the write (see `listener`).
        let written = async {
            self.io.write_all(&out).await?;
            self.io.flush().await
        }
        .await;
        written.is_ok() && drained.close.is_none()
    }

    async fn ping(&mut self) -> bool {
        true
    }

    /// Without pings, a connected client is exempt from `--idle-timeout`.
    fn connected(&mut self) {
        self.idle.exempt();
    }

    async fn shut(mut self) {
        let _ = self.io.shutdown().await;
    }
}

#[derive(Debug, PartialEq)]
enum Event {
    Text(Vec<u8>),
    Close,
    TooLarge,
}

/// Splits a hixie-75 byte stream into frames.
struct Deframer {
    in_frame: bool,
    /// The previous byte outside a frame was 0xFF (a close may follow).
    saw_ff: bool,
    current: Vec<u8>,
    limit: usize,
}

impl Deframer {
    fn new(limit: usize) -> Deframer {
        Deframer {
            in_frame: false,
            saw_ff: false,
            current: Vec::new(),
            limit,
        }
    }

    fn push(&mut self, data: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &b in data {
            if self.in_frame {
                if b == 0xFF {
                    self.in_frame = false;
                    events.push(Event::Text(std::mem::take(&mut self.current)));
                } else if self.current.len() >= self.limit {
                    events.push(Event::TooLarge);
                    return events;
                } else {
                    self.current.push(b);
                }
            } else if b == 0x00 {
                if self.saw_ff {
                    events.push(Event::Close);
                    return events;
                }
                self.in_frame = true;
            } else {
                // Stray bytes between frames (the client's extra CRLF) are skipped.
                self.saw_ff = b == 0xFF;
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_stray_bytes_and_splits_frames() {
        let mut d = Deframer::new(100);
        let mut events = d.push(b"\r\n\x00[1, \"A\", {}]\r\n\xff\x00[2");
        events.extend(d.push(b", \"B\", {}]\r\n\xff\xff\x00"));
        assert_eq!(
            events,
            vec![
                Event::Text(b"[1, \"A\", {}]\r\n".to_vec()),
                Event::Text(b"[2, \"B\", {}]\r\n".to_vec()),
                Event::Close
            ]
        );
    }

    #[test]
    fn refuses_oversized_frames() {
        let mut d = Deframer::new(4);
        assert_eq!(d.push(b"\x00123456"), vec![Event::TooLarge]);
    }
}
