//! Resume tickets (ours, not the original's): when the connect webhook's reply carries
//! `resume_ttl` and the client asked (CONNECT `resume: true`), CONNECTED carries a ticket; a
//! client that comes back with it is connected, and rejoins the ticket's channels, without any
//! webhook, and recovers what it missed. A ticket that does not hold (forged, expired, other
//! cookies, revoked) takes the webhook path, silently. On whichever engine the suite runs.

use crate::common;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use common::*;
use serde_json::{json, Map, Value};

/// A connect reply that names `name` and opts in to tickets.
fn resumable(name: &str, ttl: u64) -> Reply {
    Reply::ok(json!({"name": name, "resume_ttl": ttl}))
}

/// CONNECT as `cookie` with `resume` (and positions shown); returns the client and CONNECTED.
async fn connect(s: &Server, cookie: &str, resume: Value) -> (Client, Map<String, Value>) {
    let mut c = s.client().await;
    c.send(
        "CONNECT",
        json!({"cookie_string": cookie, "recovery": true, "resume": resume}),
    )
    .await;
    let connected = c.expect("CONNECTED").await;
    (c, connected)
}

/// The channels a ticket names (tickets are signed, not secret).
fn channels_of(ticket: &str) -> Vec<String> {
    let body = ticket.split('.').next().unwrap();
    let body: Value = serde_json::from_slice(&B64.decode(body).unwrap()).unwrap();
    serde_json::from_value(body["ch"].clone()).unwrap()
}

fn ticket_of(args: &Map<String, Value>) -> String {
    args.get("resume")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no ticket in {args:?}"))
        .to_owned()
}

/// alice (cookie `user=alice`) connects with a ticket and joins the moderated channel `r`,
/// which bob (an original client) keeps alive; returns her, bob, her latest ticket and her
/// position in `r`.
async fn alice_in_r(s: &Server) -> (Client, Client, String, (String, u64)) {
    s.web.channel_options(
        json!({"moderated_subscribe": true, "history_size": 20, "presenceful": true}),
    );
    let mut bob = s.connected("bob").await;
    join(&mut bob, "r").await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;

    s.web.once("connect", alice_reply());
    let (mut alice, connected) = connect(s, "user=alice", json!(true)).await;
    s.web.expect("connect").await;
    assert_eq!(connected["name"], "alice");
    assert_eq!(connected["resume_ttl"], 60);
    assert!(connected.get("resumed").is_none());
    assert!(channels_of(&ticket_of(&connected)).is_empty());

    alice.send("SUBSCRIBE", json!({"channel_name": "r"})).await;
    s.web.expect("subscribe").await;
    let own = alice.expect("SUBSCRIBE").await;
    let position = (
        own["epoch"].as_str().unwrap().to_owned(),
        own["offset"].as_u64().unwrap(),
    );
    // Her channels changed: a fresh ticket that names `r`.
    let renewed = alice.expect("RESUME").await;
    assert_eq!(renewed["resume_ttl"], 60);
    let ticket = ticket_of(&renewed);
    assert_eq!(channels_of(&ticket), ["r"]);
    assert_eq!(bob.expect("SUBSCRIBE").await["user"], "alice");
    (alice, bob, ticket, position)
}

fn alice_reply() -> Reply {
    resumable("alice", 60)
}

/// alice's connection closes; her disconnect webhook (after her cascade) is awaited.
async fn alice_leaves(s: &Server, alice: Client) {
    alice.close().await;
    loop {
        if s.web.next().await.action() == "disconnect" {
            break;
        }
    }
}

#[tokio::test]
async fn a_ticket_comes_back_without_any_webhook_and_recovers_the_gap() {
    let s = Server::start().await;
    let (alice, mut bob, ticket, (epoch, offset)) = alice_in_r(&s).await;
    alice_leaves(&s, alice).await;
    assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "alice");
    for p in ["1", "2"] {
        s.api_ok("publish", &[("channel_name", "r"), ("payload", p)])
            .await;
        bob.expect("PUBLISH").await;
    }

    let (mut alice, connected) = connect(&s, "user=alice", json!(ticket)).await;
    assert_eq!(connected["name"], "alice");
    assert_eq!(connected["resumed"], true);
    assert_eq!(connected["payload"], "null");
    let renewed = ticket_of(&connected);
    assert_ne!(renewed, ticket);
    assert_eq!(channels_of(&renewed), ["r"]);

    alice
        .send(
            "SUBSCRIBE",
            json!({"channel_name": "r", "recover": {"epoch": epoch, "offset": offset}}),
        )
        .await;
    let own = alice.expect("SUBSCRIBE").await;
    assert_eq!(own["recovered"], true, "{own:?}");
    assert_eq!(alice.expect("PUBLISH").await["payload"], 1);
    assert_eq!(alice.expect("PUBLISH").await["payload"], 2);
    assert_eq!(bob.expect("SUBSCRIBE").await["user"], "alice");
    // Neither CONNECT nor SUBSCRIBE asked the web app.
    assert_no_hooks(&s).await;

    // A channel the ticket does not name asks as usual.
    alice
        .send("SUBSCRIBE", json!({"channel_name": "other"}))
        .await;
    s.web.expect("create_channel").await;
    s.web.expect("subscribe").await;
    alice.expect("SUBSCRIBE").await;
    assert_eq!(
        channels_of(&ticket_of(&alice.expect("RESUME").await)),
        ["r", "other"]
    );
}

#[tokio::test]
async fn a_ticket_that_does_not_hold_takes_the_webhook_path() {
    let s = Server::start().await;
    let (alice, _bob, ticket, _) = alice_in_r(&s).await;
    alice_leaves(&s, alice).await;
    let (body, tag) = ticket.split_once('.').unwrap();
    let mut forged: Value = serde_json::from_slice(&B64.decode(body).unwrap()).unwrap();
    forged["u"] = json!("admin");
    let forged = format!("{}.{tag}", B64.encode(forged.to_string()));
    let other_key = {
        let mut t = ticket.clone();
        let last = t.pop().unwrap();
        t.push(if last == 'A' { 'B' } else { 'A' });
        t
    };
    // Forged, badly signed, garbage, and alice's own ticket from another browser session.
    for (cookie, presented) in [
        ("user=alice", forged.as_str()),
        ("user=alice", other_key.as_str()),
        ("user=alice", "not a ticket"),
        ("user=alice; theme=dark", ticket.as_str()),
        ("user=mallory", ticket.as_str()),
    ] {
        let name = if cookie.contains("mallory") {
            "mallory"
        } else {
            "alice"
        };
        s.web.once("connect", resumable(name, 60));
        let (c, connected) = connect(&s, cookie, json!(presented)).await;
        assert_eq!(s.web.expect("connect").await.header("cookie"), Some(cookie));
        assert_eq!(connected["name"], name, "{presented}");
        assert!(connected.get("resumed").is_none());
        // A fresh ticket, from the web app's new decision.
        assert!(channels_of(&ticket_of(&connected)).is_empty());
        c.close().await;
        loop {
            if s.web.next().await.action() == "disconnect" {
                break;
            }
        }
    }
}

#[tokio::test]
async fn an_expired_ticket_takes_the_webhook_path() {
    let s = Server::start().await;
    s.web.once("connect", resumable("alice", 1));
    let (c, connected) = connect(&s, "user=alice", json!(true)).await;
    s.web.expect("connect").await;
    assert_eq!(connected["resume_ttl"], 1);
    let ticket = ticket_of(&connected);
    c.close().await;
    s.web.expect("disconnect").await;
    // The ticket's lifetime is what is tested: it has to pass.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_c, connected) = connect(&s, "user=alice", json!(ticket)).await;
    s.web.expect("connect").await;
    assert!(connected.get("resumed").is_none());
    // The web app did not opt in this time: no ticket.
    assert!(connected.get("resume").is_none());
}

#[tokio::test]
async fn the_web_apps_calls_revoke_a_users_tickets() {
    for call in ["disconnect", "set_user_options", "unsubscribe"] {
        let s = Server::start().await;
        let (mut alice, _bob, ticket, _) = alice_in_r(&s).await;
        match call {
            "disconnect" => {
                s.api_ok("disconnect", &[("name", "alice")]).await;
                alice.expect_close().await;
                while s.web.next().await.action() != "disconnect" {}
            }
            "set_user_options" => {
                s.api_ok(
                    "set_user_options",
                    &[("user_name", "alice"), ("reflective", "false")],
                )
                .await;
                alice_leaves(&s, alice).await;
            }
            _ => {
                s.api_ok("unsubscribe", &[("name", "alice"), ("channel_name", "r")])
                    .await;
                alice_leaves(&s, alice).await;
            }
        }
        s.web.once("connect", resumable("alice", 60));
        let (_alice, connected) = connect(&s, "user=alice", json!(ticket)).await;
        assert!(connected.get("resumed").is_none(), "after {call}");
        s.web.expect("connect").await;
    }
}

#[tokio::test]
async fn tickets_are_only_for_clients_and_apps_that_ask() {
    let s = Server::start().await;
    // The web app opts in, the client does not (the original hookbox.js): CONNECTED as ever.
    s.web.once("connect", resumable("alice", 60));
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=alice"}))
        .await;
    let connected = c.expect("CONNECTED").await;
    assert_eq!(keys(&connected), ["name", "payload"]);
    s.web.expect("connect").await;
    let id = c.send("RESUME", json!({})).await;
    assert_eq!(
        c.expect_error("Resume tickets are not enabled for this connection")
            .await,
        id
    );

    // The client asks, the web app does not opt in (or gives no usable TTL).
    let mut open = Vec::new();
    for reply in [
        json!({"name": "bob"}),
        json!({"name": "bob", "resume_ttl": 0}),
        json!({"name": "bob", "resume_ttl": "60"}),
    ] {
        s.web.once("connect", Reply::ok(reply.clone()));
        let (c, connected) = connect(&s, "user=bob", json!(true)).await;
        s.web.expect("connect").await;
        assert!(connected.get("resume").is_none(), "{reply}");
        open.push(c);
    }
    // A TTL past the cap is cut to it.
    s.web.once("connect", resumable("carol", 86_400));
    let (_c, connected) = connect(&s, "user=carol", json!(true)).await;
    s.web.expect("connect").await;
    assert_eq!(connected["resume_ttl"], 3600);
}

#[tokio::test]
async fn a_channel_left_leaves_the_ticket() {
    let s = Server::start().await;
    let (mut alice, _bob, _, _) = alice_in_r(&s).await;
    alice
        .send("UNSUBSCRIBE", json!({"channel_name": "r"}))
        .await;
    alice.expect("UNSUBSCRIBE").await;
    assert!(channels_of(&ticket_of(&alice.expect("RESUME").await)).is_empty());
}

#[tokio::test]
async fn a_renewal_drops_the_channels_not_rejoined() {
    let s = Server::start().await;
    let (alice, _bob, ticket, _) = alice_in_r(&s).await;
    alice_leaves(&s, alice).await;
    let (mut alice, connected) = connect(&s, "user=alice", json!(ticket)).await;
    assert_eq!(connected["resumed"], true);
    assert_eq!(channels_of(&ticket_of(&connected)), ["r"]);
    alice.send("RESUME", json!({})).await;
    let renewed = alice.expect("RESUME").await;
    assert_eq!(renewed["resume_ttl"], 60);
    assert!(channels_of(&ticket_of(&renewed)).is_empty());
    // Not rejoined in time: `r` asks its webhook again.
    alice.send("SUBSCRIBE", json!({"channel_name": "r"})).await;
    s.web.expect("subscribe").await;
    alice.expect("SUBSCRIBE").await;
    assert_eq!(
        channels_of(&ticket_of(&alice.expect("RESUME").await)),
        ["r"]
    );
}
