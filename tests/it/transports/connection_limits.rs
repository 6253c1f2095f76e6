//! `--max-connections` and `--max-connections-per-ip`: WebSocket and hixie-75 connections past
//! either bound are refused with 503 and a reason; a closed connection gives its place back.

use crate::common;
use common::*;

async fn server() -> Server {
    Server::start_with(|c| {
        c.max_connections = 3;
        c.max_connections_per_ip = 2;
    })
    .await
}

/// Opens a WebSocket as the client at `address` (sent as X-Forwarded-For: the test connects
/// from loopback, a trusted proxy); a refusal's status and body.
async fn open_as(s: &Server, address: &str) -> Result<Client, (u16, String)> {
    let url = format!("ws://{}/ws", s.addr);
    match Client::try_open_with_headers(&url, &[("X-Forwarded-For", address)]).await {
        Ok(c) => Ok(c),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            Err((
                resp.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            ))
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn connections_past_the_bounds_are_refused_with_a_reason() {
    let s = server().await;
    let mut a1 = open_as(&s, "198.51.100.1").await.unwrap();
    let _a2 = open_as(&s, "198.51.100.1").await.unwrap();
    let refused = open_as(&s, "198.51.100.1").await.err();
    assert_eq!(
        refused,
        Some((503, "Too many connections from your address".to_owned()))
    );
    let _b1 = open_as(&s, "198.51.100.2").await.unwrap();
    let refused = open_as(&s, "198.51.100.3").await.err();
    assert_eq!(refused, Some((503, "Too many connections".to_owned())));
    // A closed connection gives its place back before its close handling (the disconnect
    // webhook) runs.
    a1.send("CONNECT", serde_json::json!({"cookie_string": "user=a1"}))
        .await;
    a1.expect("CONNECTED").await;
    a1.close().await;
    s.web.expect("connect").await;
    s.web.expect("disconnect").await;
    assert!(open_as(&s, "198.51.100.3").await.is_ok());
}
