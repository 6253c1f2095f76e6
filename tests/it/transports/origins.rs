//! `--allowed-origins`: a page on another origin cannot use `/ws` or `/csp`; allowed pages and
//! clients that send no Origin (python-hookboxclient, servers) can.

use crate::common;
use common::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn server() -> Server {
    Server::start_with(|c| c.allowed_origins = Some(vec!["https://app.example".to_owned()])).await
}

/// The status of a WebSocket upgrade sent with `origin`.
async fn upgrade_status(s: &Server, origin: &str) -> u16 {
    let mut req = format!("ws://{}/ws", s.addr).into_client_request().unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

#[tokio::test]
async fn websocket_from_another_origin_is_refused() {
    let s = server().await;
    assert_eq!(upgrade_status(&s, "https://evil.example").await, 403);
    assert_eq!(upgrade_status(&s, "null").await, 403);
    assert_eq!(upgrade_status(&s, "https://app.example").await, 101);
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn allowed_pages_and_clients_without_origin_connect() {
    let s = server().await;
    let mut c = Client::open_with_headers(
        &format!("ws://{}/ws", s.addr),
        &[("Origin", "https://APP.example")],
    )
    .await;
    c.send("CONNECT", serde_json::json!({"cookie_string": "user=page"}))
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], "page");
    s.web.expect("connect").await;
    // No Origin at all: not a browser page.
    let plain = s.connected("script").await;
    drop(plain);
}

#[tokio::test]
async fn csp_from_another_origin_is_refused() {
    let s = server().await;
    let http = http_client();
    let url = format!("http://{}/csp/handshake", s.addr);
    let resp = http
        .post(&url)
        .header("origin", "https://evil.example")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(resp.text().await.unwrap(), "'Origin not allowed'");
    let resp = http
        .post(&url)
        .header("origin", "https://app.example")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("session"));
}
