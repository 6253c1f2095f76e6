//! The admin API's reads and actions. Actions go through the same hub calls as the Web API, so
//! they are validated, webhooked and delivered exactly as the web application's own.

use super::{refuse, AdminState};
use crate::engine::NodeInfo;
use crate::hub::{raw, Hooks, HubError, Leave, Origin, Publish};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Most channels and users a list shows (the answer says when there are more).
const LIST_LIMIT: usize = 500;

fn failed(e: HubError) -> Response {
    let status = match e {
        HubError::NoChannel(_) | HubError::NoUser(_) => StatusCode::NOT_FOUND,
        HubError::Engine(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    refuse(status, e)
}

fn ok(v: Value) -> Response {
    Json(v).into_response()
}

pub async fn session() -> Response {
    ok(json!({"ok": true}))
}

/// The overview (what the live socket also pushes every second).
pub async fn overview(State(admin): State<Arc<AdminState>>) -> Response {
    match overview_json(&admin).await {
        Ok(v) => ok(v),
        Err(e) => failed(e),
    }
}

pub(super) async fn overview_json(admin: &AdminState) -> Result<Value, HubError> {
    let engine = admin.api.hub.engine();
    let local = NodeInfo {
        id: "local".to_owned(),
        address: admin.address.clone(),
        since: admin.started_ms,
        seen: chrono::Utc::now().timestamp_millis(),
        alive: true,
        connections: 0,
        this: true,
    };
    let nodes = engine.nodes(local).await?;
    let (users, channels) = engine.counts();
    let (rates, latency) = admin.stats.current();
    let samples = crate::metrics::samples();
    let mut connections = Map::new();
    for transport in crate::net::Transport::ALL.map(|t| t.name()) {
        let key = format!(
            "{}{{transport=\"{transport}\"}}",
            crate::metrics::CONNECTIONS
        );
        connections.insert(
            transport.to_owned(),
            json!(samples.get(&key).copied().unwrap_or(0.0) as u64),
        );
    }
    Ok(json!({
        "type": "overview",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": admin.started.elapsed().as_secs(),
        "engine": admin.engine,
        "nodes": nodes,
        "connections": connections,
        "users": users,
        "channels": channels,
        "rates": rates,
        "webhook_ms": latency,
    }))
}

pub async fn channels(State(admin): State<Arc<AdminState>>) -> Response {
    let hub = &admin.api.hub;
    let names = match hub.channel_names().await {
        Ok(n) => n,
        Err(e) => return failed(e),
    };
    let mut names: Vec<String> = names
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    names.sort();
    let truncated = names.len() > LIST_LIMIT;
    names.truncate(LIST_LIMIT);
    let mut list = Vec::with_capacity(names.len());
    for name in names {
        let members = match hub.engine().members(&name).await {
            Ok(m) => m,
            Err(e) => return failed(e.into()),
        };
        // A channel destroyed since the listing is left out.
        if let Some(m) = members {
            list.push(json!({"name": name, "subscribers": m.len()}));
        }
    }
    ok(json!({"channels": list, "truncated": truncated}))
}

pub async fn channel(State(admin): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    match admin.api.hub.channel_info(&name).await {
        Ok(v) => ok(v),
        Err(e) => failed(e),
    }
}

/// New options for a channel: validated as `/web/set_channel_options` does.
pub async fn set_options(
    State(admin): State<Arc<AdminState>>,
    Path(name): Path<String>,
    Json(options): Json<Value>,
) -> Response {
    let Value::Object(options) = options else {
        return refuse(StatusCode::BAD_REQUEST, "the options must be a JSON object");
    };
    match admin.api.hub.set_channel_options(&name, &options).await {
        Ok(()) => ok(json!({"ok": true})),
        Err(e) => failed(e),
    }
}

#[derive(serde::Deserialize)]
pub struct PublishBody {
    payload: Value,
}

/// A publication from the console, like a Web API publish without `originator` (its `user` is
/// null).
pub async fn publish(
    State(admin): State<Arc<AdminState>>,
    Path(name): Path<String>,
    Json(body): Json<PublishBody>,
) -> Response {
    let payload = raw(&body.payload);
    let result = admin
        .api
        .hub
        .publish(Publish {
            publisher: None,
            originator: None,
            origin: &Origin::default(),
            channel: &name,
            payload: &payload,
            hooks: Hooks::Skip,
        })
        .await;
    match result {
        Ok(()) => ok(json!({"ok": true})),
        Err(e) => failed(e),
    }
}

#[derive(serde::Deserialize)]
pub struct UserBody {
    user: String,
}

/// Takes a user out of a channel, as `/web/unsubscribe` does (no webhook).
pub async fn remove(
    State(admin): State<Arc<AdminState>>,
    Path(name): Path<String>,
    Json(body): Json<UserBody>,
) -> Response {
    let hub = &admin.api.hub;
    let origin = match hub.user_cookie(&body.user).await {
        Ok(cookie) => Origin::api(cookie),
        Err(e) => return failed(e),
    };
    match hub
        .take_out(&body.user, &origin, &name, Leave::Silent)
        .await
    {
        Ok(()) => ok(json!({"ok": true})),
        Err(e) => failed(e),
    }
}

pub async fn users(State(admin): State<Arc<AdminState>>) -> Response {
    match admin.api.hub.engine().user_names(LIST_LIMIT).await {
        Ok((users, truncated)) => ok(json!({"users": users, "truncated": truncated})),
        Err(e) => failed(e.into()),
    }
}

pub async fn user(State(admin): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    let hub = &admin.api.hub;
    let info = match hub.user_info(&name).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let connections = match hub.engine().connections_of(&name).await {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return failed(e.into()),
    };
    ok(json!({
        "name": name,
        "channels": info["channels"],
        "options": info["options"],
        "connections": connections,
    }))
}

pub async fn disconnect(
    State(admin): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Response {
    match admin.api.hub.kick(&name).await {
        Ok(n) => ok(json!({"ok": true, "connections": n})),
        Err(e) => failed(e),
    }
}

pub async fn webhooks(State(admin): State<Arc<AdminState>>) -> Response {
    let calls: Vec<Value> = admin
        .api
        .hub
        .webhooks()
        .recent_calls()
        .into_iter()
        .map(|c| {
            let form: Map<String, Value> = c
                .form
                .into_iter()
                .map(|(k, v)| (k.into_owned(), Value::String(v)))
                .collect();
            json!({
                "time": c.time, "hook": c.hook, "url": c.url, "status": c.status,
                "ms": c.ms, "outcome": c.outcome, "form": form, "response": c.response,
            })
        })
        .collect();
    ok(json!({"calls": calls}))
}

pub async fn log() -> Response {
    ok(json!({"lines": crate::log::tail()}))
}
