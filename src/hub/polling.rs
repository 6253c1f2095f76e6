//! Channel polling (§9.1): a channel can fetch its own content from a URL on an interval.
//!
//! One task per polling channel, owning a child token of the hub's shutdown token. The token is
//! stored in the channel, so destroying the channel or replacing its `polling` option stops the
//! task (the original leaked pollers).

use super::{Hub, Origin};
use serde_json::{Map, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Back-off after a failed fetch starts here and doubles up to `max(300 s, interval)`.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

impl Hub {
    /// Stops the channel's poller, and starts a new one if its polling mode is set.
    pub(super) fn restart_poller(self: &Arc<Self>, channel: &str) {
        let token = self.shutdown.child_token();
        let started = self.with_channel(channel, |ch| {
            if let Some(old) = ch.poller.take() {
                old.cancel();
            }
            if ch.options.polling.is_active() {
                ch.poller = Some(token.clone());
                true
            } else {
                false
            }
        });
        if started == Some(true) {
            let hub = Arc::downgrade(self);
            let channel = channel.to_owned();
            tokio::spawn(async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = poll_loop(hub, channel) => {}
                }
            });
        }
    }
}

/// One fetch's result: the payload to publish and the other options of the reply.
struct Fetched {
    payload: Value,
    options: Map<String, Value>,
}

async fn poll_loop(hub: Weak<Hub>, channel: String) {
    let mut backoff = FIRST_BACKOFF;
    let mut delay = None;
    loop {
        // Read the current polling settings each round: `persistent` replies may change them.
        let Some(polling) = hub
            .upgrade()
            .and_then(|h| h.with_channel(&channel, |ch| ch.options.polling.clone()))
        else {
            return;
        };
        let interval = Duration::from_secs_f64(polling.interval);
        tokio::time::sleep(delay.take().unwrap_or(interval)).await;
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
        // A reply with a new `polling` option restarts the poller through set_channel_options;
        // if the options are refused, this poller carries on with its settings.
        let mut repoll = fetched.options.contains_key("polling");
        if !fetched.options.is_empty() {
            if let Err(e) = h.set_channel_options(&channel, &fetched.options) {
                tracing::info!("polling reply for channel {channel} has bad options: {e}");
                repoll = false;
            }
        }
        let originator = Some(polling.originator.as_str());
        if h.publish(
            None,
            originator,
            &Origin::default(),
            &channel,
            &super::raw(&fetched.payload),
            false,
        )
        .await
        .is_err()
        {
            return; // the channel is gone
        }
        if polling.mode == "once" && !repoll {
            return;
        }
        if repoll {
            return; // set_channel_options started a fresh poller with the new settings
        }
    }
}
