//! What the admin console's channel view shows live: the events of a channel that pass through
//! this node's hub (publications, joins, leaves, state changes, its destruction), as short text
//! lines. A watcher that falls behind loses lines (a small ring per channel), never slows the hub.

use super::Hub;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Lines kept per watched channel for a slow watcher.
const BACKLOG: usize = 64;

/// The watched channels. One lock, taken per event only to look the channel up (a map that is
/// empty unless an admin watches something).
#[derive(Default)]
pub struct Watchers(Mutex<HashMap<Arc<str>, broadcast::Sender<Arc<str>>>>);

impl Hub {
    /// A stream of `channel`'s events from now on.
    pub fn watch(&self, channel: &str) -> broadcast::Receiver<Arc<str>> {
        let mut map = self.watchers.0.lock();
        // Channels nobody watches any more are forgotten here, so the map stays as small as the
        // number of open watches.
        map.retain(|_, tx| tx.receiver_count() > 0);
        map.entry(Arc::from(channel))
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe()
    }

    /// Tells `channel`'s watchers about an event, if it has any (`line` is only built then).
    pub(super) fn observe(&self, channel: &str, line: impl FnOnce() -> String) {
        let map = self.watchers.0.lock();
        if let Some(tx) = map.get(channel).filter(|tx| tx.receiver_count() > 0) {
            let _ = tx.send(Arc::from(line()));
        }
    }
}
