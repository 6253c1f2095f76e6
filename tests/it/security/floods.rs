//! The second audit's floods, each run as the attack was and held to its bound:
//!
//! - repeated `recover` of one channel without reading (one recovery per connection and channel
//!   in flight; own and recovery frames inside the outbox budget, overflow closes);
//! - SUBSCRIBE/UNSUBSCRIBE floods, `/sse` channel lists included (token buckets per connection
//!   and per user, before any webhook);
//! - guessed cookies from one address over many connections and every transport (refused
//!   CONNECTs counted per address; past the bound, no webhook), and a refused `/sse` that
//!   kept its socket for the next guess;
//! - wrong Web API tokens (counted per address, with the web app's own address never held back).
//!
//! The rates here refill so slowly (one token per ~11 days) that only the bursts count, whatever
//! the machine's speed. Waiting is on frames and webhooks.

use crate::common;
use common::csp::Csp;
use common::sse::{self, Sse};
use common::*;
use hookbox::hub::limits::Rate;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NO_REFILL: f64 = 1e-6;

fn burst(n: f64) -> Rate {
    Rate {
        per_second: NO_REFILL,
        burst: n,
    }
}

const TOO_FAST: &str = "Subscribing too fast (at most 0.000001 per second per connection)";

// ---------------------------------------------------------------------------------------------
// Recovery

/// A CSP session connected with `recovery` (positions shown), subscribed to `room`; returns it
/// and the room's epoch.
async fn recovering_member(s: &Server) -> (Csp, String) {
    let mut c = Csp::handshake(s).await;
    c.send(
        "CONNECT",
        json!({"cookie_string": "user=ann", "recovery": true}),
    )
    .await;
    s.web.expect("connect").await;
    c.expect("CONNECTED").await;
    c.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    s.web.expect("create_channel").await;
    let own = c.expect("SUBSCRIBE").await;
    (c, own["epoch"].as_str().expect("an epoch").to_owned())
}

/// Attack: a member sends SUBSCRIBE `recover` for the same channel over and over without
/// reading (CSP: nothing drains the session without a comet), so that every request queues
/// another copy of the history. Only one recovery of a channel is answered while its answer is
/// still queued; the others get an ERROR. Once the client has read it, it may recover again.
#[tokio::test]
async fn a_channel_is_recovered_once_at_a_time() {
    let s = Server::start().await;
    s.web
        .channel_options(json!({"moderated": false, "history_size": 20}));
    let (mut c, epoch) = recovering_member(&s).await;
    for i in 0..5 {
        s.api_ok(
            "publish",
            &[("channel_name", "room"), ("payload", &i.to_string())],
        )
        .await;
    }
    for i in 0..5 {
        assert_eq!(c.expect("PUBLISH").await["payload"], i);
    }
    // A moderated channel whose publish webhook tells when the frames before it were handled.
    s.api_ok("create_channel", &[("channel_name", "signal")])
        .await;
    let recover = |id: i64| {
        frame(
            id,
            "SUBSCRIBE",
            json!({"channel_name": "room", "recover": {"epoch": epoch, "offset": 0}}),
        )
    };
    let first_id = 100;
    let mut batch: String = (first_id..first_id + 10).map(recover).collect();
    batch.push_str(&frame(
        200,
        "PUBLISH",
        json!({"channel_name": "signal", "payload": "1"}),
    ));
    c.send_text(&batch).await;
    s.web.expect("publish").await;

    // The first is answered in full: its own SUBSCRIBE, then the five publications.
    let own = c.expect("SUBSCRIBE").await;
    assert_eq!(own["recovered"], true, "{own:?}");
    for i in 0..5 {
        assert_eq!(c.expect("PUBLISH").await["payload"], i);
    }
    // The nine others, sent while it was still queued, are refused.
    for id in first_id + 1..first_id + 10 {
        let (_, name, args) = c.recv().await;
        assert_eq!(name, "ERROR", "{args:?}");
        assert_eq!(
            args["msg"], "Channel room is still recovering: wait for its answer",
            "{args:?}"
        );
        assert_eq!(args["id"], id);
    }
    // Read: the channel may be recovered again.
    c.send_text(&recover(300)).await;
    assert_eq!(c.expect("SUBSCRIBE").await["recovered"], true);
    for i in 0..5 {
        assert_eq!(c.expect("PUBLISH").await["payload"], i);
    }
}

/// Attack: subscribe to many channels without ever reading, so that the own SUBSCRIBE frames
/// pile up (they used to be queued past the budget, for a client's own good). They count against
/// `--outbox-bytes` like everything else: the session is closed, with its close handling.
#[tokio::test]
async fn own_subscribe_frames_that_nobody_reads_close_the_session_at_the_budget() {
    let s = Server::start_with(|c| c.outbox_bytes = 4096).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = Csp::connected(&s, "ann").await;
    let batch: String = (0..60)
        .map(|i| {
            frame(
                i + 10,
                "SUBSCRIBE",
                json!({"channel_name": format!("channel-{i:02}")}),
            )
        })
        .collect();
    c.send_text(&batch).await;
    // The close handling runs: the disconnect webhook comes after the channels' own.
    loop {
        let hook = s.web.next().await;
        if hook.action() == "disconnect" {
            assert_eq!(hook.field("name"), Some("ann"));
            break;
        }
    }
    c.comet().await;
    assert!(c.closed_by_server, "the session was closed");
    assert!(
        !c.raw.iter().any(|f| f.contains("channel-59")),
        "not every frame was queued"
    );
}

/// Attack (WebSocket): the same repeated `recover`, sent as fast as possible. However the
/// writer keeps up, recoveries spend the subscribe bucket: past it, each is an ERROR before any
/// engine work.
#[tokio::test]
async fn repeated_recovers_spend_the_subscribe_bucket() {
    let s = Server::start_with(|c| c.action_limits.connection_subscribe = burst(5.0)).await;
    s.web
        .channel_options(json!({"moderated": false, "history_size": 20}));
    let mut c = s.client().await;
    c.send(
        "CONNECT",
        json!({"cookie_string": "user=ann", "recovery": true}),
    )
    .await;
    s.web.expect("connect").await;
    c.expect("CONNECTED").await;
    let epoch = join(&mut c, "room").await["epoch"].clone();
    s.web.expect("create_channel").await;
    let batch: String = (1..=10)
        .map(|id| {
            frame(
                id,
                "SUBSCRIBE",
                json!({"channel_name": "room", "recover": {"epoch": epoch, "offset": 0}}),
            )
        })
        .collect();
    c.send_text(&batch).await;
    let mut answered = 0;
    let mut too_fast = Vec::new();
    while answered + too_fast.len() < 10 {
        let (_, name, args) = c.recv().await;
        match (name.as_str(), args.get("msg").and_then(Value::as_str)) {
            ("SUBSCRIBE", _) => answered += 1,
            ("ERROR", Some(TOO_FAST)) => too_fast.push(args["id"].clone()),
            ("ERROR", Some("Channel room is still recovering: wait for its answer")) => {
                answered += 1
            }
            other => panic!("unexpected {other:?} {args:?}"),
        }
    }
    // One token went to the join, four to recoveries; the last six were refused.
    assert_eq!(answered, 4);
    assert_eq!(too_fast, (5..=10).map(Value::from).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE / UNSUBSCRIBE floods

/// Attack: one socket subscribing and unsubscribing in a loop, each a create_channel, subscribe,
/// unsubscribe and destroy_channel webhook. Past the connection's burst: an ERROR, no webhook.
#[tokio::test]
async fn a_connection_past_its_subscribe_burst_gets_errors_and_no_webhooks() {
    let s = Server::start_with(|c| c.action_limits.connection_subscribe = burst(3.0)).await;
    let mut c = s.connected("ann").await;
    join(&mut c, "a").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    c.send("UNSUBSCRIBE", json!({"channel_name": "a"})).await;
    s.web.expect("unsubscribe").await;
    assert_eq!(c.expect("UNSUBSCRIBE").await["channel_name"], "a");
    s.web.expect("destroy_channel").await;
    join(&mut c, "b").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    for frame_name in ["SUBSCRIBE", "UNSUBSCRIBE"] {
        let id = c.send(frame_name, json!({"channel_name": "b"})).await;
        assert_eq!(c.expect_error(TOO_FAST).await, id);
    }
    c.assert_quiet().await;
    assert_no_hooks(&s).await;
    // Another connection of the same user has its own bucket.
    let mut d = s.connected("ann").await;
    assert_eq!(d.expect("SUBSCRIBE").await["channel_name"], "b");
    join(&mut d, "c").await;
}

/// The same flood over CSP: the same bucket, the same ERROR, no webhook.
#[tokio::test]
async fn a_csp_session_past_its_subscribe_burst_gets_errors() {
    let s = Server::start_with(|c| c.action_limits.connection_subscribe = burst(2.0)).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = Csp::connected(&s, "ann").await;
    for ch in ["a", "b"] {
        c.send("SUBSCRIBE", json!({"channel_name": ch})).await;
        s.web.expect("create_channel").await;
        assert_eq!(c.expect("SUBSCRIBE").await["channel_name"], ch);
    }
    let id = c.send("UNSUBSCRIBE", json!({"channel_name": "a"})).await;
    let error = c.expect("ERROR").await;
    assert_eq!(
        (error["msg"].as_str(), &error["id"]),
        (Some(TOO_FAST), &json!(id))
    );
    assert_no_hooks(&s).await;
}

/// Attack: one user on many sockets. They share the user's bucket.
#[tokio::test]
async fn a_users_connections_share_the_user_subscribe_burst() {
    let s = Server::start_with(|c| {
        c.action_limits.connection_subscribe = burst(10.0);
        c.action_limits.user_subscribe = burst(3.0);
    })
    .await;
    s.web.channel_options(json!({"moderated": false}));
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(s.connected("ann").await);
    }
    for (i, c) in conns.iter_mut().take(3).enumerate() {
        c.send("SUBSCRIBE", json!({"channel_name": format!("room{i}")}))
            .await;
        s.web.expect("create_channel").await;
    }
    let id = conns[3]
        .send("SUBSCRIBE", json!({"channel_name": "room3"}))
        .await;
    // Every tab hears of each channel the user joined; the refused one is an ERROR.
    let frames = loop {
        let f = conns[3].recv().await;
        if f.1 == "ERROR" {
            break f;
        }
        assert_eq!(f.1, "SUBSCRIBE");
    };
    assert_eq!(
        frames.2["msg"],
        "Subscribing too fast (at most 0.000001 per second per user)"
    );
    assert_eq!(frames.2["id"], id);
    assert_no_hooks(&s).await;
}

/// Attack: one `GET /sse` naming many channels, each a SUBSCRIBE. They spend the same bucket.
#[tokio::test]
async fn sse_channels_count_against_the_subscribe_burst() {
    let s = Server::start_with(|c| c.action_limits.connection_subscribe = burst(3.0)).await;
    s.web.channel_options(json!({"moderated": false}));
    let base = format!("http://{}", s.addr);
    let query = "channel=a&channel=b&channel=c&channel=d&channel=e";
    let mut stream = Sse::open(&base, query, &[("Cookie", "user=ann")]).await;
    stream.expect("CONNECTED").await;
    s.web.expect("connect").await;
    for ch in ["a", "b", "c"] {
        assert_eq!(stream.expect("SUBSCRIBE").await["channel_name"], ch);
        s.web.expect("create_channel").await;
    }
    for _ in 0..2 {
        assert_eq!(stream.expect("ERROR").await["msg"], TOO_FAST);
    }
    assert_no_hooks(&s).await;
}

// ---------------------------------------------------------------------------------------------
// Guessed cookies from one address

/// A web app that refuses every CONNECT, and a server allowing two refusals per address.
async fn refusing_server() -> Server {
    let s = Server::start_with(|c| {
        c.action_limits.failed_connects_per_address = burst(2.0);
    })
    .await;
    s.web.set("connect", Reply::deny(json!({"error": "who?"})));
    s
}

const THROTTLED: &str = "Too many refused CONNECTs from your address: try again in 1000000 s";

/// Attack: guessed cookies over many sockets from one address (each socket's own bound,
/// `--max-failed-connects`, does not stop a crowd of sockets). Past the address's bound, CONNECTs
/// are refused without asking the web app, on every transport, and the socket is closed with
/// "try again later"; another address still gets its answer from the web app.
#[tokio::test]
async fn refused_connects_are_counted_per_address_on_every_transport() {
    let s = refusing_server().await;
    for _ in 0..2 {
        let mut c = s.client().await;
        let id = c.send("CONNECT", json!({"cookie_string": "user=x"})).await;
        s.web.expect("connect").await;
        assert_eq!(c.expect_error("who?").await, id);
    }
    // WebSocket.
    let mut c = s.client().await;
    let id = c.send("CONNECT", json!({"cookie_string": "user=y"})).await;
    assert_eq!(c.expect_error(THROTTLED).await, id);
    let (code, reason) = c.expect_close().await.expect("a close frame");
    assert_eq!(code, 1013);
    assert!(reason.contains("too many refused CONNECTs"), "{reason}");
    // CSP.
    let mut csp = Csp::handshake(&s).await;
    csp.send("CONNECT", json!({"cookie_string": "user=y"}))
        .await;
    assert_eq!(csp.expect("ERROR").await["msg"], THROTTLED);
    // SSE: a stream that says why and asks the browser to retry later.
    let base = format!("http://{}", s.addr);
    let mut stream = Sse::open(&base, "channel=a", &[("Cookie", "user=y")]).await;
    let mut saw_close = false;
    for item in stream.until_end().await {
        if item.name == "close" {
            let reason = item.data["reason"].as_str().unwrap().to_owned();
            assert!(reason.contains("too many refused CONNECTs"), "{reason}");
            saw_close = true;
        }
    }
    assert!(saw_close);
    assert_no_hooks(&s).await;

    // Another address (through the trusted loopback proxy) is asked about as usual.
    let url = format!("ws://{}/ws", s.addr);
    let mut other = Client::open_with_headers(&url, &[("X-Forwarded-For", "198.51.100.7")]).await;
    let id = other
        .send("CONNECT", json!({"cookie_string": "user=z"}))
        .await;
    s.web.expect("connect").await;
    assert_eq!(other.expect_error("who?").await, id);
}

/// Attack: many sockets from one address send their guesses at once, so that all of them are
/// in flight while the address still has a token left. Every CONNECT holds a token while the web
/// app is asked (an accepted one gives it back; the others wait for it): only the burst reaches
/// the web app, and once it is refused the rest are refused without asking.
#[tokio::test]
async fn connects_in_flight_count_against_the_address() {
    let s = refusing_server().await;
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    s.web.set(
        "connect",
        Reply::deny(json!({"error": "who?"})).gated(&gate),
    );
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut c = s.client().await;
        c.send("CONNECT", json!({"cookie_string": "user=x"})).await;
        clients.push(c);
    }
    for _ in 0..2 {
        s.web.expect("connect").await;
    }
    gate.add_permits(2);
    let mut answers = Vec::new();
    for c in &mut clients {
        let (_, name, args) = c.recv().await;
        assert_eq!(name, "ERROR");
        answers.push(args["msg"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        answers.iter().filter(|a| *a == "who?").count(),
        2,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|a| a.as_str() == THROTTLED).count(),
        4
    );
    assert_no_hooks(&s).await;
}

/// Not an attack: a crowd behind one address (a reconnect storm behind a NAT) that the web app
/// lets in. With both of the address's tokens held by CONNECTs in flight, the others wait for
/// them instead of being refused, and every one gets in.
#[tokio::test]
async fn a_crowd_the_web_app_lets_in_waits_its_turn_instead_of_being_refused() {
    let s = Server::start_with(|c| {
        c.action_limits.failed_connects_per_address = burst(2.0);
    })
    .await;
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    s.web
        .set("connect", Reply::ok(json!({"name": "crowd"})).gated(&gate));
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut c = s.client().await;
        c.send("CONNECT", json!({"cookie_string": "user=x"})).await;
        clients.push(c);
    }
    for _ in 0..2 {
        s.web.expect("connect").await;
    }
    gate.add_permits(6);
    for c in &mut clients {
        assert_eq!(c.expect("CONNECTED").await["name"], "crowd");
    }
}

/// Attack: guessed cookies over one kept-alive socket to `/sse` (a refusal used to keep the
/// connection, and each guess was checked by the web app). A refused stream now closes its
/// connection, and the guesses count against the address.
#[tokio::test]
async fn a_refused_sse_stream_closes_its_connection() {
    let s = refusing_server().await;
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let request = "GET /sse?channel=a HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\nCookie: user=guess\r\n\r\n";
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(GUARD, sock.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"));
    assert!(answer.ends_with("who?"), "{answer}");
    s.web.expect("connect").await;
    // The second guess from this address is the last one the web app hears of.
    let refused = sse::request(&format!("http://{}", s.addr), "channel=a", &[]).await;
    assert_eq!(refused.status().as_u16(), 403);
    s.web.expect("connect").await;
    let third = sse::request(&format!("http://{}", s.addr), "channel=a", &[]).await;
    assert_eq!(third.status().as_u16(), 200, "a retry stream");
    assert_no_hooks(&s).await;
}

// ---------------------------------------------------------------------------------------------
// Wrong API tokens

/// POSTs `/web/<method>` with `form`, as if from `forwarded_for` (through the trusted loopback
/// proxy) when given; status and body.
async fn api_from(s: &Server, forwarded_for: Option<&str>, form: &[(&str, &str)]) -> (u16, Value) {
    let mut req = http_client()
        .post(format!("http://{}/web/get_server_info", s.addr))
        .form(form);
    if let Some(ip) = forwarded_for {
        req = req.header("X-Forwarded-For", ip);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").cloned();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    if status == 429 {
        assert!(retry.is_some(), "a 429 says when to retry");
    }
    (status, body)
}

/// Attack: guessing the API token. Past `--max-wrong-tokens-per-ip` wrong ones, the address is
/// answered 429 before its token is even compared (the right one too: a guesser must not learn
/// which guess was right). The web app's own address (loopback here) is never held back, and
/// other addresses are not affected.
#[tokio::test]
async fn wrong_api_tokens_are_limited_per_address() {
    let s = Server::start_with(|c| c.max_wrong_tokens_per_ip = 3).await;
    let attacker = Some("203.0.113.9");
    for _ in 0..3 {
        let (status, body) = api_from(&s, attacker, &[("security_token", "guess")]).await;
        assert_eq!(
            (status, &body),
            (200, &json!([false, {"msg": "Invalid Security Token"}]))
        );
    }
    for token in ["guess", "secret"] {
        let (status, body) = api_from(&s, attacker, &[("security_token", token)]).await;
        assert_eq!(status, 429);
        let msg = body[1]["msg"].as_str().unwrap();
        assert!(
            msg.starts_with("Too many wrong tokens from your address: try again in "),
            "{msg}"
        );
    }
    // The same /64 is the same address.
    for ip in ["2001:db8::1", "2001:db8::2", "2001:db8::3"] {
        let (status, _) = api_from(&s, Some(ip), &[("security_token", "guess")]).await;
        assert_eq!(status, 200);
    }
    let (status, _) = api_from(&s, Some("2001:db8::9"), &[("security_token", "secret")]).await;
    assert_eq!(status, 429);
    // Others keep working.
    let (status, body) = api_from(&s, Some("198.51.100.1"), &[("security_token", "secret")]).await;
    assert_eq!((status, body[0].clone()), (200, json!(true)));
    // The web app's own address: never held back, however many wrong tokens come from it.
    for _ in 0..10 {
        let (status, _) = api_from(&s, None, &[("security_token", "guess")]).await;
        assert_eq!(status, 200);
    }
    let (status, body) = api_from(&s, None, &[("security_token", "secret")]).await;
    assert_eq!((status, body[0].clone()), (200, json!(true)));
    // Nor are the addresses the operator names (the web app's other servers).
    let s = Server::start_with(|c| {
        c.max_wrong_tokens_per_ip = 1;
        c.api_exempt_ips = vec![hookbox::net::IpRange::parse("198.51.100.0/24").unwrap()];
    })
    .await;
    for _ in 0..3 {
        let (status, _) = api_from(&s, Some("198.51.100.5"), &[("security_token", "x")]).await;
        assert_eq!(status, 200);
    }
}
