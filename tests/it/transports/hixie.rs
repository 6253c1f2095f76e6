//! The legacy hixie-75 WebSocket at `/ws` (§3.3, §10.3), spoken at the socket level the way
//! python-hookboxclient does: its hand-written handshake (no Origin, a stray CRLF after it), the
//! header block read line by line, `0x00 … 0xFF` frames, and `0xFF 0x00` to close.

use crate::common;
use common::*;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Hixie {
    sock: TcpStream,
    buf: Vec<u8>,
    next_id: i64,
    last_server_id: i64,
    /// The text of every server frame, `\r\n` included.
    raw: Vec<String>,
}

/// The status line and headers (lower-cased names) of the handshake answer.
struct Handshake {
    status_line: String,
    headers: Vec<(String, String)>,
}

impl Handshake {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Hixie {
    /// Sends `request` (the whole handshake, plus whatever follows it) and reads the answer's
    /// header block up to the empty line, as python-hookboxclient does.
    async fn open(s: &Server, request: &str) -> (Hixie, Handshake) {
        let mut sock = TcpStream::connect(s.addr).await.unwrap();
        sock.write_all(request.as_bytes()).await.unwrap();
        let mut c = Hixie {
            sock,
            buf: Vec::new(),
            next_id: 1,
            last_server_id: 0,
            raw: Vec::new(),
        };
        let end = loop {
            if let Some(pos) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos;
            }
            c.read_more().await;
        };
        let head = String::from_utf8(c.buf[..end].to_vec()).expect("ASCII header block");
        c.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_owned();
        let headers = lines
            .map(|l| {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("header line {l:?}"));
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        (
            c,
            Handshake {
                status_line,
                headers,
            },
        )
    }

    /// The python-hookboxclient handshake to `/ws`: no Origin, then an extra CRLF.
    async fn python_client(s: &Server) -> Hixie {
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n\r\n",
            s.addr
        );
        let (c, hs) = Hixie::open(s, &req).await;
        assert_eq!(hs.status_line, "HTTP/1.1 101 Web Socket Protocol Handshake");
        assert_eq!(hs.header("upgrade"), Some("WebSocket"));
        assert_eq!(hs.header("connection"), Some("Upgrade"));
        assert_eq!(
            hs.header("websocket-location"),
            Some(format!("ws://{}/ws", s.addr).as_str())
        );
        assert_eq!(hs.header("websocket-origin"), None, "no Origin was sent");
        assert_eq!(hs.header("sec-websocket-accept"), None);
        c
    }

    async fn read_more(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(GUARD, self.sock.read(&mut chunk))
            .await
            .expect("timed out reading from the server")
            .expect("read error");
        assert!(n > 0, "connection closed by the server");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).await.unwrap();
    }

    /// Sends `\x00[id, name, args]\r\n\xff`; returns the id.
    async fn send(&mut self, name: &str, args: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut bytes = vec![0x00];
        bytes.extend_from_slice(frame(id, name, args).as_bytes());
        bytes.push(0xff);
        self.write(&bytes).await;
        id
    }

    /// The next server frame: `\x00` + one RTJP line ending in `\r\n` + `\xff`, ASCII only.
    async fn recv(&mut self) -> Frame {
        let end = loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == 0xff) {
                break pos;
            }
            self.read_more().await;
        };
        assert_eq!(
            self.buf[0], 0x00,
            "a frame starts with 0x00: {:?}",
            self.buf
        );
        let text = String::from_utf8(self.buf[1..end].to_vec()).expect("UTF-8 frame");
        self.buf.drain(..=end);
        assert!(text.is_ascii(), "server output must be ASCII: {text:?}");
        assert!(
            text.ends_with("\r\n"),
            "every server frame ends in \\r\\n: {text:?}"
        );
        assert_eq!(
            text.matches("\r\n").count(),
            1,
            "one RTJP frame per WebSocket frame: {text:?}"
        );
        let f = parse_server_frame(&text, &mut self.last_server_id);
        self.raw.push(text);
        f
    }

    async fn expect(&mut self, name: &str) -> Map<String, Value> {
        let (_, got, args) = self.recv().await;
        assert_eq!(got, name, "expected {name}, got {got} {args:?}");
        args
    }

    /// Reads until the server closes the connection; returns what came meanwhile.
    async fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buf);
        tokio::time::timeout(GUARD, self.sock.read_to_end(&mut rest))
            .await
            .expect("the server did not close the connection")
            .ok();
        rest
    }
}

/// CONNECT with only `cookie_string`, as python-hookboxclient sends it.
async fn connected(s: &Server, name: &str) -> Hixie {
    let mut c = Hixie::python_client(s).await;
    c.send("CONNECT", json!({"cookie_string": format!("user={name}")}))
        .await;
    let hook = s.web.expect("connect").await;
    assert_eq!(hook.header("cookie"), Some(format!("user={name}").as_str()));
    assert_eq!(hook.field("payload"), Some("null"));
    assert_eq!(c.expect("CONNECTED").await["name"], name);
    c
}

#[tokio::test]
async fn python_client_connect_subscribe_publish_close() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"reflective": true, "presenceful": true, "moderated": false}));
    let mut c = connected(&s, "py").await;

    c.send("SUBSCRIBE", json!({"channel_name": "lobby"})).await;
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("lobby")
    );
    // python-hookboxclient takes a SUBSCRIBE frame containing `presence` as its own subscription.
    let args = c.expect("SUBSCRIBE").await;
    assert_eq!(args["channel_name"], "lobby");
    assert_eq!(args["user"], "py");
    assert_eq!(args["presence"], json!(["py"]));

    // The echo on a reflective channel has user, payload and datetime.
    c.send(
        "PUBLISH",
        json!({"channel_name": "lobby", "payload": "{\"text\": \"h\u{e9}llo \u{2603}\"}"}),
    )
    .await;
    let args = c.expect("PUBLISH").await;
    assert_eq!(args["channel_name"], "lobby");
    assert_eq!(args["user"], "py");
    assert_eq!(args["payload"], json!({"text": "h\u{e9}llo \u{2603}"}));
    assert_datetime(&args["datetime"]);
    assert!(
        c.raw.last().unwrap().contains("h\\u00e9llo \\u2603"),
        "{:?}",
        c.raw.last()
    );

    // Errors come as ERROR frames, and the connection goes on.
    let id = c
        .send(
            "PUBLISH",
            json!({"channel_name": "lobby", "payload": "not json"}),
        )
        .await;
    let args = c.expect("ERROR").await;
    assert_eq!(
        (args["msg"].as_str(), &args["id"]),
        (Some("Invalid json for payload"), &json!(id))
    );

    // The client's close: the cascade runs and the server closes the socket.
    c.write(&[0xff, 0x00]).await;
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("lobby")
    );
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("py"));
    c.read_to_end().await;
}

#[tokio::test]
async fn another_client_sees_publishes_and_presence() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"presenceful": true, "moderated": false}));
    let mut a = connected(&s, "ann").await;
    a.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    s.web.expect("create_channel").await;
    a.expect("SUBSCRIBE").await;

    // A modern WebSocket client on the same channel.
    let mut b = s.connected("ben").await;
    b.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    assert_eq!(
        b.expect("SUBSCRIBE").await["presence"],
        json!(["ann", "ben"])
    );
    let args = a.expect("SUBSCRIBE").await;
    assert_eq!(
        (args["user"].as_str(), args.contains_key("presence")),
        (Some("ben"), false)
    );

    b.send(
        "PUBLISH",
        json!({"channel_name": "room", "payload": "[1, \"\u{e9}\"]"}),
    )
    .await;
    let args = a.expect("PUBLISH").await;
    assert_eq!(
        (&args["user"], &args["payload"]),
        (&json!("ben"), &json!([1, "\u{e9}"]))
    );
    b.expect("PUBLISH").await; // the channel is reflective

    // Closing the hixie socket is an UNSUBSCRIBE for the others.
    a.write(&[0xff, 0x00]).await;
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("ann"));
    let args = b.expect("UNSUBSCRIBE").await;
    assert_eq!(args["user"], "ann");
}

#[tokio::test]
async fn frames_split_across_reads_and_batched_in_one_write() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = Hixie::python_client(&s).await;
    // One frame in pieces, then two frames (and stray bytes between them) in one write.
    c.write(b"\x00[1, \"CONNECT\", {\"cookie_st").await;
    c.write(b"ring\": \"user=sam\"}]\r").await;
    c.write(b"\n\xff").await;
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], "sam");
    c.write(b"\x00[2, \"SUBSCRIBE\", {\"channel_name\": \"x\"}]\r\n\xff\r\n\x00[3, \"NOPE\", {}]\r\n\xff").await;
    s.web.expect("create_channel").await;
    assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], "x");
    let args = c.expect("ERROR").await;
    assert_eq!(args["id"], 3);

    // Several frames queued at once still go out one per WebSocket frame.
    for n in 0..3 {
        s.api_ok(
            "publish",
            &[("channel_name", "x"), ("payload", &n.to_string())],
        )
        .await;
    }
    for n in 0..3 {
        assert_eq!(c.expect("PUBLISH").await["payload"], n);
    }
}

#[tokio::test]
async fn origin_is_echoed_and_location_names_the_host_header() {
    let s = Server::start().await;
    let req = "GET /ws?v=1 HTTP/1.1\r\nHost: hookbox.example:8001\r\nConnection: Upgrade\r\n\
               Upgrade: WebSocket\r\nOrigin: http://app.example\r\n\r\n";
    let (mut c, hs) = Hixie::open(&s, req).await;
    assert_eq!(hs.status_line, "HTTP/1.1 101 Web Socket Protocol Handshake");
    assert_eq!(hs.header("websocket-origin"), Some("http://app.example"));
    assert_eq!(
        hs.header("websocket-location"),
        Some("ws://hookbox.example:8001/ws?v=1")
    );
    assert_eq!(hs.header("upgrade"), Some("WebSocket"));
    assert_eq!(hs.header("connection"), Some("Upgrade"));
    // No stray CRLF this time; the connection works all the same.
    c.send("CONNECT", json!({"cookie_string": "user=olly"}))
        .await;
    s.web.expect("connect").await;
    assert_eq!(c.expect("CONNECTED").await["name"], "olly");
}

#[tokio::test]
async fn oversized_frame_closes_the_connection_with_the_cascade() {
    let s = Server::start_with(|c| c.max_message_size = 1024).await;
    let mut c = connected(&s, "big").await;
    let mut bytes = vec![0x00];
    bytes.extend(std::iter::repeat_n(b'x', 4096));
    c.write(&bytes).await;
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("big"));
    c.read_to_end().await;
}

#[tokio::test]
async fn vanished_client_is_cleaned_up() {
    // A hixie client that vanishes without a close frame (TCP close) is cleaned up too.
    let s = Server::start().await;
    let c = connected(&s, "gone").await;
    drop(c);
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("gone"));
    let mut d = connected(&s, "still").await;
    d.send("NOPE", json!({})).await;
    assert_eq!(d.expect("ERROR").await["msg"], "Unknown frame type NOPE");
}

#[tokio::test]
async fn server_side_disconnect_sends_the_close_frame() {
    let s = Server::start().await;
    let mut c = connected(&s, "kicked").await;
    let r = s.api_ok("disconnect", &[("name", "kicked")]).await;
    assert_eq!(r, json!({"connections": 1}));
    assert_eq!(
        s.web.expect("disconnect").await.field("name"),
        Some("kicked")
    );
    assert_eq!(
        c.read_to_end().await,
        [0xff, 0x00],
        "the close frame, then EOF"
    );
}

/// At shutdown a hixie-75 client gets the close frame `0xFF 0x00` before EOF, and its close
/// handling runs (its channel's unsubscribe, its disconnect webhook).
#[tokio::test]
async fn shutdown_sends_the_close_frame_and_runs_the_close_handling() {
    let s = Server::unmoderated().await;
    let mut c = connected(&s, "py").await;
    c.send("SUBSCRIBE", json!({"channel_name": "news"})).await;
    c.expect("SUBSCRIBE").await;
    s.web.expect("create_channel").await;
    s.stop();
    assert_eq!(
        c.read_to_end().await,
        [0xff, 0x00],
        "the close frame, then EOF"
    );
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some("news")
    );
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some("py"));
}

#[tokio::test]
async fn a_plain_get_is_not_an_upgrade() {
    let s = Server::start().await;
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.addr
    );
    let (_, hs) = Hixie::open(&s, &req).await;
    assert!(
        hs.status_line.starts_with("HTTP/1.1 4"),
        "{}",
        hs.status_line
    );
}
