//! The grace period for leaving (`--leave-grace`): a user whose last connection closes stays a
//! member of its channels for a while, so that a page reload, a network blip or a node restart
//! that brings the user back in time costs no presence frames (UNSUBSCRIBE then SUBSCRIBE to
//! every member of every presence channel) and no unsubscribe / disconnect webhooks. A user that
//! does not come back gets the usual cascade, once (see `closing`).

use super::Hub;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The users in their grace period on this node, each with its latest departure's number: when
/// a user comes back and leaves again on this node, the newer departure's wait takes over, so
/// that the cascade comes a full grace period after the last departure. One entry per waiting
/// close handling, removed when it ends (bounded by the connections that closed in one period).
#[derive(Debug, Default)]
pub(super) struct Departures {
    // A plain lock: one insert and one remove per departure, never held across an await.
    latest: Mutex<HashMap<Box<str>, u64>>,
    next: AtomicU64,
}

impl Departures {
    fn depart(&self, user: &str) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.latest.lock().insert(user.into(), n);
        n
    }

    /// Whether departure `n` is still `user`'s latest here (it is forgotten either way).
    fn finish(&self, user: &str, n: u64) -> bool {
        let mut latest = self.latest.lock();
        match latest.get(user) {
            Some(&m) if m == n => {
                latest.remove(user);
                true
            }
            _ => false,
        }
    }
}

/// The grace period's settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaveGrace {
    /// How long a user without connections stays in its channels (`--leave-grace`; zero: none).
    pub period: Duration,
    /// The longest the wait lasts once shutdown has begun, so that the cascades still run
    /// within `--shutdown-timeout` (a node that exits first would leave the user behind).
    pub at_shutdown: Duration,
}

impl Hub {
    /// After a user's last connection on any node closed: waits for the grace period and says
    /// whether the cascade is someone else's (the user came back, on any node, or left again
    /// here and that newer departure waits now). Counted by result.
    pub(super) async fn came_back(&self, user: &str) -> bool {
        let grace = self.leave_grace;
        if grace.period.is_zero() {
            return false;
        }
        let departure = self.departures.depart(user);
        tokio::select! {
            _ = tokio::time::sleep(grace.period) => {}
            _ = self.shutdown.cancelled() => {
                tokio::time::sleep(grace.period.min(grace.at_shutdown)).await;
            }
        }
        if !self.departures.finish(user, departure) {
            return true;
        }
        let back = self
            .until_engine("user connections", || self.engine.has_connections(user))
            .await;
        crate::metrics::leave(back);
        back
    }
}
