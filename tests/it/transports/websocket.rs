//! The WebSocket transport at `/ws` (§3.3): query strings, the inbound size limit, the outbound
//! byte budget of a client that does not read, and binary messages carrying UTF-8 text.

use crate::common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A PUBLISH frame whose whole text is exactly `len` bytes (including the `\r\n`).
fn publish_frame_of_len(id: i64, channel: &str, len: usize) -> String {
    let empty = format!(
        "{}\r\n",
        json!([id, "PUBLISH", {"channel_name": channel, "payload": "\"\""}])
    );
    assert!(len >= empty.len());
    let fill = "a".repeat(len - empty.len());
    let text = format!(
        "{}\r\n",
        json!([id, "PUBLISH", {"channel_name": channel, "payload": format!("\"{fill}\"")}])
    );
    assert_eq!(text.len(), len);
    text
}

/// Reads the server's text messages, ASCII only, into `buf` until `frames` holds `count` frames
/// (parsed as plain JSON, without the id checks of `Client`).
async fn read_frames(ws: &mut RawWs, buf: &mut String, frames: &mut Vec<Value>, count: usize) {
    while frames.len() < count {
        let msg = tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("a frame")
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else {
            panic!("server sends text: {msg:?}")
        };
        assert!(text.is_ascii());
        buf.push_str(&text);
        while let Some(pos) = buf.find("\r\n") {
            let line: String = buf.drain(..pos + 2).collect();
            frames.push(serde_json::from_str(&line[..pos]).unwrap());
        }
    }
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::test]
async fn any_query_string_is_accepted() {
    let s = Server::start().await;
    let queries = [
        "?",
        "?x=1",
        "?transport=websocket&t=1700000000&cb=a%20b",
        "?just-text",
        "?a=1&a=2&=&b",
    ];
    for (i, q) in queries.iter().enumerate() {
        let mut c = Client::open(&format!("ws://{}/ws{q}", s.addr)).await;
        let name = format!("q{i}");
        c.send("CONNECT", json!({"cookie_string": format!("user={name}")}))
            .await;
        assert_eq!(c.expect("CONNECTED").await["name"], name.as_str(), "{q}");
    }
}

/// The sender of a message over `--max-message-size` learns why it was not handled (it used to
/// be a bare close, after which a page reconnected without a word), and the connection goes on;
/// far over it, the WebSocket layer refuses it with 1009 and the limit.
#[tokio::test]
async fn a_message_over_the_limit_is_refused_with_an_error_and_far_over_it_closes_with_1009() {
    let s = Server::start_with(|c| c.max_message_size = 1024).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = s.connected("big").await;
    c.send("SUBSCRIBE", json!({"channel_name": "ch"})).await;
    c.expect("SUBSCRIBE").await;
    // Exactly at the limit: accepted.
    c.send_text(&publish_frame_of_len(100, "ch", 1024)).await;
    let payload = c.expect("PUBLISH").await["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        payload.len() > 900 && payload.bytes().all(|b| b == b'a'),
        "{payload}"
    );
    c.assert_quiet().await;

    // One byte over: an ERROR naming the size and the limit; nothing published, still connected.
    c.send_text(&publish_frame_of_len(101, "ch", 1025)).await;
    let error = c.expect("ERROR").await;
    assert_eq!(
        error["msg"],
        "Message too large: 1025 bytes (at most 1024); it was not handled"
    );
    assert_eq!(error["id"], serde_json::Value::Null);
    c.assert_quiet().await;
    s.web.expect("create_channel").await;
    assert_no_hooks(&s).await;

    // Far over the limit (beyond what the WebSocket layer buffers at all): same close.
    let mut d = s.connected("huge").await;
    d.send_text(&"x".repeat(64 * 1024)).await;
    let (code, reason) = d.expect_close().await.expect("a close frame");
    assert_eq!(code, 1009);
    assert!(reason.contains("1024"), "{reason}");
}

#[tokio::test]
async fn a_partial_frame_growing_past_the_limit_closes_with_1009() {
    let s = Server::start_with(|c| c.max_message_size = 1024).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = s.connected("parts").await;
    c.send("SUBSCRIBE", json!({"channel_name": "ch"})).await;
    c.expect("SUBSCRIBE").await;
    // A 1000-byte frame in four small messages is fine.
    let frame = publish_frame_of_len(100, "ch", 1000);
    for chunk in frame.as_bytes().chunks(250) {
        c.send_text(std::str::from_utf8(chunk).unwrap()).await;
    }
    c.expect("PUBLISH").await;
    c.assert_quiet().await;

    // Small messages, none over the limit, that never finish a frame.
    c.send_text("[4, \"PUBLISH\", {\"channel_name\": \"ch\", \"payload\": \"\\\"")
        .await;
    for _ in 0..4 {
        c.send_text(&"b".repeat(300)).await;
    }
    let (code, reason) = c.expect_close().await.expect("a close frame");
    assert_eq!(code, 1009);
    assert!(reason.contains("1024"), "{reason}");
    assert_eq!(
        s.web.expect("create_channel").await.action(),
        "create_channel"
    );
    s.web.expect("destroy_channel").await;
    assert_eq!(
        s.web.expect("disconnect").await.field("name"),
        Some("parts")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_with_1008() {
    const OUTBOX: usize = 64 * 1024;
    let s = Server::start_with(|c| c.outbox_bytes = OUTBOX).await;
    s.web.channel_options(json!({"moderated": false}));
    let channels = ["f0", "f1", "f2", "f3"];
    let mut slow = s.connected("slow").await;
    for ch in channels {
        slow.send("SUBSCRIBE", json!({"channel_name": ch})).await;
        slow.expect("SUBSCRIBE").await;
    }
    let names = channels.join(",");
    // 4 frames of ~12 KB per call: within the budget of a client that reads...
    let payload = serde_json::to_string(&"x".repeat(12 * 1024)).unwrap();
    for _ in 0..3 {
        s.api_ok(
            "publish_multi",
            &[("channel_names", &names), ("payload", &payload)],
        )
        .await;
        for ch in channels {
            assert_eq!(slow.expect("PUBLISH").await["channel_name"], ch);
        }
    }
    slow.assert_quiet().await;

    // ...but about 8 MB in all is more than the kernel's socket buffers absorb for one that
    // stops reading, so its outbox overflows.
    let calls = 8 * 1024 * 1024 / (channels.len() * 12 * 1024);
    for _ in 0..calls {
        s.api_ok(
            "publish_multi",
            &[("channel_names", &names), ("payload", &payload)],
        )
        .await;
    }
    // The close frame follows whatever had been written before the overflow.
    let (code, reason) = slow.expect_close().await.expect("a close frame");
    assert_eq!(code, 1008);
    assert!(reason.contains(&OUTBOX.to_string()), "{reason}");
    // The usual cleanup follows.
    let disconnect = loop {
        let h = s.web.next().await;
        if h.action() == "disconnect" {
            break h;
        }
    };
    assert_eq!(disconnect.field("name"), Some("slow"));
    let (_, body) = s.api("get_channel_info", &[("channel_name", "f0")]).await;
    assert_eq!(
        body[1]["msg"], "Channel f0 doesn't exist",
        "destroyed with its last subscriber"
    );
}

#[tokio::test]
async fn binary_messages_with_utf8_text_are_read_as_text() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
        .await
        .unwrap();
    let connect = "[1, \"CONNECT\", {\"cookie_string\": \"user=bin\"}]\r\n";
    ws.send(Message::Binary(connect.as_bytes().to_vec().into()))
        .await
        .unwrap();
    // Raw UTF-8 (not escaped) in a binary message, split across two messages mid-character.
    let subscribe = "[2, \"SUBSCRIBE\", {\"channel_name\": \"caf\u{e9}\"}]\r\n"
        .as_bytes()
        .to_vec();
    let cut = subscribe.iter().position(|&b| b == 0xc3).unwrap() + 1;
    ws.send(Message::Binary(subscribe[..cut].to_vec().into()))
        .await
        .unwrap();
    ws.send(Message::Binary(subscribe[cut..].to_vec().into()))
        .await
        .unwrap();

    let mut frames: Vec<Value> = Vec::new();
    let mut buf = String::new();
    read_frames(&mut ws, &mut buf, &mut frames, 2).await;
    assert_eq!(frames[0][1], "CONNECTED");
    assert_eq!(frames[0][2]["name"], "bin");
    assert_eq!(frames[1][1], "SUBSCRIBE");
    assert_eq!(frames[1][2]["channel_name"], "caf\u{e9}");
    assert_eq!(
        s.web.expect("connect").await.field("action"),
        Some("connect")
    );
    assert_eq!(
        s.web.expect("create_channel").await.field("channel_name"),
        Some("caf\u{e9}")
    );

    // Bytes that are not UTF-8 inside a frame: that frame is invalid JSON, the connection lives.
    let mut bad = b"[3, \"PUBLISH\", {\"channel_name\": \"x\xff\"}]\r\n".to_vec();
    bad.extend_from_slice(
        b"[4, \"PUBLISH\", {\"channel_name\": \"caf\xc3\xa9\", \"payload\": \"7\"}]\r\n",
    );
    ws.send(Message::Binary(bad.into())).await.unwrap();
    read_frames(&mut ws, &mut buf, &mut frames, 4).await;
    assert_eq!(
        frames[2],
        json!([3, "ERROR", {"id": null, "msg": "Invalid json"}])
    );
    assert_eq!(frames[3][1], "PUBLISH");
    assert_eq!(frames[3][2]["payload"], 7);
}

/// `--write-coalesce-ms`: frames queued within the window after the first go out in one
/// WebSocket message (one write). Three publications made well within a one-second window
/// arrive as one message of three frames.
#[tokio::test]
async fn coalesced_writes_carry_several_frames() {
    let s = Server::start_with(|c| c.write_coalesce = std::time::Duration::from_secs(1)).await;
    s.web.channel_options(json!({"moderated": false}));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
        .await
        .unwrap();
    let mut buf = String::new();
    let mut frames = Vec::new();
    let send = |text: String| Message::Text(text.into());
    ws.send(send(frame(
        1,
        "CONNECT",
        json!({"cookie_string": "user=ann"}),
    )))
    .await
    .unwrap();
    read_frames(&mut ws, &mut buf, &mut frames, 1).await;
    ws.send(send(frame(2, "SUBSCRIBE", json!({"channel_name": "room"}))))
        .await
        .unwrap();
    read_frames(&mut ws, &mut buf, &mut frames, 2).await;
    assert_eq!(frames[1][1], "SUBSCRIBE");
    for i in 0..3 {
        s.api_ok(
            "publish",
            &[("channel_name", "room"), ("payload", &i.to_string())],
        )
        .await;
    }
    let msg = tokio::time::timeout(GUARD, ws.next())
        .await
        .expect("a message")
        .unwrap()
        .unwrap();
    let Message::Text(text) = msg else {
        panic!("{msg:?}")
    };
    let lines: Vec<Value> = text
        .split_terminator("\r\n")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let payloads: Vec<&Value> = lines.iter().map(|f| &f[2]["payload"]).collect();
    assert_eq!(payloads, [&json!(0), &json!(1), &json!(2)], "{text}");
}

/// One task serves a connection: while the handling of the client's frame waits on its webhook,
/// the connection still writes what others publish and still pings; its next frame is handled
/// only after that one (frames in order).
#[tokio::test]
async fn deliveries_and_pings_go_on_while_a_frame_waits_on_its_webhook() {
    let s =
        Server::start_with(|c| c.ping_interval = Some(std::time::Duration::from_millis(100))).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut ann = s.connected("ann").await;
    join(&mut ann, "open").await;
    s.web.expect("create_channel").await;
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    s.web
        .once("create_channel", Reply::ok(json!({"moderated": true})));
    s.web.once("subscribe", Reply::ok(json!({})).gated(&gate));
    ann.send("SUBSCRIBE", json!({"channel_name": "held"})).await;
    ann.send(
        "PUBLISH",
        json!({"channel_name": "open", "payload": "\"mine\""}),
    )
    .await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;

    // The SUBSCRIBE waits at the web app: a publication to ann's other channel and pings come.
    s.api_ok("publish", &[("channel_name", "open"), ("payload", "1")])
        .await;
    ann.next_ping().await;
    ann.next_ping().await;
    let delivered = ann.expect("PUBLISH").await;
    assert_eq!(delivered["payload"], 1);

    // Then the SUBSCRIBE's answer, and only after it ann's own PUBLISH, sent after it.
    gate.add_permits(1);
    assert_eq!(ann.expect("SUBSCRIBE").await["channel_name"], "held");
    let own = ann.expect("PUBLISH").await;
    assert_eq!(own["payload"], "mine");
}
