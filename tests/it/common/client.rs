//! RTJP frames, and a WebSocket RTJP client for `/ws`.

use super::{keys, GUARD};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// RTJP frames

/// One RTJP frame: `(id, name, args)`.
pub type Frame = (i64, String, Map<String, Value>);

/// An RTJP frame as the client writes it: `[id, name, args]\r\n`.
pub fn frame(id: i64, name: &str, args: Value) -> String {
    format!("{}\r\n", json!([id, name, args]))
}

/// Parses one RTJP frame line (its `\r\n` may be left on).
pub fn parse_frame(text: &str) -> Frame {
    let v: Value = serde_json::from_str(text.trim_end_matches("\r\n")).expect("frame is JSON");
    (
        v[0].as_i64().expect("frame id"),
        v[1].as_str().expect("frame name").to_owned(),
        v[2].as_object().expect("frame args").clone(),
    )
}

/// Parses a server frame, checking that server frame ids count up by one from `last` (which it
/// advances).
pub fn parse_server_frame(text: &str, last: &mut i64) -> Frame {
    let f = parse_frame(text);
    assert_eq!(f.0, *last + 1, "server frame ids count up by one");
    *last = f.0;
    f
}

// ---------------------------------------------------------------------------------------------
// A WebSocket RTJP client

pub struct Client {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: i64,
    buf: String,
    frames: VecDeque<Frame>,
    /// Every raw text received, to check the wire bytes.
    pub raw: Vec<String>,
    last_server_id: i64,
}

impl Client {
    pub async fn open(url: &str) -> Client {
        Client::open_with_headers(url, &[]).await
    }

    /// `open`, with extra request headers on the upgrade request (e.g. `X-Forwarded-For`).
    pub async fn open_with_headers(url: &str, headers: &[(&str, &str)]) -> Client {
        Client::try_open_with_headers(url, headers)
            .await
            .expect("ws connect")
    }

    /// `open_with_headers`, or the upgrade's failure (e.g. the server's refusal).
    pub async fn try_open_with_headers(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().expect("ws url");
        for (name, value) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                name.parse().expect("header name");
            req.headers_mut()
                .append(name, value.parse().expect("header value"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Client {
            ws,
            next_id: 1,
            buf: String::new(),
            frames: VecDeque::new(),
            raw: Vec::new(),
            last_server_id: 0,
        })
    }

    /// Sends `[id, name, args]\r\n` with the next id; returns the id.
    pub async fn send(&mut self, name: &str, args: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(&frame(id, name, args)).await;
        id
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("ws send");
    }

    /// The next frame `(id, name, args)`, checking that server ids count up by one (pings
    /// skipped).
    pub async fn recv(&mut self) -> Frame {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return f;
            }
            let msg = tokio::time::timeout(GUARD, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection closed while waiting for a frame")
                .expect("ws error");
            match msg {
                Message::Text(text) => self.take_text(&text),
                // Answered by reading (tungstenite queues the pong): pings may come between
                // frames in a test with a short --ping-interval.
                Message::Ping(_) => {}
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Splits a received text message into frames (queued in `frames`).
    fn take_text(&mut self, text: &str) {
        assert!(text.is_ascii(), "server output must be ASCII: {text}");
        self.raw.push(text.to_owned());
        self.buf.push_str(text);
        while let Some(pos) = self.buf.find("\r\n") {
            let line: String = self.buf.drain(..pos + 2).collect();
            let f = parse_server_frame(&line, &mut self.last_server_id);
            self.frames.push_back(f);
        }
    }

    /// Every frame the server sends until it closes the socket, and the close frame's code and
    /// reason (`None` if the socket ended without a close frame).
    pub async fn frames_until_close(&mut self) -> (Vec<Frame>, Option<(u16, String)>) {
        let mut frames: Vec<Frame> = self.frames.drain(..).collect();
        loop {
            let msg = tokio::time::timeout(GUARD, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    self.take_text(&text);
                    frames.extend(self.frames.drain(..));
                }
                Some(Ok(Message::Close(frame))) => {
                    let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return (frames, close);
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (frames, None),
            }
        }
    }

    /// The next frame, which must be `name`; returns its args.
    pub async fn expect(&mut self, name: &str) -> Map<String, Value> {
        let (_, got, args) = self.recv().await;
        assert_eq!(got, name, "expected {name}, got {got} {args:?}");
        args
    }

    /// The next frame must be ERROR with `msg`; returns its `id` arg.
    pub async fn expect_error(&mut self, msg: &str) -> Value {
        let args = self.expect("ERROR").await;
        assert_eq!(args["msg"], msg, "{args:?}");
        assert_eq!(keys(&args), ["id", "msg"]);
        args["id"].clone()
    }

    /// Proves nothing else is queued for this client: sends a frame the server always answers
    /// with an ERROR and checks that this ERROR is the very next frame.
    pub async fn assert_quiet(&mut self) {
        let id = self.send("PING_BARRIER", json!({})).await;
        let (_, name, args) = self.recv().await;
        assert_eq!(name, "ERROR", "unexpected frame {name} {args:?}");
        assert_eq!(args["id"], id, "unexpected ERROR {args:?}");
    }

    /// Reads until the server's next WebSocket ping (frames that arrive meanwhile are kept for
    /// `recv`). Reading is what answers it: tungstenite queues the pong and sends it.
    pub async fn next_ping(&mut self) {
        loop {
            let msg = tokio::time::timeout(GUARD, self.ws.next())
                .await
                .expect("timed out waiting for a ping")
                .expect("connection closed while waiting for a ping")
                .expect("ws error");
            match msg {
                Message::Ping(_) => return,
                Message::Text(text) => self.take_text(&text),
                other => panic!("expected a ping, got {other:?}"),
            }
        }
    }

    /// Waits for the server to close the socket; returns the close frame's code and reason.
    pub async fn expect_close(&mut self) -> Option<(u16, String)> {
        loop {
            let msg = tokio::time::timeout(GUARD, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Drain until the server acknowledges, so the close is complete when this returns.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(GUARD, self.ws.next()).await {}
    }
}
