//! Channel polling (§9.1): a channel can fetch its own content from a URL on an interval.
//!
//! One task per polling channel, owning a child token of the hub's shutdown token. The hub keeps
//! the token by channel, so destroying the channel or replacing its `polling` option stops the
//! task (the original leaked pollers).

use super::actions::Publish;
use super::{Hooks, Hub, HubError, Origin};
use crate::engine::LeaseKind;
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Back-off after a failed fetch starts here and doubles up to `max(300 s, interval)`.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

impl Hub {
    /// Stops the channel's poller, and starts a new one if its polling mode is set.
    pub(super) async fn restart_poller(self: &Arc<Self>, channel: &str) {
        let active = matches!(self.engine.polling(channel).await, Ok(Some(p)) if p.is_active());
        let token = self.shutdown.child_token();
        {
            let mut pollers = self.pollers.lock();
            if let Some(old) = pollers.remove(channel) {
                old.cancel();
            }
            if !active {
                return;
            }
            pollers.insert(Arc::from(channel), token.clone());
        }
        tokio::spawn(poller(Arc::downgrade(self), channel.to_owned(), token));
    }

    /// Starts a poller for every polling channel nobody polls (a dead node's).
    pub(super) async fn adopt_pollers(self: &Arc<Self>) {
        match self.engine.polling_channels().await {
            Ok(channels) => {
                for channel in channels {
                    if !self.pollers.lock().contains_key(channel.as_str()) {
                        self.restart_poller(&channel).await;
                    }
                }
            }
            Err(e) => tracing::warn!("adopting pollers failed: {e}"),
        }
    }

    /// Stops the channel's poller, if this node runs one (its channel is gone).
    pub(super) fn stop_poller(&self, channel: &str) {
        if let Some(token) = self.pollers.lock().remove(channel) {
            token.cancel();
        }
    }
}

/// A poller's task, boxed: a poll publishes, publishing may create a channel, and creating one
/// starts a poller, so the future's type would otherwise contain itself.
fn poller(
    hub: Weak<Hub>,
    channel: String,
    token: CancellationToken,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        tokio::select! {
            _ = token.cancelled() => {}
            _ = poll_loop(hub.clone(), &channel) => {
                // Ended by itself (the channel is gone, or another node polls it): forget it, so
                // that it can be adopted again later. A newer poller's token is not cancelled.
                token.cancel();
                if let Some(h) = hub.upgrade() {
                    let mut pollers = h.pollers.lock();
                    if pollers.get(channel.as_str()).is_some_and(|t| t.is_cancelled()) {
                        pollers.remove(channel.as_str());
                    }
                }
            }
        }
    })
}

/// How long a poller's lease lasts without renewal: a dead node's pollers are adopted after it.
pub(super) const POLL_LEASE: Duration = Duration::from_secs(15);

/// Waits `wait` while holding the channel's poll lease (renewed every third of its life): one
/// poller per channel in the whole cluster. False if another node holds it, or the hub is gone.
/// While the engine does not answer, the wait goes on: the lease cannot be renewed, but nobody
/// else can take it either until the engine is back.
async fn wait_holding_lease(hub: &Weak<Hub>, channel: &str, wait: Duration) -> bool {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let Some(h) = hub.upgrade() else { return false };
        match h.engine.lease(LeaseKind::Poll, channel, POLL_LEASE).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => tracing::debug!("renewing the poll lease of {channel} failed: {e}"),
        }
        drop(h);
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::time::sleep(left.min(POLL_LEASE / 3)).await;
    }
}

/// One fetch's result: the payload to publish and the other options of the reply.
struct Fetched {
    payload: Value,
    options: Map<String, Value>,
}

/// Polls until the channel is gone, stops polling, or another node polls it. Engine failures
/// (Redis away) make it wait and try again, never end it.
async fn poll_loop(hub: Weak<Hub>, channel: &str) {
    let mut backoff = FIRST_BACKOFF;
    let mut delay = None;
    loop {
        // Read the current polling settings each round: `persistent` replies may change them.
        let Some(h) = hub.upgrade() else { return };
        let polling = match h.engine.polling(channel).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::info!("polling channel {channel} waits for the engine: {e}");
                drop(h);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        if !polling.is_active() {
            let _ = h.engine.release(LeaseKind::Poll, channel).await;
            return; // a reply set the mode to ""
        }
        drop(h);
        let interval = Duration::from_secs_f64(polling.interval);
        if !wait_holding_lease(&hub, channel, delay.take().unwrap_or(interval)).await {
            return;
        }
        let Some(h) = hub.upgrade() else { return };
        let fetched = match polling.mode.as_str() {
            "simple" => h
                .webhooks()
                .poll_get(&polling.url)
                .await
                .map(|body| Fetched {
                    payload: serde_json::from_str(&body).unwrap_or(Value::String(body)),
                    options: Map::new(),
                }),
            _ => {
                let form = polling
                    .form
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect();
                let d = h.webhooks().poll_post(&polling.url, form).await;
                match d.options.get("error") {
                    Some(_) if !d.success && !d.options.contains_key("payload") => {
                        Err(d.error_msg())
                    }
                    _ => {
                        let mut options = d.options;
                        let payload = options.shift_remove("payload").unwrap_or(Value::Null);
                        Ok(Fetched { payload, options })
                    }
                }
            }
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                tracing::info!("polling {} for channel {channel} failed: {e}", polling.url);
                delay = Some(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(300).max(interval));
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        // A reply may carry options, a new `polling` among them: this loop reads the settings
        // again next round. If the options are refused, it carries on with its settings.
        let mut repoll = false;
        if !fetched.options.is_empty() {
            match h.update_polled_channel(channel, &fetched.options).await {
                Ok(changed) => repoll = changed,
                Err(e) => {
                    tracing::info!("polling reply for channel {channel} has bad options: {e}")
                }
            }
        }
        let published = h
            .publish(Publish {
                publisher: None,
                originator: Some(&polling.originator),
                origin: &Origin::default(),
                channel,
                payload: &super::raw(&fetched.payload),
                hooks: Hooks::Skip,
            })
            .await;
        match published {
            Ok(()) => {}
            Err(HubError::Engine(e)) => {
                // Not published: counted by the engine, reported here; the next round tries anew.
                tracing::warn!("polled content for channel {channel} not published: {e}");
                delay = Some(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(300).max(interval));
                continue;
            }
            Err(_) => return, // the channel is gone
        }
        if polling.mode == "once" && !repoll {
            return;
        }
    }
}
