//! A client of the Comet Session Protocol at `/csp` (§3.2, §3.4) over real HTTP, as the XHR and
//! JSONP transports of `hookbox.js` speak it: handshake, send, comet; batch and packet parsing.

use super::{frame, http_client, parse_server_frame, Frame, Server, GUARD};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const JS: &str = "application/javascript";
pub const NOT_FOUND_BODY: &str = "'Session not found'";
pub const NO_SESSION: &str = "0123456789abcdef0123456789abcdef";

/// One HTTP answer, with the headers every CSP test looks at.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: Option<String>,
    pub acao: Option<String>,
    /// `Access-Control-Allow-Credentials`.
    pub acac: Option<String>,
    pub body: String,
}

impl Resp {
    /// Asserts a 200 with `Access-Control-Allow-Origin: *` and returns the body.
    pub fn ok(&self) -> &str {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.acao.as_deref(), Some("*"), "{self:?}");
        &self.body
    }

    /// Asserts an error: `status`, ACAO `*`, and exactly `body`.
    pub fn assert_error(&self, status: u16, body: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.acao.as_deref(),
            Some("*"),
            "ACAO on errors too: {self:?}"
        );
        assert_eq!(self.body, body, "{self:?}");
    }
}

pub async fn fetch(req: reqwest::RequestBuilder) -> Resp {
    let resp = tokio::time::timeout(GUARD, req.send())
        .await
        .expect("timed out waiting for a CSP response")
        .expect("CSP request failed");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = header("content-type");
    let acao = header("access-control-allow-origin");
    let acac = header("access-control-allow-credentials");
    let status = resp.status().as_u16();
    let body = tokio::time::timeout(GUARD, resp.text())
        .await
        .expect("body timeout")
        .unwrap();
    Resp {
        status,
        content_type,
        acao,
        acac,
        body,
    }
}

/// `[id, encoding, data]` as the server sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub id: u64,
    pub encoding: u64,
    pub data: Value,
}

/// Parses `bp([...])bs` into packets.
pub fn parse_batch(body: &str, bp: &str, bs: &str) -> Vec<Packet> {
    let inner = body
        .strip_prefix(bp)
        .and_then(|b| b.strip_prefix('('))
        .and_then(|b| b.strip_suffix(bs))
        .and_then(|b| b.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a {bp}( … ){bs} batch: {body:?}"));
    let list: Vec<Value> = serde_json::from_str(inner)
        .unwrap_or_else(|e| panic!("batch is not a JSON list ({e}): {body:?}"));
    list.into_iter()
        .map(|p| {
            let a = p
                .as_array()
                .unwrap_or_else(|| panic!("packet is not a list: {p}"));
            assert_eq!(a.len(), 3, "packet {p}");
            Packet {
                id: a[0].as_u64().expect("packet id"),
                encoding: a[1].as_u64().expect("packet encoding"),
                data: a[2].clone(),
            }
        })
        .collect()
}

/// The bytes of a server data packet: encoding 1, URL-safe base64 (never `+` or `/`), exactly
/// one RTJP frame ending in `\r\n`, ASCII only.
pub fn packet_text(p: &Packet) -> String {
    assert_eq!(p.encoding, 1, "server data packets are base64: {p:?}");
    let b64 = p.data.as_str().expect("packet data is a string");
    assert!(
        b64.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
        "URL-safe base64 alphabet only: {b64}"
    );
    let bytes = URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .expect("valid base64");
    let text = String::from_utf8(bytes).expect("UTF-8");
    assert!(text.is_ascii(), "server output must be ASCII: {text}");
    assert!(text.ends_with("\r\n"), "one frame per packet: {text:?}");
    assert_eq!(
        text.matches("\r\n").count(),
        1,
        "one frame per packet: {text:?}"
    );
    text
}

/// URL-safe base64 without padding, as the XHR transport of `hookbox.js` sends it.
pub fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The JSON of a one-packet send body.
pub fn packet_list(id: u64, text: &str) -> String {
    json!([[id, 1, b64(text)]]).to_string()
}

pub struct Csp {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
    pub next_packet: u64,
    pub next_frame: i64,
    /// Highest server packet id received (sent as `a`).
    pub acked: u64,
    pub frames: VecDeque<Frame>,
    /// Decoded text of every server data packet, in order.
    pub raw: Vec<String>,
    last_server_frame: i64,
    /// The server's null packet arrived.
    pub closed_by_server: bool,
}

impl Csp {
    pub fn base(s: &Server) -> String {
        format!("http://{}/csp", s.addr)
    }

    pub fn new(s: &Server, key: String) -> Csp {
        Csp::at(Csp::base(s), key)
    }

    /// A session `key` of the CSP endpoint at `base` (`http://host:port/csp`).
    pub fn at(base: String, key: String) -> Csp {
        Csp {
            http: http_client(),
            base,
            key,
            next_packet: 1,
            next_frame: 1,
            acked: 0,
            frames: VecDeque::new(),
            raw: Vec::new(),
            last_server_frame: 0,
            closed_by_server: false,
        }
    }

    /// The XHR handshake request of `hookbox.js`; the answer is left to the caller.
    pub async fn handshake_request(s: &Server) -> Resp {
        fetch(
            http_client()
                .post(format!(
                    "{}/handshake?ct=application%2Fjavascript",
                    Csp::base(s)
                ))
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await
    }

    /// The XHR handshake of `hookbox.js`, checking the exact answer.
    pub async fn handshake(s: &Server) -> Csp {
        Csp::handshake_at(Csp::base(s)).await
    }

    /// The same handshake with the CSP endpoint at `base`.
    pub async fn handshake_at(base: String) -> Csp {
        let r = fetch(
            http_client()
                .post(format!("{base}/handshake?ct=application%2Fjavascript"))
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
        let body = r.ok();
        assert_eq!(r.content_type.as_deref(), Some(JS), "{r:?}");
        let key = session_key(body, "(", ")");
        Csp::at(base, key)
    }

    /// Handshake plus CONNECT with cookie `user=<name>`, through CONNECTED.
    pub async fn connected(s: &Server, name: &str) -> Csp {
        let mut c = Csp::handshake(s).await;
        c.send("CONNECT", json!({"cookie_string": format!("user={name}")}))
            .await;
        let hook = s.web.expect("connect").await;
        assert_eq!(hook.header("cookie"), Some(format!("user={name}").as_str()));
        assert_eq!(c.expect("CONNECTED").await["name"], name);
        c
    }

    /// `connected` plus SUBSCRIBE to `channel` through the own SUBSCRIBE frame. The channel gets
    /// the web app's default options (moderated: create_channel and subscribe hooks).
    pub async fn subscribed(s: &Server, name: &str, channel: &str) -> Csp {
        let mut c = Csp::connected(s, name).await;
        c.send("SUBSCRIBE", json!({"channel_name": channel})).await;
        s.web.expect("create_channel").await;
        s.web.expect("subscribe").await;
        assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], channel);
        c
    }

    pub fn url(&self, endpoint: &str, query: &str) -> String {
        let sep = if query.is_empty() { "" } else { "&" };
        format!("{}/{endpoint}?s={}{sep}{query}", self.base, self.key)
    }

    pub async fn post(&self, endpoint: &str, query: &str, body: impl Into<reqwest::Body>) -> Resp {
        fetch(
            self.http
                .post(self.url(endpoint, query))
                .header("content-type", "text/plain")
                .body(body),
        )
        .await
    }

    pub async fn get(&self, endpoint: &str, query: &str) -> Resp {
        fetch(self.http.get(self.url(endpoint, query))).await
    }

    /// POSTs a raw `send` body (with the current ack).
    pub async fn send_raw(&self, d: &str) -> Resp {
        self.post("send", &format!("a={}", self.acked), d.to_owned())
            .await
    }

    /// Sends `text` as the next packet and checks the `("OK")` answer.
    pub async fn send_text(&mut self, text: &str) {
        let d = packet_list(self.next_packet, text);
        self.next_packet += 1;
        let r = self.send_raw(&d).await;
        assert_eq!(r.ok(), "(\"OK\")");
    }

    /// Sends an RTJP frame with the next frame id; returns that id.
    pub async fn send(&mut self, name: &str, args: Value) -> i64 {
        let id = self.next_frame;
        self.next_frame += 1;
        self.send_text(&frame(id, name, args)).await;
        id
    }

    /// A comet request acknowledging everything received; returns the packets, checking that
    /// their ids continue the sequence, and queues their frames.
    pub async fn comet(&mut self) -> Vec<Packet> {
        let r = self
            .post("comet", &format!("a={}", self.acked), Vec::new())
            .await;
        let body = r.ok().to_owned();
        assert_eq!(r.content_type.as_deref(), Some(JS), "{r:?}");
        let packets = parse_batch(&body, "", "");
        for p in &packets {
            assert_eq!(
                p.id,
                self.acked + 1,
                "server packet ids count up by one: {body}"
            );
            self.acked = p.id;
            if p.data.is_null() {
                assert_eq!(p.encoding, 0, "{body}");
                self.closed_by_server = true;
                continue;
            }
            let text = packet_text(p);
            let f = parse_server_frame(&text, &mut self.last_server_frame);
            self.raw.push(text);
            self.frames.push_back(f);
        }
        packets
    }

    /// The next server frame, polling as `hookbox.js` does.
    pub async fn recv(&mut self) -> Frame {
        tokio::time::timeout(GUARD, async {
            loop {
                if let Some(f) = self.frames.pop_front() {
                    return f;
                }
                assert!(
                    !self.closed_by_server,
                    "session closed while waiting for a frame"
                );
                self.comet().await;
            }
        })
        .await
        .expect("timed out waiting for a CSP frame")
    }

    pub async fn expect(&mut self, name: &str) -> Map<String, Value> {
        let (_, got, args) = self.recv().await;
        assert_eq!(got, name, "expected {name}, got {got} {args:?}");
        args
    }
}

/// Checks `prefix{"session": "<32 lowercase hex>"}suffix` (with several nodes, the node's id and a
/// `-` in front) and returns the key.
pub fn session_key(body: &str, prefix: &str, suffix: &str) -> String {
    let json = body
        .strip_prefix(prefix)
        .and_then(|b| b.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("handshake body {body:?}"));
    let key = json
        .strip_prefix("{\"session\": \"")
        .and_then(|b| b.strip_suffix("\"}"))
        .unwrap_or_else(|| panic!("handshake body {body:?}"));
    // With several nodes the key starts with the node's id: `<16 hex>-<32 hex>`.
    let id = match key.split_once('-') {
        Some((node, id)) => {
            assert_eq!(node.len(), 16, "{body}");
            assert!(node.bytes().all(|b| b.is_ascii_hexdigit()), "{body}");
            id
        }
        None => key,
    };
    assert_eq!(id.len(), 32, "{body}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{body}"
    );
    key.to_owned()
}

/// The raw status line of a request, to check reason phrases reqwest does not expose.
pub async fn status_line(s: &Server, method: &str, target: &str) -> String {
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        s.addr
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(GUARD, sock.read_to_end(&mut buf))
        .await
        .expect("timed out")
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    text.split("\r\n").next().unwrap().to_owned()
}
