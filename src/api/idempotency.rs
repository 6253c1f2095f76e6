//! Idempotent Web API calls: `publish`, `publish_multi` and `message` take an `idempotency_key`,
//! so that a web app that did not hear the answer (a timeout, a dropped connection) can send the
//! call again without publishing twice. Within [`WINDOW`] of a successful call, a call with the
//! same key (and method) is not applied again and answers what the first one answered, on every
//! node (the keys live in the engine). A call that failed lets its key go, so its retry runs. A
//! call that comes while the first is still running waits for its answer (up to [`WAIT`]).

use super::{ApiError, ApiState, Outcome, Params};
use crate::engine::Claim;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// How long a key is remembered after its call.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// How long a call waits for another with the same key to finish.
const WAIT: Duration = Duration::from_secs(30);
/// Longest key.
const MAX_KEY: usize = 128;

/// The methods that take a key.
pub fn applies_to(method: &str) -> bool {
    matches!(method, "publish" | "publish_multi" | "message")
}

/// The call's key, if it gave one: 1 to [`MAX_KEY`] visible ASCII characters.
pub fn key(params: &Params) -> Result<Option<String>, ApiError> {
    let Some(key) = params.get("idempotency_key") else {
        return Ok(None);
    };
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::Invalid(format!(
            "Invalid idempotency_key (1 to {MAX_KEY} visible ASCII characters)"
        )));
    }
    Ok(Some(key.to_owned()))
}

/// Runs `call` once per `(method, key)` within the window.
pub async fn once<F, Fut>(api: &ApiState, method: &str, key: &str, call: F) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let engine = api.hub.engine();
    let key = format!("{method}:{key}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut pause = Duration::from_millis(10);
    loop {
        match engine.claim_key(&key, WINDOW).await.map_err(hub)? {
            Claim::New => break,
            Claim::Done(answer) => {
                return Ok(serde_json::from_str::<Value>(&answer).unwrap_or_default());
            }
            Claim::Full => {
                return Err(ApiError::Invalid(
                    "Too many idempotency keys in use: try again later".to_owned(),
                ))
            }
            Claim::Pending if tokio::time::Instant::now() >= deadline => {
                return Err(ApiError::Invalid(
                    "A call with this idempotency_key is still running".to_owned(),
                ))
            }
            Claim::Pending => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
    let outcome = call().await;
    let answer = outcome.as_ref().ok().map(Value::to_string);
    engine
        .settle_key(&key, answer.as_deref(), WINDOW)
        .await
        .map_err(hub)?;
    outcome
}

fn hub(e: crate::engine::EngineError) -> ApiError {
    ApiError::Hub(e.into())
}
