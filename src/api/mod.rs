//! The Web API (§4): how the web application drives the hub, in two dialects.
//!
//! - `/web/<method>` is 0.3.4a1's: the token in the form key `security_token`, 16 methods.
//! - `/rest/<method>` is 0.3.3's, still spoken by django-hookbox 0.3 and other apps of that era:
//!   the token in `secret` (`security_token` is accepted too), `Invalid secret`, the 0.3.3
//!   method set, and a publish that creates a missing channel through the create_channel webhook.
//!
//! Parameters come from the query string for GET and only from the urlencoded body for POST
//! (first value of a repeated key wins). Every answer is `[true, {…}]` or `[false, {"msg": …}]`
//! with status 200, as the original; unlike the original, none of the methods crash with a 500,
//! and the body is labelled `application/json`.

mod idempotency;
mod methods;
mod rest;
mod tokens;

pub use tokens::{web_app_addresses, WrongTokens};

use crate::hub::{Hub, HubError};
use crate::protocol::to_ascii_string;
use crate::transport::PeerAddr;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type Outcome = Result<Value, ApiError>;
/// One API method: an async function of the shared state and the call's parameters.
type Call = fn(Arc<ApiState>, Params) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Which of the two API dialects a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/web/<method>` with `security_token` (0.3.4a1).
    Web,
    /// `/rest/<method>` with `secret` (0.3.3).
    Rest,
}

impl Dialect {
    /// Form keys that may carry the API token.
    fn token_keys(self) -> &'static [&'static str] {
        match self {
            Dialect::Web => &["security_token"],
            Dialect::Rest => &["secret", "security_token"],
        }
    }

    fn bad_token(self) -> &'static str {
        match self {
            Dialect::Web => "Invalid Security Token",
            Dialect::Rest => "Invalid secret",
        }
    }

    fn lookup(self, name: &str) -> Option<Call> {
        match self {
            Dialect::Web => methods::lookup(name),
            Dialect::Rest => rest::lookup(name),
        }
    }
}

/// Everything the API handlers share.
pub struct ApiState {
    pub hub: Arc<Hub>,
    /// `-r`; `None` disables the API. Changeable at run time through `set_config`.
    pub token: RwLock<Option<String>>,
    /// `-a`, kept here so `set_config` can change it for the admin console.
    pub admin_password: RwLock<Option<String>>,
    /// `-x`: publishing to a missing channel succeeds silently.
    pub ignore_publish_non_existing: bool,
    /// `--allow-set-config-webhooks`: `set_config` may change where webhooks go.
    pub allow_set_config_webhooks: bool,
    /// Most channel names in one `publish_multi`.
    pub publish_multi_max_channels: usize,
    /// Wrong tokens per client address (`--max-wrong-tokens-per-ip`).
    pub wrong_tokens: WrongTokens,
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
    /// Parses a query string or urlencoded body (public so that it can be fuzzed on its own).
    pub fn parse(data: &[u8]) -> Params {
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

    /// Whether the call asks the webhooks a user's own action would (`send_hook=1`).
    pub fn hooks(&self) -> crate::hub::Hooks {
        if self.send_hook() {
            crate::hub::Hooks::Ask
        } else {
            crate::hub::Hooks::Skip
        }
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

    /// Removes the token keys once checked, so that they are never read as options.
    fn remove(&mut self, key: &str) {
        self.0.remove(key);
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

/// One Web API request as the handlers receive it.
pub struct ApiRequest {
    peer: PeerAddr,
    headers: HeaderMap,
    method: Method,
    query: Option<String>,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for ApiRequest {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<ApiRequest, Response> {
        let (mut parts, body) = req.into_parts();
        let ConnectInfo(peer) = ConnectInfo::<PeerAddr>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let method = parts.method.clone();
        let query = parts.uri.query().map(str::to_owned);
        // The body last: its extractor applies the router's body limit.
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(ApiRequest {
            peer,
            headers,
            method,
            query,
            body,
        })
    }
}

/// `/web/{method}` (and `/{method}` on a separate API listener).
pub async fn handle_web(
    State(api): State<Arc<ApiState>>,
    Path(name): Path<String>,
    req: ApiRequest,
) -> Response {
    handle(Dialect::Web, api, &name, req).await
}

/// `/rest/{method}`: the 0.3.3 dialect.
pub async fn handle_rest(
    State(api): State<Arc<ApiState>>,
    Path(name): Path<String>,
    req: ApiRequest,
) -> Response {
    handle(Dialect::Rest, api, &name, req).await
}

async fn handle(dialect: Dialect, api: Arc<ApiState>, name: &str, req: ApiRequest) -> Response {
    let Some(call) = dialect.lookup(name) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let ApiRequest {
        peer,
        headers,
        method,
        query,
        body,
    } = req;
    let mut params = if method == Method::POST {
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
    let address = api.wrong_tokens.address(&headers, peer.0);
    if let Some(refused) = api.wrong_tokens.refusal(address) {
        return refused;
    }
    let keys = dialect.token_keys();
    // Constant time: the response time says nothing about how much of a guess was right.
    let given = |k: &&str| {
        params
            .get(k)
            .is_some_and(|v| crate::secret::equal(v, &token))
    };
    if !keys.iter().any(given) {
        api.wrong_tokens.record(address);
        return reply(false, json!({"msg": dialect.bad_token()}));
    }
    for key in keys {
        params.remove(key);
    }
    let key = match idempotency::applies_to(name) {
        true => idempotency::key(&params),
        false => Ok(None),
    };
    let outcome = match key {
        Err(e) => Err(e),
        Ok(Some(key)) => {
            idempotency::once(api.clone(), name, &key, call(api.clone(), params)).await
        }
        Ok(None) => call(api.clone(), params).await,
    };
    match outcome {
        Ok(body) => reply(true, body),
        Err(e) => reply(false, json!({"msg": e.to_string()})),
    }
}
