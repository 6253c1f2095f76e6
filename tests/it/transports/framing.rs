//! RTJP framing over WebSocket: split and joined frames, ASCII output, malformed frames.

use crate::common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn connect_handshake_and_keys() {
    let s = Server::start().await;
    let mut c = s.client().await;
    c.send(
        "CONNECT",
        json!({"cookie_string": "user=alice", "payload": "{\"hello\": \"w\u{e9}\"}"}),
    )
    .await;
    let hook = s.web.expect("connect").await;
    assert_eq!(hook.keys(), ["action", "conn_id", "payload"]);
    assert_eq!(hook.field("payload"), Some("{\"hello\": \"w\u{e9}\"}"));
    assert_eq!(hook.field("conn_id").unwrap().len(), 32);
    assert_eq!(hook.header("cookie"), Some("user=alice"));
    let args = c.expect("CONNECTED").await;
    assert_eq!(keys(&args), ["name", "payload"]);
    assert_eq!(args["name"], "alice");
    // CONNECTED.payload is the client's JSON text, not a parsed value.
    assert_eq!(args["payload"], "{\"hello\": \"w\u{e9}\"}");
    assert!(
        c.raw.last().unwrap().contains("w\\u00e9"),
        "non-ASCII escaped: {:?}",
        c.raw
    );
}

#[tokio::test]
async fn frames_split_and_joined() {
    let s = Server::start().await;
    let mut c = s.client().await;
    c.send_text("[1, \"CONNECT\", {\"cookie_st").await;
    c.send_text("ring\": \"user=bob\"}]\r\n[2, \"NOPE\", {}]\r\n")
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], "bob");
    let id = c.expect_error("Unknown frame type NOPE").await;
    assert_eq!(id, 2);
}

#[tokio::test]
async fn malformed_frames_get_exact_errors_and_connection_survives() {
    let s = Server::start().await;
    let mut c = s.client().await;
    let cases = [
        ("not json\r\n", json!(null), "Invalid json"),
        ("{\"a\": 1}\r\n", json!(null), "Invalid frame (not a list)"),
        ("[7, \"CONNECT\"]\r\n", json!(7), "Invalid frame length"),
        (
            "[\"x\", \"CONNECT\", {}]\r\n",
            json!(null),
            "Invalid frame id (must be int)",
        ),
        (
            "[8, 5, {}]\r\n",
            json!(8),
            "Invalid frame name (must be string)",
        ),
        (
            "[9, \"CONNECT\", [1]]\r\n",
            json!(9),
            "Invalid frame keyword arguments (must be dictionary)",
        ),
    ];
    for (text, id, msg) in cases {
        c.send_text(text).await;
        assert_eq!(c.expect_error(msg).await, id, "{text}");
    }
    c.send("CONNECT", json!({"cookie_string": "user=carol"}))
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], "carol");
}

#[tokio::test]
async fn astral_characters_are_surrogate_pairs() {
    let s = Server::start().await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = s.connected("dave").await;
    c.send("SUBSCRIBE", json!({"channel_name": "emoji"})).await;
    c.expect("SUBSCRIBE").await;
    c.send(
        "PUBLISH",
        json!({"channel_name": "emoji", "payload": "\"\u{1F600}\u{2603}\""}),
    )
    .await;
    let args = c.expect("PUBLISH").await;
    assert_eq!(args["payload"], "\u{1F600}\u{2603}");
    assert!(
        c.raw.last().unwrap().contains("\\ud83d\\ude00\\u2603"),
        "{:?}",
        c.raw.last()
    );
}
