//! The browser's own cookies for the connect webhook (HttpOnly sessions included, which a page's
//! script cannot put in `cookie_string`): forwarded from the WebSocket upgrade and the CSP
//! handshake, merged with `cookie_string`, only for pages whose origin may hand them over
//! (`--allowed-origins`, or by default hookbox's own origin and the web app's). A page anywhere
//! else, even on the same host and another port (cookies ignore ports), gets nothing of them.

use crate::common;
use common::csp::{fetch, Csp};
use common::*;
use serde_json::json;

/// Opens `/ws` with `headers`, sends CONNECT with `cookie_string`, and returns the Cookie header
/// the connect webhook got, with the client (kept open by the caller: its close would send
/// webhooks of its own).
async fn connect_cookie(
    s: &Server,
    headers: &[(&str, &str)],
    cookie_string: &str,
) -> (String, Client) {
    let url = format!("ws://{}/ws", s.addr);
    let mut c = Client::open_with_headers(&url, headers).await;
    c.send("CONNECT", json!({"cookie_string": cookie_string}))
        .await;
    let hook = s.web.expect("connect").await;
    c.expect("CONNECTED").await;
    (hook.header("cookie").unwrap_or("").to_owned(), c)
}

fn web_app_origin(s: &Server) -> String {
    format!("http://127.0.0.1:{}", s.web.addr.port())
}

#[tokio::test]
async fn a_websocket_from_the_web_apps_pages_carries_their_session() {
    let s = Server::start().await;
    let app = web_app_origin(&s);
    // The page's HttpOnly session reaches the connect webhook, with what the page handed over.
    let (got, _c) = connect_cookie(
        &s,
        &[("Origin", &app), ("Cookie", "sid=s3cret; user=ann")],
        "user=ann; theme=dark",
    )
    .await;
    assert_eq!(got, "user=ann; theme=dark; sid=s3cret");
    // A page on hookbox's own origin may too.
    let own = format!("http://{}", s.addr);
    let (got, _c) =
        connect_cookie(&s, &[("Origin", &own), ("Cookie", "sid=own")], "user=bob").await;
    assert_eq!(got, "user=bob; sid=own");
}

/// Cross-site WebSocket hijacking: a page elsewhere makes the visitor's browser open a
/// WebSocket (which carries the visitor's cookies). None of them reach the web app: not for
/// another site, not for another port of the same host, not without an Origin.
#[tokio::test]
async fn pages_elsewhere_get_nothing_of_the_session() {
    let s = Server::start().await;
    let other_port = format!("http://127.0.0.1:{}", free_port());
    let mut open = Vec::new();
    for origin in ["http://evil.example", other_port.as_str()] {
        let (got, c) = connect_cookie(
            &s,
            &[("Origin", origin), ("Cookie", "sid=victim")],
            "user=mallory",
        )
        .await;
        assert_eq!(got, "user=mallory", "{origin}");
        open.push(c);
    }
    // No Origin: not a browser page (python-hookboxclient): its cookie_string, as ever.
    let (got, _c) = connect_cookie(&s, &[("Cookie", "sid=x")], "user=py").await;
    assert_eq!(got, "user=py");
}

/// With `--allowed-origins`, the list decides (and replaces the defaults).
#[tokio::test]
async fn the_allowed_origins_decide_when_set() {
    let s = Server::start_with(|c| {
        c.allowed_origins = Some(vec!["https://app.example".to_owned()]);
    })
    .await;
    let (got, _c) = connect_cookie(
        &s,
        &[("Origin", "https://app.example"), ("Cookie", "sid=listed")],
        "user=ann",
    )
    .await;
    assert_eq!(got, "user=ann; sid=listed");
    let own = format!("http://{}", s.addr);
    let url = format!("ws://{}/ws", s.addr);
    // Another origin may not even open the transport.
    let refused = Client::try_open_with_headers(&url, &[("Origin", &own)]).await;
    assert!(refused.is_err());
}

/// CSP: the handshake's cookies are the session's, for allowed pages; answers name the page's
/// origin and allow credentials, so that `hookbox.js` may send them (`withCredentials`).
#[tokio::test]
async fn a_csp_handshake_from_the_web_apps_pages_carries_their_session() {
    let s = Server::start().await;
    let app = web_app_origin(&s);
    for (origin, expected) in [
        (app.as_str(), "user=ann; sid=s3cret"),
        ("http://evil.example", "user=ann"),
    ] {
        let r = fetch(
            http_client()
                .post(format!(
                    "{}/handshake?ct=application%2Fjavascript",
                    Csp::base(&s)
                ))
                .header("content-type", "text/plain")
                .header("Origin", origin)
                .header("Cookie", "sid=s3cret")
                .body("{}"),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.acao.as_deref(), Some(origin));
        assert_eq!(r.acac.as_deref(), Some("true"));
        let key = common::csp::session_key(&r.body, "(", ")");
        let mut c = Csp::new(&s, key);
        c.send("CONNECT", json!({"cookie_string": "user=ann"}))
            .await;
        let hook = s.web.expect("connect").await;
        assert_eq!(hook.header("cookie"), Some(expected), "{origin}");
        c.expect("CONNECTED").await;
    }
}
