//! The Comet Session Protocol at `/csp` (§3.2, §3.4), the normal flow: the XHR and JSONP
//! handshakes, OPTIONS and reflect, CONNECT / SUBSCRIBE / PUBLISH through send and comet, send
//! encodings and padding, frames split across packets, sticky JSONP wrappers, body over `d`.

use crate::common;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use common::csp::*;
use common::*;
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Handshake

#[tokio::test]
async fn handshake_xhr_and_jsonp() {
    let s = Server::start().await;
    let http = http_client();
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
async fn options_preflight_and_no_reflect() {
    let s = Server::start().await;
    let r =
        fetch(http_client().request(reqwest::Method::OPTIONS, format!("{}/send", Csp::base(&s))))
            .await;
    assert_eq!(r.ok(), "");
    // `reflect` is gone: it echoed `d` on hookbox's origin, a script gadget.
    let c = Csp::handshake(&s).await;
    c.get("reflect", "d=alert(1)").await.assert_error(404, "");
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
    let http = http_client();
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
