//! Idempotent Web API calls: `publish`, `publish_multi` and `message` take an `idempotency_key`,
//! so that a web app that did not hear the answer (a timeout, a dropped connection) can send the
//! call again without publishing twice. Within [`WINDOW`] of a call, a call with the same key
//! (and method) is not applied again and answers what the first one answered, on every node (the
//! keys live in the engine). A `publish` or `message` that failed applied nothing and lets its
//! key go, so its retry runs; a `publish_multi` that failed may have published to some channels,
//! so its failure is kept and answered like a success. A call that comes while the first is
//! still running waits for its answer.
//!
//! The call runs in a task of its own, which the caller hanging up does not cancel: a key is
//! never left claimed with nothing running. A node that dies mid-call leaves its claim, which
//! lapses after [`pending_ttl`].

use super::{ApiError, ApiState, Outcome, Params};
use crate::engine::Claim;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long a key is remembered after its call.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Longest key.
const MAX_KEY: usize = 128;

/// How long a claim holds while its call runs: the call's webhooks within
/// `--webhook-timeout` each, with room to spare. A call that runs longer than this (a
/// `publish_multi` asking a slow publish webhook for many channels) may be applied again by a
/// retry that comes after it.
fn pending_ttl(api: &ApiState) -> Duration {
    api.hub.webhooks().timeout() * 2 + Duration::from_secs(30)
}

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
pub async fn once(
    api: Arc<ApiState>,
    method: &str,
    key: &str,
    call: Pin<Box<dyn Future<Output = Outcome> + Send>>,
) -> Outcome {
    let key = format!("{method}:{key}");
    let ttl = pending_ttl(&api);
    let deadline = tokio::time::Instant::now() + ttl;
    let mut pause = Duration::from_millis(10);
    loop {
        match api.hub.engine().claim_key(&key, ttl).await.map_err(hub)? {
            Claim::New => break,
            Claim::Done(answer) => return replayed(&answer),
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
    let keep_failures = method == "publish_multi";
    let task = tokio::spawn(async move {
        let outcome = call.await;
        let answer = match &outcome {
            Ok(body) => Some(json!({ "ok": body })),
            Err(e) if keep_failures => Some(json!({ "error": e.to_string() })),
            Err(_) => None,
        };
        let answer = answer.map(|a| a.to_string());
        if let Err(e) = api
            .hub
            .engine()
            .settle_key(&key, answer.as_deref(), WINDOW)
            .await
        {
            // The call's outcome stands; its retries may wait for the claim to lapse.
            tracing::warn!("recording idempotency key {key} failed: {e}");
        }
        outcome
    });
    task.await
        .unwrap_or_else(|e| Err(ApiError::Invalid(format!("The call failed: {e}"))))
}

/// The answer a call with a used key gets: the first call's.
fn replayed(answer: &str) -> Outcome {
    let answer: Value = serde_json::from_str(answer).unwrap_or_default();
    match (answer.get("ok"), answer.get("error")) {
        (Some(body), _) => Ok(body.clone()),
        (None, Some(error)) => Err(ApiError::Invalid(
            error.as_str().unwrap_or_default().to_owned(),
        )),
        (None, None) => Ok(json!({})),
    }
}

fn hub(e: crate::engine::EngineError) -> ApiError {
    ApiError::Hub(e.into())
}
