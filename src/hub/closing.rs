//! What happens when a connection goes away: detach it, apply the per-connection / global
//! unsubscription rules, and if it was the user's last connection (and the user does not come
//! back within `--leave-grace`, see `leaving`) run the cascade — forced unsubscribes (with
//! destroy attempts), removal of the user, then the disconnect webhook.
//!
//! This work is owed to the web application and to the other users whatever the engine's state,
//! so it is never dropped: each engine step is retried (with backoff) until the engine answers,
//! for instance until Redis is back. Each step is retried on its own, so a webhook already sent
//! is not sent again. At shutdown the drain's deadline bounds the wait; what is left then is
//! cleaned up by the other nodes, which reap this node's connections once its heartbeat stops.

use super::{Conn, Hub, Origin};
use crate::engine::EngineError;
use crate::webhook::Hook;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// First and longest wait between two tries of an engine step of the close handling.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Hub {
    /// A connection went away; see the module docs.
    pub async fn connection_closed(self: &Arc<Self>, user: &str, conn: &Arc<Conn>) {
        let detached = self
            .until_engine("detach", || self.engine.detach(user, conn))
            .await;
        let origin = Origin::api(conn.cookie.clone());
        for channel in &detached.emptied {
            self.forced_leave(user, &origin, channel).await;
        }
        if !detached.last {
            return;
        }
        // A user the web app disconnected leaves at once: no grace period.
        if !conn.outbox.kicked() && self.came_back(user).await {
            return;
        }
        // While the user has no connection, nothing can subscribe it (see `subscribe`), so this
        // snapshot is complete. A tab that attaches meanwhile (a page reload) keeps the user and
        // its remaining subscriptions: the cascade stops there.
        let channels = self
            .until_engine("user channels", || self.engine.user_channels(user))
            .await;
        for channel in channels {
            let attached = self
                .until_engine("user connections", || self.engine.has_connections(user))
                .await;
            if attached {
                return;
            }
            self.forced_leave(user, &origin, &channel).await;
        }
        // A new tab attached, or another cascade already removed the user: no disconnect.
        let removed = self
            .until_engine("user removal", || self.engine.remove_user(user))
            .await;
        if removed {
            let form = vec![("name", user.to_owned())];
            self.inform(Hook::Disconnect, form, &origin).await;
        }
    }

    /// The cascade's unsubscribe: the unsubscribe webhook of a moderated channel is called and
    /// its answer ignored; an emptied channel gets the usual destroy attempt.
    async fn forced_leave(self: &Arc<Self>, user: &str, origin: &Origin, channel: &str) {
        let flags = self
            .until_engine("membership", || self.engine.member_flags(channel, user))
            .await;
        let Some(flags) = flags else {
            return;
        };
        if flags.moderated_unsubscribe {
            let form = vec![
                ("channel_name", channel.to_owned()),
                ("user", user.to_owned()),
            ];
            self.inform(Hook::Unsubscribe, form, origin).await;
        }
        let left = self
            .until_engine("leave", || self.engine.leave(channel, user))
            .await;
        if left.is_some() {
            self.observe(channel, || format!("UNSUBSCRIBE {user} (closed)"));
        }
        if left.is_some_and(|emptied| emptied.0) && self.destroy_approved(channel).await {
            let destroyed = self
                .until_engine("destroy", || self.engine.destroy_if_empty(channel))
                .await;
            if destroyed {
                self.stopped(channel);
            }
        }
    }

    /// Runs an engine step until it succeeds. The first failure is logged (WARN) and every retry
    /// counted; the recovery is logged too.
    pub(super) async fn until_engine<T, F, Fut>(&self, what: &str, mut step: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let mut delay = RETRY_FIRST;
        let mut failed = false;
        loop {
            match step().await {
                Ok(v) => {
                    if failed {
                        tracing::info!("close handling: {what} done after the engine came back");
                    }
                    return v;
                }
                Err(e) => {
                    if !failed {
                        tracing::warn!("close handling: {what} failed ({e}); retrying");
                    }
                    failed = true;
                    crate::metrics::close_retry();
                    // Jittered, so that many closes waiting on one outage do not retry in step.
                    let jitter = rand::random_range(0.8..1.2);
                    tokio::time::sleep(delay.mul_f64(jitter)).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}
