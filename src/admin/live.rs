//! The console's live socket: the overview every second, and the events of the channel the page
//! watches (`{"watch": "<channel>"}`, answered `{"type": "watching", …}`; `{"watch": null}` to
//! stop). It closes with 4401 when the session ends.

use super::{refuse, token, views, AdminState};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Largest message the page may send (a watch request).
const MAX_MESSAGE: usize = 4096;

pub async fn upgrade(
    State(admin): State<Arc<AdminState>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // A page of another site cannot open it with the operator's cookie (cross-site WebSocket
    // hijacking): its Origin must be this host.
    if !same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, "cross-origin admin socket");
    }
    let Some(token) = token(&headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "not logged in");
    };
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| run(admin, socket, token))
}

fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

async fn run(admin: Arc<AdminState>, mut socket: WebSocket, token: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut watched: Option<(String, broadcast::Receiver<Arc<str>>)> = None;
    loop {
        let event = async {
            match watched.as_mut() {
                Some((_, rx)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {
                if !admin.sessions.check(admin.password().as_deref(), &token) {
                    let close = CloseFrame { code: 4401, reason: "session ended".into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    return;
                }
                let Ok(overview) = views::overview_json(&admin).await else { continue };
                if socket.send(Message::Text(overview.to_string().into())).await.is_err() {
                    return;
                }
            }
            got = event => {
                let text = match got {
                    Ok(line) => line.to_string(),
                    Err(broadcast::error::RecvError::Lagged(n)) => format!("({n} events skipped)"),
                    Err(broadcast::error::RecvError::Closed) => continue,
                };
                let channel = watched.as_ref().map(|(c, _)| c.clone());
                let msg = json!({"type": "event", "channel": channel, "frame": text});
                if socket.send(Message::Text(msg.to_string().into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let request: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    watched = match request.get("watch") {
                        Some(Value::String(c)) => Some((c.clone(), admin.api.hub.watch(c))),
                        _ => None,
                    };
                    // Events from here on are the watched channel's.
                    let ack = json!({"type": "watching", "channel": watched.as_ref().map(|(c, _)| c)});
                    if socket.send(Message::Text(ack.to_string().into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}
