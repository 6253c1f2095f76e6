//! Attacks on the built-in demo (`hookbox --demo`), run against the real binary.
//!
//! - It listened on every interface: now both hookbox and the demo page listen on 127.0.0.1
//!   unless `-i` says otherwise (and the demo page stays on loopback even then).
//! - Its connect webhook trusted the client's `demo_user=<name>` cookie: now the browser has an
//!   HttpOnly session cookie the demo signs, and each page a name token `<name>.<HMAC>` signed
//!   for that session and sent as the CONNECT payload (the demo's key is kept in a file so that
//!   names survive a restart), so nobody can claim another's name.
//! - Its create_channel webhook approved any number of channels: now it approves `lobby` only
//!   (a cap shared with the lobby would let one visitor lock everybody out of the chat).
//!
//! Whether a listener is on 127.0.0.1 only is observed by connecting to 127.0.0.2 (also
//! loopback on Linux): a listener on 0.0.0.0 accepts that connection, one on 127.0.0.1 refuses it.

use crate::common;
use common::binary::{api_post, Running};
use common::*;
use hookbox::demo::{NO_SESSION, NO_TOKEN, ONLY_LOBBY};
use serde_json::{json, Value};
const TOKEN: &str = "secret";

/// A running `hookbox --demo`.
struct Demo {
    /// Kept for its lifetime: the process is killed when the test ends.
    _run: Running,
    /// The hookbox port (WebSocket, CSP, and the Web API when `-r` is given).
    port: u16,
    /// The demo web app's port.
    demo_port: u16,
}

impl Demo {
    /// Starts `hookbox --demo` on free ports with `extra` arguments; the startup line must name
    /// `host`.
    fn start(host: &str, extra: &[&str]) -> Demo {
        let mut args = vec!["--demo", "--demo-port", "0", "-p", "0"];
        args.extend_from_slice(extra);
        let run = Running::spawn(&args, &[]);
        let port = run.startup_port(host);
        // The engine line comes before the demo line.
        common::binary::assert_engine_line(&run.next_line());
        let line = run.next_line();
        let demo_port = line
            .split_once(" - hookbox - INFO - Demo chat: open http://127.0.0.1:")
            .and_then(|(_, rest)| rest.strip_suffix("/ in two browser tabs"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad demo line: {line:?}"));
        Demo {
            _run: run,
            port,
            demo_port,
        }
    }

    /// Loads the demo page as a browser with no cookie does: a new session, a name token.
    async fn visit(&self) -> Visitor {
        let resp = http_client()
            .get(format!("http://127.0.0.1:{}/", self.demo_port))
            .send()
            .await
            .expect("demo page");
        assert_eq!(resp.status().as_u16(), 200);
        let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(set_cookie.contains("; HttpOnly"), "{set_cookie}");
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        assert!(cookie.starts_with("demo_session="), "{cookie}");
        let page = resp.text().await.unwrap();
        let token = page
            .split_once("var NAME_TOKEN = \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(token, _)| token.to_owned())
            .expect("the page carries a name token");
        let (name, sig) = token.rsplit_once('.').expect("<name>.<signature>");
        assert_eq!(sig.len(), 64, "an HMAC-SHA256 in hex: {token}");
        assert!(sig.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        Visitor {
            name: name.to_owned(),
            token,
            cookie,
        }
    }

    /// Two visitors with different names.
    async fn two_visitors(&self) -> (Visitor, Visitor) {
        let first = self.visit().await;
        loop {
            let second = self.visit().await;
            if second.name != first.name {
                return (first, second);
            }
        }
    }

    async fn client(&self) -> Client {
        Client::open(&format!("ws://127.0.0.1:{}/ws", self.port)).await
    }

    /// A client connected as `visitor`, with its session and token.
    async fn connected(&self, visitor: &Visitor) -> Client {
        let mut c = self.client().await;
        c.send("CONNECT", connect_args(&visitor.token, &visitor.cookie))
            .await;
        assert_eq!(c.expect("CONNECTED").await["name"], *visitor.name);
        c
    }

    /// `get_server_info` (the demo must have been started with `-r secret`).
    async fn server_info(&self) -> Value {
        let body = api_post(self.port, "get_server_info", &[("security_token", TOKEN)]).await;
        assert_eq!(body[0], true, "{body}");
        body[1].clone()
    }
}

/// A visitor of the demo page: its name, the page's token for it, the browser's session cookie.
struct Visitor {
    name: String,
    token: String,
    cookie: String,
}

/// CONNECT's arguments with the name token as the payload, as the demo page sends it, and the
/// session cookie (a browser's arrives in its Cookie header: here, as a non-browser client,
/// in `cookie_string`; the webhook sees both alike).
fn connect_args(token: &str, cookie: &str) -> Value {
    json!({"cookie_string": cookie, "payload": json!({"token": token}).to_string()})
}

/// Whether something accepts TCP connections on `ip:port`.
async fn accepts(ip: &str, port: u16) -> bool {
    tokio::time::timeout(GUARD, tokio::net::TcpStream::connect((ip, port)))
        .await
        .expect("connect timed out")
        .is_ok()
}

// ---------------------------------------------------------------------------------------------
// Where the demo listens

/// The attack: `hookbox --demo` listened on 0.0.0.0, so anyone on the network could use the
/// demo (and, before signed names, act as any user). Now, without `-i`, the startup line says
/// 127.0.0.1 and neither hookbox nor the demo page accepts connections on another address.
#[tokio::test]
async fn demo_listens_on_loopback_only() {
    let demo = Demo::start("127.0.0.1", &[]);
    for port in [demo.port, demo.demo_port] {
        assert!(accepts("127.0.0.1", port).await, "port {port}");
        assert!(
            !accepts("127.0.0.2", port).await,
            "port {port} listens beyond 127.0.0.1"
        );
    }
    // And it works there: the page names the visitor, hookbox knows the name.
    let visitor = demo.visit().await;
    demo.connected(&visitor).await;
}

/// `-i` still decides where hookbox listens with `--demo` (the startup line says so, and it
/// accepts on another address), but the demo page, which hands out names, stays on loopback.
#[tokio::test]
async fn demo_interface_flag_moves_hookbox_but_not_the_demo_page() {
    let demo = Demo::start("0.0.0.0", &["-i", "0.0.0.0"]);
    assert!(accepts("127.0.0.2", demo.port).await);
    let mut c = Client::open(&format!("ws://127.0.0.2:{}/ws", demo.port)).await;
    c.send("CONNECT", connect_args("nobody", "")).await;
    c.expect_error(NO_SESSION).await;
    assert!(accepts("127.0.0.1", demo.demo_port).await);
    assert!(!accepts("127.0.0.2", demo.demo_port).await);
}

// ---------------------------------------------------------------------------------------------
// Signed name tokens

/// The attack: the demo's connect webhook named the user after the client's `demo_user` cookie,
/// so `CONNECT {cookie_string: "demo_user=<someone>"}` impersonated anyone. Now the name comes
/// from a token in the payload signed for the browser's session (an HttpOnly cookie the demo
/// signs): with the attacker's own session, a bare name, the victim's token, the victim's name
/// with the attacker's own (valid) signature, and the victim's name with a tampered or
/// truncated signature are all refused; every third refusal closes the connection. Without a
/// session, nothing passes. The victim's token with the victim's session connects as the victim.
#[tokio::test]
async fn demo_refuses_unsigned_and_forged_name_tokens() {
    let demo = Demo::start("127.0.0.1", &[]);
    let (victim, attacker) = demo.two_visitors().await;
    let name = &victim.name;
    let attacker_sig = attacker.token.rsplit_once('.').unwrap().1;
    let mut tampered = victim.token.clone();
    let last = if tampered.pop() == Some('0') {
        '1'
    } else {
        '0'
    };
    tampered.push(last);

    // A prefix of the real signature: accepting truncated tags would make names guessable.
    let victim_sig = victim.token.rsplit_once('.').unwrap().1;
    let truncated = |hex: usize| format!("{name}.{}", &victim_sig[..hex]);
    let attempts = [
        [name.clone(), format!("{name}.{attacker_sig}"), tampered],
        [truncated(0), truncated(2), victim.token.clone()],
    ];
    for forgeries in &attempts {
        let mut c = demo.client().await;
        for forged in forgeries {
            let id = c
                .send("CONNECT", connect_args(forged, &attacker.cookie))
                .await;
            assert_eq!(c.expect_error(NO_TOKEN).await, id, "{forged}");
        }
        let (frames, close) = c.frames_until_close().await;
        assert!(frames.is_empty(), "{frames:?}");
        assert_eq!(
            close,
            Some((1008, "3 refused CONNECTs on this connection".to_owned()))
        );
    }
    // No session (or one we did not sign): nothing passes, the old cookie included.
    for cookie in [
        String::new(),
        format!("demo_user={}", victim.token),
        "demo_session=s1.00".to_owned(),
    ] {
        let mut c = demo.client().await;
        c.send("CONNECT", connect_args(&victim.token, &cookie))
            .await;
        c.expect_error(NO_SESSION).await;
    }

    demo.connected(&victim).await;
}

/// A tab keeps its name through a restart of the demo (the key is kept in a file), while a token
/// signed with another key is worthless.
#[tokio::test]
async fn a_name_token_outlives_a_restart_but_not_another_key() {
    let before = Demo::start("127.0.0.1", &[]);
    let visitor = before.visit().await;
    drop(before);
    let after = Demo::start("127.0.0.1", &[]);
    after.connected(&visitor).await;
    let foreign = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"another demo's key").unwrap();
        mac.update(visitor.name.as_bytes());
        let tag: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}.{tag}", visitor.name)
    };
    let mut c = after.client().await;
    c.send("CONNECT", connect_args(&foreign, &visitor.cookie))
        .await;
    c.expect_error(NO_TOKEN).await;
}

// ---------------------------------------------------------------------------------------------
// The channel cap

/// Sends SUBSCRIBE to `channel` and expects the own SUBSCRIBE frame.
async fn joins(c: &mut Client, channel: &str) {
    c.send("SUBSCRIBE", json!({"channel_name": channel})).await;
    let args = c.expect("SUBSCRIBE").await;
    assert_eq!(args["channel_name"], channel);
}

/// Sends SUBSCRIBE to `channel` and expects the demo's refusal.
async fn refused(c: &mut Client, channel: &str) {
    let id = c.send("SUBSCRIBE", json!({"channel_name": channel})).await;
    assert_eq!(c.expect_error(ONLY_LOBBY).await, id, "{channel}");
}

/// The attack: one visitor subscribed to ever-new channel names and filled the server with
/// channels. Now the demo creates `lobby` only: every other new channel is refused, whether by
/// SUBSCRIBE or by PUBLISH, none of them is left behind, and another visitor (and the hog too)
/// still joins the lobby.
#[tokio::test]
async fn demo_creates_only_the_lobby() {
    let demo = Demo::start("127.0.0.1", &["-r", TOKEN]);
    let (hog, other) = demo.two_visitors().await;
    let mut h = demo.connected(&hog).await;
    for i in 1..=25 {
        refused(&mut h, &format!("hog-{i}")).await;
        let id = h
            .send(
                "PUBLISH",
                json!({"channel_name": format!("ghost-{i}"), "payload": r#"{"text": "hi"}"#}),
            )
            .await;
        assert_eq!(h.expect_error(ONLY_LOBBY).await, id);
    }
    assert_eq!(demo.server_info().await["channels"], json!([]));

    let mut o = demo.connected(&other).await;
    joins(&mut o, "lobby").await;
    joins(&mut h, "lobby").await;
    assert_eq!(demo.server_info().await["channels"], json!(["lobby"]));
}

/// The lobby and its conversation stay when the last visitor leaves (they used to vanish, and a
/// newcomer found an empty room): the demo's destroy_channel webhook keeps the lobby.
#[tokio::test]
async fn the_lobby_outlives_its_last_visitor() {
    let demo = Demo::start("127.0.0.1", &["-r", TOKEN]);
    let (first, second) = demo.two_visitors().await;
    let mut a = demo.connected(&first).await;
    joins(&mut a, "lobby").await;
    a.send(
        "PUBLISH",
        json!({"channel_name": "lobby", "payload": r#"{"text": "anyone?"}"#}),
    )
    .await;
    a.expect("PUBLISH").await;
    a.close().await;
    // Once the demo has been asked whether the emptied lobby may go, it is still there.
    let metrics = format!("http://127.0.0.1:{}/metrics", demo.port);
    wait_until(|| async {
        let text = http_client()
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.contains("hook=\"destroy_channel\"")
    })
    .await;
    assert_eq!(demo.server_info().await["channels"], json!(["lobby"]));
    let mut b = demo.connected(&second).await;
    b.send("SUBSCRIBE", json!({"channel_name": "lobby"})).await;
    let own = b.expect("SUBSCRIBE").await;
    let said: Vec<&Value> = own["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[0] == "PUBLISH")
        .collect();
    assert_eq!(said.len(), 1, "{own:?}");
    assert_eq!(said[0][1]["payload"]["text"], "anyone?");
}
