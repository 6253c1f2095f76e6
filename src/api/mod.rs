//! The Web API (§4): `/web/<method>`, used by the web application to drive the hub.
//!
//! Parameters come from the query string for GET and only from the urlencoded body for POST
//! (first value of a repeated key wins). Every answer is `[true, {…}]` or `[false, {"msg": …}]`
//! with status 200, as the original; unlike the original, none of the methods crash with a 500,
//! and the body is labelled `application/json`.

mod methods;

use crate::hub::{Hub, HubError};
use crate::protocol::to_ascii_string;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Everything the API handlers share.
pub struct ApiState {
    pub hub: Arc<Hub>,
    /// `-r`; `None` disables the API. Changeable at run time through `set_config`.
    pub token: RwLock<Option<String>>,
    /// `-a`, kept here so `set_config` can change it for the admin console.
    pub admin_password: RwLock<Option<String>>,
    /// `-x`: publishing to a missing channel succeeds silently.
    pub ignore_publish_non_existing: bool,
}

/// Why a call failed; the text is the `msg` the caller sees.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Missing {0}")]
    Missing(&'static str),
    #[error("Invalid json for payload")]
    BadPayload,
    #[error("Invalid json value for option {0}")]
    BadOption(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// Request parameters; the first value of a repeated key wins.
pub struct Params(HashMap<String, String>);

impl Params {
    fn parse(data: &[u8]) -> Params {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(data) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Params(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A required, non-empty parameter.
    pub fn required(&self, key: &'static str) -> Result<&str, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or(ApiError::Missing(key))
    }

    /// `send_hook=1` (only the string `1` counts, as in the original).
    pub fn send_hook(&self) -> bool {
        self.get("send_hook") == Some("1")
    }

    /// A JSON payload parameter, `null` when absent.
    pub fn payload(&self) -> Result<Value, ApiError> {
        match self.get("payload") {
            None => Ok(Value::Null),
            Some(text) => serde_json::from_str(text).map_err(|_| ApiError::BadPayload),
        }
    }

    /// Every parameter except `skip`, each parsed as JSON: channel or user options.
    pub fn options(&self, skip: &[&str]) -> Result<Map<String, Value>, ApiError> {
        let mut keys: Vec<&String> = self
            .0
            .keys()
            .filter(|k| !skip.contains(&k.as_str()))
            .collect();
        keys.sort();
        keys.into_iter()
            .map(|k| {
                serde_json::from_str(&self.0[k])
                    .map(|v| (k.clone(), v))
                    .map_err(|_| ApiError::BadOption(k.clone()))
            })
            .collect()
    }

    pub fn keys(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

fn reply(ok: bool, body: Value) -> Response {
    let text = to_ascii_string(&json!([ok, body]));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}

/// `/web/{method}` (and `/{method}` on a separate API listener).
pub async fn handle(
    State(api): State<Arc<ApiState>>,
    Path(name): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(call) = methods::lookup(&name) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let params = if method == Method::POST {
        Params::parse(&body)
    } else {
        Params::parse(query.unwrap_or_default().as_bytes())
    };
    let token = api.token.read().clone();
    let Some(token) = token else {
        return reply(
            false,
            json!({"msg": "Rest api is disabled by configuration. (Please supply --rest-secret/-r option at start)"}),
        );
    };
    if params.get("security_token") != Some(token.as_str()) {
        return reply(false, json!({"msg": "Invalid Security Token"}));
    }
    match call(api.clone(), params).await {
        Ok(body) => reply(true, body),
        Err(e) => reply(false, json!({"msg": e.to_string()})),
    }
}
