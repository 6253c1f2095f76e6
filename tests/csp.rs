//! The Comet Session Protocol at `/csp` (§3.2, §3.4) over real HTTP on loopback: handshake, send,
//! comet and close; JSONP wrapping and sticky variables; acks and re-delivery; long-poll and a
//! newer comet releasing a waiting one; the close cascade; bad input; the session cap; expiry.
//!
//! Waiting is on responses and recorded webhooks only. Long-poll timeouts are configured small
//! where a test needs an empty batch, and only the content is asserted, never the time taken.

mod common;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JS: &str = "application/javascript";
const NOT_FOUND_BODY: &str = "'Session not found'";
const NO_SESSION: &str = "0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// A CSP client

/// One HTTP answer, with the headers every CSP test looks at.
#[derive(Debug)]
struct Resp {
    status: u16,
    content_type: Option<String>,
    acao: Option<String>,
    body: String,
}

impl Resp {
    /// Asserts a 200 with `Access-Control-Allow-Origin: *` and returns the body.
    fn ok(&self) -> &str {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.acao.as_deref(), Some("*"), "{self:?}");
        &self.body
    }

    /// Asserts an error: `status`, ACAO `*`, and exactly `body`.
    fn assert_error(&self, status: u16, body: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.acao.as_deref(),
            Some("*"),
            "ACAO on errors too: {self:?}"
        );
        assert_eq!(self.body, body, "{self:?}");
    }
}

async fn fetch(req: reqwest::RequestBuilder) -> Resp {
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
    let status = resp.status().as_u16();
    let body = tokio::time::timeout(GUARD, resp.text())
        .await
        .expect("body timeout")
        .unwrap();
    Resp {
        status,
        content_type,
        acao,
        body,
    }
}

/// `[id, encoding, data]` as the server sent it.
#[derive(Debug, Clone, PartialEq)]
struct Packet {
    id: u64,
    encoding: u64,
    data: Value,
}

/// Parses `bp([...])bs` into packets.
fn parse_batch(body: &str, bp: &str, bs: &str) -> Vec<Packet> {
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
fn packet_text(p: &Packet) -> String {
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

/// Parses one RTJP frame line.
fn parse_frame(text: &str) -> (i64, String, Map<String, Value>) {
    let v: Value = serde_json::from_str(text.trim_end_matches("\r\n")).expect("frame is JSON");
    (
        v[0].as_i64().expect("frame id"),
        v[1].as_str().expect("frame name").to_owned(),
        v[2].as_object().expect("frame args").clone(),
    )
}

/// An RTJP frame as the client writes it.
fn frame(id: i64, name: &str, args: Value) -> String {
    format!("{}\r\n", json!([id, name, args]))
}

/// URL-safe base64 without padding, as the XHR transport of `hookbox.js` sends it.
fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The JSON of a one-packet send body.
fn packet_list(id: u64, text: &str) -> String {
    json!([[id, 1, b64(text)]]).to_string()
}

struct Csp {
    http: reqwest::Client,
    base: String,
    key: String,
    next_packet: u64,
    next_frame: i64,
    /// Highest server packet id received (sent as `a`).
    acked: u64,
    frames: VecDeque<(i64, String, Map<String, Value>)>,
    /// Decoded text of every server data packet, in order.
    raw: Vec<String>,
    last_server_frame: i64,
    /// The server's null packet arrived.
    closed_by_server: bool,
}

impl Csp {
    fn base(s: &Server) -> String {
        format!("http://{}/csp", s.addr)
    }

    fn new(s: &Server, key: String) -> Csp {
        Csp {
            http: reqwest::Client::new(),
            base: Csp::base(s),
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

    /// The XHR handshake of `hookbox.js`, checking the exact answer.
    async fn handshake(s: &Server) -> Csp {
        let r = fetch(
            reqwest::Client::new()
                .post(format!(
                    "{}/handshake?ct=application%2Fjavascript",
                    Csp::base(s)
                ))
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
        let body = r.ok();
        assert_eq!(r.content_type.as_deref(), Some(JS), "{r:?}");
        let key = session_key(body, "(", ")");
        Csp::new(s, key)
    }

    /// Handshake plus CONNECT with cookie `user=<name>`, through CONNECTED.
    async fn connected(s: &Server, name: &str) -> Csp {
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
    async fn subscribed(s: &Server, name: &str, channel: &str) -> Csp {
        let mut c = Csp::connected(s, name).await;
        c.send("SUBSCRIBE", json!({"channel_name": channel})).await;
        s.web.expect("create_channel").await;
        s.web.expect("subscribe").await;
        assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], channel);
        c
    }

    fn url(&self, endpoint: &str, query: &str) -> String {
        let sep = if query.is_empty() { "" } else { "&" };
        format!("{}/{endpoint}?s={}{sep}{query}", self.base, self.key)
    }

    async fn post(&self, endpoint: &str, query: &str, body: impl Into<reqwest::Body>) -> Resp {
        fetch(
            self.http
                .post(self.url(endpoint, query))
                .header("content-type", "text/plain")
                .body(body),
        )
        .await
    }

    async fn get(&self, endpoint: &str, query: &str) -> Resp {
        fetch(self.http.get(self.url(endpoint, query))).await
    }

    /// POSTs a raw `send` body (with the current ack).
    async fn send_raw(&self, d: &str) -> Resp {
        self.post("send", &format!("a={}", self.acked), d.to_owned())
            .await
    }

    /// Sends `text` as the next packet and checks the `("OK")` answer.
    async fn send_text(&mut self, text: &str) {
        let d = packet_list(self.next_packet, text);
        self.next_packet += 1;
        let r = self.send_raw(&d).await;
        assert_eq!(r.ok(), "(\"OK\")");
    }

    /// Sends an RTJP frame with the next frame id; returns that id.
    async fn send(&mut self, name: &str, args: Value) -> i64 {
        let id = self.next_frame;
        self.next_frame += 1;
        self.send_text(&frame(id, name, args)).await;
        id
    }

    /// A comet request acknowledging everything received; returns the packets, checking that
    /// their ids continue the sequence, and queues their frames.
    async fn comet(&mut self) -> Vec<Packet> {
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
            let f = parse_frame(&text);
            assert_eq!(
                f.0,
                self.last_server_frame + 1,
                "server frame ids count up by one"
            );
            self.last_server_frame = f.0;
            self.raw.push(text);
            self.frames.push_back(f);
        }
        packets
    }

    /// The next server frame, polling as `hookbox.js` does.
    async fn recv(&mut self) -> (i64, String, Map<String, Value>) {
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

    async fn expect(&mut self, name: &str) -> Map<String, Value> {
        let (_, got, args) = self.recv().await;
        assert_eq!(got, name, "expected {name}, got {got} {args:?}");
        args
    }
}

/// Checks `prefix{"session": "<32 lowercase hex>"}suffix` and returns the key.
fn session_key(body: &str, prefix: &str, suffix: &str) -> String {
    let json = body
        .strip_prefix(prefix)
        .and_then(|b| b.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("handshake body {body:?}"));
    let key = json
        .strip_prefix("{\"session\": \"")
        .and_then(|b| b.strip_suffix("\"}"))
        .unwrap_or_else(|| panic!("handshake body {body:?}"));
    assert_eq!(key.len(), 32, "{body}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{body}"
    );
    key.to_owned()
}

/// The raw status line of a request, to check reason phrases reqwest does not expose.
async fn status_line(s: &Server, method: &str, target: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// Handshake

#[tokio::test]
async fn handshake_xhr_and_jsonp() {
    let s = Server::start().await;
    let http = reqwest::Client::new();
    let base = Csp::base(&s);

    // XHR: POST with the body `{}`.
    let xhr = Csp::handshake(&s).await;

    // JSONP: GET with `d`, a cache buster, and rp/rs.
    let r = fetch(http.get(format!(
        "{base}/handshake?d=%7B%7D&ct=application%2Fjavascript&n=8812&rs=%3B&rp=cb1"
    )))
    .await;
    assert_eq!(r.content_type.as_deref(), Some(JS));
    let key = session_key(r.ok(), "cb1(", ");");
    assert_ne!(key, xhr.key, "every handshake makes a new session");

    // Without `ct` the content type is text/html.
    let r = fetch(http.post(format!("{base}/handshake")).body("{}")).await;
    assert_eq!(r.content_type.as_deref(), Some("text/html"));
    session_key(r.ok(), "(", ")");

    // An unknown content type is ignored (the body reflects wrappers, so no arbitrary types).
    let r = fetch(
        http.post(format!("{base}/handshake?ct=text%2Fxml"))
            .body("{}"),
    )
    .await;
    assert_eq!(r.content_type.as_deref(), Some("text/html"));
    session_key(r.ok(), "(", ")");
}

#[tokio::test]
async fn options_preflight_and_reflect() {
    let s = Server::start().await;
    let r = fetch(
        reqwest::Client::new().request(reqwest::Method::OPTIONS, format!("{}/send", Csp::base(&s))),
    )
    .await;
    assert_eq!(r.ok(), "");
    let c = Csp::handshake(&s).await;
    let r = c.get("reflect", "d=hello%20there").await;
    assert_eq!(r.ok(), "hello there");
    assert_eq!(r.content_type.as_deref(), Some("text/plain"));
}

// ---------------------------------------------------------------------------------------------
// The client flow (§3.4)

#[tokio::test]
async fn connect_subscribe_publish_with_non_ascii_payloads() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"presenceful": true, "history_size": 5}));
    let mut c = Csp::handshake(&s).await;

    c.send(
        "CONNECT",
        json!({"cookie_string": "user=alice", "payload": "{\"hello\": \"w\u{e9}\"}"}),
    )
    .await;
    let hook = s.web.expect("connect").await;
    assert_eq!(hook.header("cookie"), Some("user=alice"));
    assert_eq!(hook.field("payload"), Some("{\"hello\": \"w\u{e9}\"}"));
    let args = c.expect("CONNECTED").await;
    assert_eq!(args["name"], "alice");
    assert_eq!(args["payload"], "{\"hello\": \"w\u{e9}\"}");
    assert!(
        c.raw[0].contains("w\\u00e9"),
        "non-ASCII escaped: {:?}",
        c.raw[0]
    );

    c.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    s.web.expect("create_channel").await;
    assert_eq!(
        s.web.expect("subscribe").await.field("channel_name"),
        Some("room")
    );
    let args = c.expect("SUBSCRIBE").await;
    assert_eq!(args["channel_name"], "room");
    assert_eq!(args["user"], "alice");
    assert_eq!(args["presence"], json!(["alice"]));
    assert_eq!(args["history_size"], 5);

    c.send(
        "PUBLISH",
        json!({"channel_name": "room", "payload": "{\"msg\": \"h\u{e9}llo \u{2603} \u{1F600}\"}"}),
    )
    .await;
    let hook = s.web.expect("publish").await;
    assert_eq!(hook.field("channel_name"), Some("room"));
    let args = c.expect("PUBLISH").await;
    assert_eq!(args["channel_name"], "room");
    assert_eq!(args["user"], "alice");
    assert_eq!(
        args["payload"],
        json!({"msg": "h\u{e9}llo \u{2603} \u{1F600}"})
    );
    assert_datetime(&args["datetime"]);
    let raw = c.raw.last().unwrap();
    assert!(
        raw.contains("h\\u00e9llo \\u2603 \\ud83d\\ude00"),
        "{raw:?}"
    );

    c.send(
        "PUBLISH",
        json!({"channel_name": "room", "payload": "not json"}),
    )
    .await;
    let args = c.expect("ERROR").await;
    assert_eq!(args["msg"], "Invalid json for payload");
    assert_eq!(args["id"], 4);
}

#[tokio::test]
async fn several_frames_go_out_in_one_comet_response() {
    let s = Server::start().await;
    let c = Csp::subscribed(&s, "alice", "room").await;
    assert_eq!(c.acked, 2);
    // API publishes return once the frames are queued for the session.
    // "~~~" and "???" encode to the two characters where the base64 alphabets differ.
    s.api_ok(
        "publish",
        &[("channel_name", "room"), ("payload", "\"~~~~~~??????\"")],
    )
    .await;
    s.api_ok(
        "publish",
        &[("channel_name", "room"), ("payload", "\"\u{e9}\"")],
    )
    .await;
    let r = c.post("comet", "a=2", "").await;
    let packets = parse_batch(r.ok(), "", "");
    assert_eq!(
        packets.iter().map(|p| p.id).collect::<Vec<_>>(),
        [3, 4],
        "{}",
        r.body
    );
    let expected = format!(
        "([[3, 1, {}], [4, 1, {}]])",
        packets[0].data, packets[1].data
    );
    assert_eq!(r.body, expected);
    let data = packets[0].data.as_str().unwrap();
    assert!(
        data.contains('-') && data.contains('_'),
        "URL-safe alphabet: {data}"
    );
    let (id, name, args) = parse_frame(&packet_text(&packets[0]));
    assert_eq!(
        (id, name.as_str(), &args["payload"]),
        (3, "PUBLISH", &json!("~~~~~~??????"))
    );
    let text = packet_text(&packets[1]);
    assert!(text.contains("\"\\u00e9\""), "{text:?}");
    let (id, name, args) = parse_frame(&text);
    assert_eq!(
        (id, name.as_str(), &args["payload"]),
        (4, "PUBLISH", &json!("\u{e9}"))
    );
}

// ---------------------------------------------------------------------------------------------
// Send: encodings, padding, JSONP, the body overriding `d`

#[tokio::test]
async fn send_accepts_raw_and_padded_or_unpadded_base64_and_split_frames() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = Csp::handshake(&s).await;

    // Encoding 0: the raw string.
    let connect = frame(1, "CONNECT", json!({"cookie_string": "user=bob"}));
    assert_eq!(
        c.send_raw(&json!([[1, 0, connect]]).to_string()).await.ok(),
        "(\"OK\")"
    );
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], "bob");

    // Two packets in one request: base64 with `=` padding, then without.
    let mut padded_frame = frame(2, "SUBSCRIBE", json!({"channel_name": "padded"}));
    while padded_frame.len() % 3 == 0 {
        padded_frame.insert(1, ' ');
    }
    let padded = URL_SAFE.encode(&padded_frame);
    assert!(padded.ends_with('='), "{padded}");
    let mut bare_frame = frame(3, "SUBSCRIBE", json!({"channel_name": "bare"}));
    while bare_frame.len() % 3 == 0 {
        bare_frame.insert(1, ' ');
    }
    let bare = b64(&bare_frame);
    assert_ne!(bare.len() % 4, 0, "{bare}");
    let d = json!([[2, 1, padded], [3, 1, bare]]).to_string();
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "padded");
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "bare");

    // The decoded packets are one byte stream: a frame may span packets, even inside a UTF-8
    // character.
    let publish = frame(
        4,
        "PUBLISH",
        json!({"channel_name": "bare", "payload": "\"\u{2603}\""}),
    );
    let bytes = publish.as_bytes();
    let cut = publish.find('\u{2603}').unwrap() + 1;
    let d = json!([
        [4, 1, URL_SAFE_NO_PAD.encode(&bytes[..cut])],
        [5, 1, URL_SAFE_NO_PAD.encode(&bytes[cut..])]
    ])
    .to_string();
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
    let args = c.expect("PUBLISH").await;
    assert_eq!(args["payload"], "\u{2603}");
    assert_eq!(args["user"], "bob");
}

#[tokio::test]
async fn jsonp_send_and_comet_wrapping_is_sticky() {
    let s = Server::start().await;
    let http = reqwest::Client::new();
    let base = Csp::base(&s);
    let r = fetch(http.get(format!(
        "{base}/handshake?d=%7B%7D&ct=application%2Fjavascript&n=1&rs=%3B&rp=cb1"
    )))
    .await;
    let key = session_key(r.ok(), "cb1(", ");");
    let c = Csp::new(&s, key);

    // JSONP send: GET with `d`, always base64.
    let d = packet_list(
        1,
        &frame(1, "CONNECT", json!({"cookie_string": "user=carol"})),
    );
    let r = c
        .get("send", &format!("d={}&a=0&n=2&rs=%3B&rp=cb2", enc(&d)))
        .await;
    assert_eq!(r.ok(), "cb2(\"OK\");");
    assert_eq!(r.content_type.as_deref(), Some(JS));
    s.web.expect("connect").await;

    // JSONP comet: bp/bs around the batch; the streaming flags are accepted and ignored.
    let r = c.get("comet", "a=0&n=3&bs=%3B&bp=cb3&is=0&i=0&g=1").await;
    let packets = parse_batch(r.ok(), "cb3", ";");
    assert_eq!(r.content_type.as_deref(), Some(JS));
    assert_eq!(packets.len(), 1, "{}", r.body);
    let (_, name, args) = parse_frame(&packet_text(&packets[0]));
    assert_eq!(
        (name.as_str(), &args["name"]),
        ("CONNECTED", &json!("carol"))
    );
    assert!(r.body.starts_with("cb3([[1, 1, \""), "{}", r.body);

    // The wrappers are sticky: later requests without them are wrapped the same way.
    let d = packet_list(2, &frame(2, "SUBSCRIBE", json!({"channel_name": "jsonp"})));
    assert_eq!(c.post("send", "a=1", d).await.ok(), "cb2(\"OK\");");
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    let r = c.get("comet", "a=1&n=4").await;
    let packets = parse_batch(r.ok(), "cb3", ";");
    assert_eq!(packets.len(), 1, "{}", r.body);
    assert_eq!(packets[0].id, 2);
    assert_eq!(parse_frame(&packet_text(&packets[0])).1, "SUBSCRIBE");

    // Unsafe wrappers are ignored (they would be reflected into a script).
    let r = c.get("send", "d=%5B%5D&rp=%3Cscript%3E").await;
    assert_eq!(r.ok(), "cb2(\"OK\");");
}

#[tokio::test]
async fn post_body_overrides_d_in_the_query() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = Csp::handshake(&s).await;

    // A bogus `d` in the query loses to the body.
    let body = packet_list(
        1,
        &frame(1, "CONNECT", json!({"cookie_string": "user=dora"})),
    );
    let r = c
        .post("send", &format!("a=0&d={}", enc("garbage")), body)
        .await;
    assert_eq!(r.ok(), "(\"OK\")");
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], "dora");

    // A good `d` in the query loses to a bad body: nothing of the query is used.
    let query_d = packet_list(
        2,
        &frame(2, "SUBSCRIBE", json!({"channel_name": "from-query"})),
    );
    let r = c
        .post("send", &format!("a=1&d={}", enc(&query_d)), "not json")
        .await;
    r.assert_error(
        400,
        "'Invalid packet list (expected a JSON list of [id, encoding, data])'",
    );

    // So packet 2 is still expected.
    c.next_packet = 2;
    c.next_frame = 2;
    c.send("SUBSCRIBE", json!({"channel_name": "from-body"}))
        .await;
    s.web.expect("create_channel").await;
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "from-body");
}

// ---------------------------------------------------------------------------------------------
// Comet: acks, re-delivery, long-poll, release, wrapping

#[tokio::test]
async fn packets_are_redelivered_until_acknowledged() {
    let s = Server::start().await;
    let c = Csp::handshake(&s).await;
    let d = packet_list(
        1,
        &frame(1, "CONNECT", json!({"cookie_string": "user=erin"})),
    );
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
    s.web.expect("connect").await;

    // Without `a`, the same packet comes again (a lost response loses nothing).
    let first = c.post("comet", "", "").await.ok().to_owned();
    let packets = parse_batch(&first, "", "");
    assert_eq!(packets.iter().map(|p| p.id).collect::<Vec<_>>(), [1]);
    assert_eq!(parse_frame(&packet_text(&packets[0])).1, "CONNECTED");
    assert_eq!(c.post("comet", "", "").await.ok(), first);
    assert_eq!(c.post("comet", "a=0", "").await.ok(), first);

    // `a=1` drops packet 1; the comet then waits for packet 2.
    let d = packet_list(2, &frame(2, "SUBSCRIBE", json!({"channel_name": "acks"})));
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    let second = c.post("comet", "a=1", "").await.ok().to_owned();
    let packets = parse_batch(&second, "", "");
    assert_eq!(
        packets.iter().map(|p| p.id).collect::<Vec<_>>(),
        [2],
        "{second}"
    );
    assert_eq!(parse_frame(&packet_text(&packets[0])).1, "SUBSCRIBE");
    assert_eq!(c.post("comet", "", "").await.ok(), second);

    // An ack on a send request counts too.
    s.api_ok("publish", &[("channel_name", "acks"), ("payload", "3")])
        .await;
    let third = c.post("comet", "a=2", "").await.ok().to_owned();
    assert_eq!(parse_batch(&third, "", "")[0].id, 3);
    assert_eq!(c.post("send", "a=3", "[]").await.ok(), "(\"OK\")");
    assert_eq!(c.post("comet", "du=0", "").await.ok(), "([])");
}

#[tokio::test]
async fn long_poll_returns_an_empty_batch_after_the_poll_timeout() {
    let s = Server::start_with(|c| c.csp_poll_timeout = Duration::from_millis(200)).await;
    let mut c = Csp::handshake(&s).await;
    // `du` defaults to 30 s; the configured poll timeout caps it.
    let r = c.post("comet", "", "").await;
    assert_eq!(r.ok(), "([])");
    assert_eq!(r.content_type.as_deref(), Some(JS));
    assert_eq!(c.post("comet", "du=60", "").await.ok(), "([])");
    assert_eq!(c.post("comet", "du=0", "").await.ok(), "([])");
    // bp/bs wrap an empty batch too.
    assert_eq!(c.post("comet", "bp=cb9&bs=%3B", "").await.ok(), "cb9([]);");
    assert_eq!(c.post("comet", "bp=&bs=", "").await.ok(), "([])");

    // The session still works, whatever comets time out meanwhile.
    c.send("CONNECT", json!({"cookie_string": "user=fred"}))
        .await;
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], "fred");
}

#[tokio::test]
async fn a_newer_comet_releases_a_waiting_one() {
    // The default 30 s long-poll: a waiting comet returns only when released (or data arrives).
    let s = Server::start().await;
    let c = Csp::subscribed(&s, "gina", "room").await;
    let acked = c.acked;

    // Comet A waits. It marks the session with the sticky `rp`, which send answers reveal.
    let a_url = c.url("comet", &format!("a={acked}&rp=cbA"));
    let a = tokio::spawn(fetch(c.http.post(a_url)));
    loop {
        let r = c.post("send", "", "[]").await;
        match r.ok() {
            "cbA(\"OK\")" => break,
            "(\"OK\")" => continue,
            other => panic!("unexpected send answer {other:?}"),
        }
    }
    // Comet B, long `du`: A must return `([])` now, before any data exists.
    let b_url = c.url("comet", &format!("a={acked}&rp=&du=60"));
    let b = tokio::spawn(fetch(c.http.post(b_url)));
    let a = tokio::time::timeout(GUARD, a)
        .await
        .expect("comet A was not released")
        .unwrap();
    assert_eq!(a.ok(), "([])");

    // Data arrives: B returns it.
    s.api_ok(
        "publish",
        &[("channel_name", "room"), ("payload", "\"for B\"")],
    )
    .await;
    let b = tokio::time::timeout(GUARD, b)
        .await
        .expect("comet B did not return")
        .unwrap();
    let packets = parse_batch(b.ok(), "", "");
    assert_eq!(
        packets.iter().map(|p| p.id).collect::<Vec<_>>(),
        [acked + 1]
    );
    let (_, name, args) = parse_frame(&packet_text(&packets[0]));
    assert_eq!(
        (name.as_str(), &args["payload"]),
        ("PUBLISH", &json!("for B"))
    );
}

#[tokio::test]
async fn comet_padding_prebuffer_and_sse_suffix() {
    let s = Server::start().await;
    let c = Csp::handshake(&s).await;
    assert_eq!(
        c.post("comet", "du=0&ps=3&p=pre&se=1", "").await.ok(),
        "   pre([])\r\n"
    );
    let d = packet_list(
        1,
        &frame(1, "CONNECT", json!({"cookie_string": "user=hal"})),
    );
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
    s.web.expect("connect").await;
    // Sticky: the same padding and suffix, now with the last id.
    let r = c.post("comet", "du=30", "").await;
    let body = r.ok();
    let batch = body
        .strip_prefix("   pre")
        .and_then(|b| b.strip_suffix("id: 1\r\n\r\n"))
        .unwrap_or_else(|| panic!("{body:?}"));
    let packets = parse_batch(batch, "", "");
    assert_eq!(parse_frame(&packet_text(&packets[0])).1, "CONNECTED");
    assert_eq!(
        c.post("comet", "a=1&du=0&ps=0&p=&se=0", "").await.ok(),
        "([])"
    );
}

// ---------------------------------------------------------------------------------------------
// Close: the close endpoint, the client's null packet

/// Checks the webhooks of a subscribed user's disconnect cascade, in order.
async fn expect_cascade(s: &Server, user: &str, channel: &str) {
    let hook = s.web.expect("unsubscribe").await;
    assert_eq!(
        (hook.field("channel_name"), hook.field("user")),
        (Some(channel), Some(user))
    );
    assert_eq!(hook.header("cookie"), Some(format!("user={user}").as_str()));
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some(channel)
    );
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some(user));
}

#[tokio::test]
async fn close_endpoint_runs_the_cascade_and_queues_the_null_packet() {
    let s = Server::start().await;
    let c = Csp::subscribed(&s, "ivan", "room").await;
    assert_eq!(c.acked, 2);
    let r = c.post("close", "", "").await;
    assert_eq!(r.ok(), "(\"OK\")");
    assert_eq!(r.content_type.as_deref(), Some(JS));
    expect_cascade(&s, "ivan", "room").await;
    // The server's null packet follows the acknowledged ones; nothing after the close.
    assert_eq!(c.post("comet", "a=2", "").await.ok(), "([[3, 0, null]])");
    // The client answers with its own null packet, acknowledging the server's.
    assert_eq!(
        c.post("send", "a=3", "[[3, 0, null]]").await.ok(),
        "(\"OK\")"
    );
    assert_eq!(c.post("comet", "a=3&du=0", "").await.ok(), "([])");
    assert!(s.web.drain().await.is_empty());
}

#[tokio::test]
async fn client_null_packet_runs_the_cascade() {
    let s = Server::start().await;
    let c = Csp::subscribed(&s, "judy", "room").await;
    assert_eq!(c.send_raw("[[3, 0, null]]").await.ok(), "(\"OK\")");
    expect_cascade(&s, "judy", "room").await;
    assert_eq!(c.post("comet", "a=2", "").await.ok(), "([[3, 0, null]])");
    // Acknowledging the null packet (as every later request of the client does).
    assert_eq!(c.post("comet", "a=3&du=0", "").await.ok(), "([])");
    assert_eq!(c.post("send", "a=3", "[]").await.ok(), "(\"OK\")");
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[tokio::test]
async fn unknown_endpoint_and_unknown_session() {
    let s = Server::start().await;
    let http = reqwest::Client::new();
    let base = Csp::base(&s);
    for r in [
        fetch(http.get(format!("{base}/bogus"))).await,
        fetch(http.post(format!("{base}/bogus?s={NO_SESSION}")).body("x")).await,
    ] {
        r.assert_error(404, "");
    }
    for endpoint in ["comet", "send", "close", "reflect"] {
        let r = fetch(
            http.post(format!("{base}/{endpoint}?s={NO_SESSION}&a=0"))
                .body("[[1, 0, \"x\"]]"),
        )
        .await;
        r.assert_error(404, NOT_FOUND_BODY);
        let r = fetch(http.get(format!(
            "{base}/{endpoint}?s={NO_SESSION}&d=%5B%5D&rp=cb1&rs=%3B"
        )))
        .await;
        r.assert_error(404, NOT_FOUND_BODY);
        let r = fetch(http.get(format!("{base}/{endpoint}"))).await;
        r.assert_error(404, NOT_FOUND_BODY);
        // The status line carries the reason the original sent.
        let line = status_line(&s, "POST", &format!("/csp/{endpoint}?s={NO_SESSION}")).await;
        assert_eq!(line, "HTTP/1.1 404 Session not found");
    }
    // A live session's key does not make another session's key valid.
    let c = Csp::handshake(&s).await;
    let other: String = c.key.chars().rev().collect();
    assert_ne!(other, c.key);
    fetch(http.post(format!("{base}/comet?s={other}")))
        .await
        .assert_error(404, NOT_FOUND_BODY);
    assert_eq!(c.post("comet", "du=0", "").await.ok(), "([])");
}

#[tokio::test]
async fn malformed_sends_are_refused_without_effect() {
    let s = Server::start_with(|c| {
        c.csp_max_sessions = 2;
        c.max_message_size = 1024;
    })
    .await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = Csp::connected(&s, "kim").await;
    let subscribe = |channel: &str| frame(2, "SUBSCRIBE", json!({"channel_name": channel}));

    let cases: Vec<(String, &str)> = vec![
        ("[[2, 1, \"!!!\"]]".into(), "'Invalid base64 in packet 2'"),
        ("[[2, 1, \"YWJj*\"]]".into(), "'Invalid base64 in packet 2'"),
        (
            "hello".into(),
            "'Invalid packet list (expected a JSON list of [id, encoding, data])'",
        ),
        (
            "{\"a\": 1}".into(),
            "'Invalid packet list (expected a JSON list of [id, encoding, data])'",
        ),
        ("[[2, 1]]".into(), "'Invalid packet 0'"),
        ("[[2, 7, \"x\"]]".into(), "'Invalid packet 0'"),
        ("[[\"2\", 0, \"x\"]]".into(), "'Invalid packet 0'"),
        // A gap: id 3 after 1.
        (
            packet_list(3, &subscribe("gap")),
            "'Packet id 3 out of order (expected 2)'",
        ),
        // A good packet followed by a gap: the whole request is refused, nothing delivered.
        (
            json!([[2, 1, b64(&subscribe("partial"))], [4, 0, "x"]]).to_string(),
            "'Packet id 4 out of order (expected 3)'",
        ),
    ];
    for (d, body) in &cases {
        let r = c.send_raw(d).await;
        r.assert_error(400, body);
        assert_eq!(r.content_type.as_deref(), Some("text/html"), "{d}");
    }

    // Missing `d`: an empty POST body, or a GET without it.
    c.post("send", "a=1", "")
        .await
        .assert_error(400, "'Missing packet data (d)'");
    c.get("send", "a=1")
        .await
        .assert_error(400, "'Missing packet data (d)'");
    // Not UTF-8.
    c.post("send", "", vec![0xffu8, 0xfe, b'['])
        .await
        .assert_error(400, "'Request body is not UTF-8'");
    // A huge body (over twice the message size limit).
    let huge = format!("[[2, 0, \"{}\"]]", "x".repeat(4 * 1024));
    c.send_raw(&huge)
        .await
        .assert_error(413, "'Request body too large'");

    // A duplicate (id ≤ last) is skipped silently: no second CONNECT (which would answer ERROR).
    let again = packet_list(
        1,
        &frame(1, "CONNECT", json!({"cookie_string": "user=kim"})),
    );
    assert_eq!(c.send_raw(&again).await.ok(), "(\"OK\")");

    // The session survived all of it: packet 2 is still the next one, and the next frame the
    // server sends answers it (a re-run CONNECT would have answered first).
    c.send_text(&subscribe("ok")).await;
    s.web.expect("create_channel").await;
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "ok");
    assert!(
        s.web.drain().await.is_empty(),
        "no hook from a refused packet"
    );

    // No session leaked: exactly one more fits under the cap of two.
    let second = Csp::handshake(&s).await;
    let r = fetch(
        reqwest::Client::new()
            .post(format!(
                "{}/handshake?ct=application%2Fjavascript",
                Csp::base(&s)
            ))
            .body("{}"),
    )
    .await;
    r.assert_error(503, "'Too many sessions'");
    assert_eq!(second.post("comet", "du=0", "").await.ok(), "([])");
}

// ---------------------------------------------------------------------------------------------
// The session cap, expiry, the admin prefix

#[tokio::test]
async fn session_cap_refuses_handshakes_until_a_session_is_reclaimed() {
    let s = Server::start_with(|c| {
        c.csp_max_sessions = 2;
        c.csp_session_timeout = Duration::from_secs(1);
    })
    .await;
    let http = reqwest::Client::new();
    let handshake_url = format!("{}/handshake?ct=application%2Fjavascript", Csp::base(&s));
    let a = Csp::connected(&s, "leo").await;
    let _b = Csp::handshake(&s).await;
    let r = fetch(http.post(&handshake_url).body("{}")).await;
    r.assert_error(503, "'Too many sessions'");
    let r = fetch(http.get(format!("{handshake_url}&d=%7B%7D&rp=cb1&rs=%3B"))).await;
    r.assert_error(503, "'Too many sessions'");

    // Both sessions are abandoned; the connected one's disconnect proves it was reclaimed.
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("leo"));
    a.post("comet", "", "")
        .await
        .assert_error(404, NOT_FOUND_BODY);
    let mut c = Csp::handshake(&s).await;
    c.send("CONNECT", json!({"cookie_string": "user=mia"}))
        .await;
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], "mia");
}

#[tokio::test]
async fn abandoned_session_expires_with_the_disconnect_cascade() {
    let s = Server::start_with(|c| c.csp_session_timeout = Duration::from_millis(500)).await;
    let c = Csp::subscribed(&s, "nina", "room").await;
    // No more requests: the session is reclaimed with the usual cascade, in order.
    expect_cascade(&s, "nina", "room").await;
    for endpoint in ["comet", "send", "close"] {
        c.post(endpoint, "a=2", "[]")
            .await
            .assert_error(404, NOT_FOUND_BODY);
    }
}

#[tokio::test]
async fn a_waiting_comet_keeps_the_session_alive() {
    // The long-poll (1.5 s) outlasts the idle timeout (0.5 s): a request in flight is activity.
    let s = Server::start_with(|c| {
        c.csp_session_timeout = Duration::from_millis(500);
        c.csp_poll_timeout = Duration::from_millis(1500);
    })
    .await;
    let c = Csp::connected(&s, "olga").await;
    assert_eq!(c.post("comet", "a=1", "").await.ok(), "([])");
    assert_eq!(c.post("comet", "a=1&du=0", "").await.ok(), "([])");
    assert!(
        s.web.drain().await.is_empty(),
        "no disconnect while polling"
    );
}

#[tokio::test]
async fn admin_csp_does_not_reach_client_sessions() {
    let s = Server::start_with(|c| c.csp_max_sessions = 1).await;
    let http = reqwest::Client::new();
    let admin = format!("http://{}/admin/csp", s.addr);
    let r = fetch(
        http.post(format!("{admin}/handshake?ct=application%2Fjavascript"))
            .body("{}"),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = fetch(http.get(format!("{admin}/handshake?d=%7B%7D&rp=cb1&rs=%3B"))).await;
    assert_eq!(r.status, 404, "{r:?}");

    // The one allowed client session is still free; a client key means nothing under /admin.
    let c = Csp::connected(&s, "pete").await;
    let r = fetch(http.post(format!("{admin}/comet?s={}&a=0", c.key))).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = fetch(http.post(format!("{admin}/close?s={}", c.key))).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = fetch(http.post(format!("{}/handshake", Csp::base(&s))).body("{}")).await;
    r.assert_error(503, "'Too many sessions'");
    // The client session was not closed through /admin.
    assert_eq!(c.post("comet", "a=1&du=0", "").await.ok(), "([])");
    assert!(s.web.drain().await.is_empty());
}

#[tokio::test]
async fn server_side_disconnect_sends_the_null_packet() {
    let s = Server::start().await;
    let mut c = Csp::subscribed(&s, "quinn", "room").await;
    let r = s.api_ok("disconnect", &[("name", "quinn")]).await;
    assert_eq!(r, json!({"connections": 1}));
    expect_cascade(&s, "quinn", "room").await;
    // Whatever frames were queued come first; the null packet ends the session.
    while !c.closed_by_server {
        c.comet().await;
    }
    assert!(
        c.frames.iter().all(|(_, name, _)| name != "PUBLISH"),
        "{:?}",
        c.frames
    );
}

#[tokio::test]
async fn an_unfinished_frame_over_the_size_limit_closes_the_session() {
    // Each request is small; together they buffer more than max_message_size of one frame.
    let s = Server::start_with(|c| c.max_message_size = 1024).await;
    let mut c = Csp::connected(&s, "rosa").await;
    let big = frame(
        2,
        "PUBLISH",
        json!({"channel_name": "x", "payload": format!("\"{}\"", "y".repeat(2000))}),
    );
    c.send_text(&big[..600]).await;
    c.send_text(&big[600..1200]).await;
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("rosa"));
    while !c.closed_by_server {
        c.comet().await;
    }
    assert!(
        c.frames.is_empty(),
        "nothing delivered for the oversized frame: {:?}",
        c.frames
    );
    // The rest of the frame finds no session task; the request is still answered.
    let d = packet_list(c.next_packet, &big[1200..]);
    assert_eq!(c.send_raw(&d).await.ok(), "(\"OK\")");
}

#[tokio::test]
async fn a_client_vanishing_during_a_comet_is_still_reclaimed() {
    // The browser tab closes while its long-poll is open: the request is abandoned mid-way.
    let s = Server::start_with(|c| {
        c.csp_session_timeout = Duration::from_millis(500);
        c.csp_poll_timeout = Duration::from_secs(1);
    })
    .await;
    let c = Csp::connected(&s, "vera").await;
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "POST /csp/comet?s={}&a=1&rp=cbV HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
        c.key, s.addr
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    // The comet is at the server once a send answer shows its sticky `rp`.
    while c.post("send", "", "[]").await.ok() != "cbV(\"OK\")" {}
    drop(sock);
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("vera"));
    c.post("comet", "", "")
        .await
        .assert_error(404, NOT_FOUND_BODY);
}
