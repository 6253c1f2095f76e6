//! What operators and their tools ask a running server: `/metrics` (Prometheus text),
//! `/healthz` (the process answers) and `/readyz` (it listens and its engine answers).

use crate::transport::Shared;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn metrics(State(app): State<Arc<Shared>>) -> Response {
    let (users, channels) = app.hub.engine().counts();
    let text = crate::metrics::render(users, channels, crate::log::dropped_lines());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(app): State<Arc<Shared>>) -> Response {
    match app.hub.engine().ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}
