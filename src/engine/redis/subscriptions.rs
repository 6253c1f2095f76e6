//! This node's pub/sub subscriptions and what keeps its local index in line with Redis:
//! catch-ups of joining connections, resynchronisations after lost events, abandoned joins.

use super::replies::SnapshotReply;
use super::{scripts, unavailable, Inner, Link, Members};
use crate::engine::delivery::Snapshot;
use crate::engine::{Conn, EngineError, User};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

impl Inner {
    /// Subscribes this node's pub/sub connection to `chan` unless it is already.
    pub(super) async fn subscribe(&self, chan: &str) -> Result<(), EngineError> {
        let mut subscribed = self.subscribed.lock().await;
        if subscribed.contains(chan) {
            return Ok(());
        }
        let mut link = self.pubsub.clone();
        let r = match &mut link {
            Link::Single(c) => c.subscribe(chan).await,
            Link::Followed(c) => c.current().subscribe(chan).await,
            Link::Cluster(c) => c.ssubscribe(chan).await,
        };
        r.map_err(unavailable)?;
        subscribed.insert(chan.to_owned());
        Ok(())
    }

    /// Unsubscribes from `chan` if `unused` still holds once it is this call's turn.
    pub(super) async fn unsubscribe(&self, chan: &str, unused: impl FnOnce() -> bool) {
        let mut subscribed = self.subscribed.lock().await;
        if !subscribed.contains(chan) || !unused() {
            return;
        }
        let mut link = self.pubsub.clone();
        let r = match &mut link {
            Link::Single(c) => c.unsubscribe(chan).await,
            Link::Followed(c) => c.current().unsubscribe(chan).await,
            Link::Cluster(c) => c.sunsubscribe(chan).await,
        };
        match r {
            Ok(()) => {
                subscribed.remove(chan);
            }
            Err(e) => {
                crate::metrics::engine_error();
                tracing::warn!("unsubscribing from {chan} failed: {e}");
            }
        }
    }

    /// The snapshot of a channel, `None` if it does not exist. Its members are read only when
    /// `members` asks for them or the channel has presence (a catch-up shows them then): a
    /// storm of returns to one channel of thousands would read them all each time.
    pub(super) async fn snapshot(
        &self,
        channel: &str,
        members: Members,
    ) -> Result<Option<Snapshot>, EngineError> {
        let k = self.keys.channel(channel);
        let reply: SnapshotReply = self
            .invoke(
                scripts::SNAPSHOT
                    .key(&k.meta)
                    .key(&k.history)
                    .key(&k.members)
                    .key(&k.state)
                    .arg(match members {
                        Members::All => "1",
                        Members::ForPresence => "0",
                    }),
            )
            .await?;
        Ok(reply.0.and_then(|items| items.read(self.history_max_bytes)))
    }

    /// Brings `conns` of `user` into `channel`: pending slots, the subscription, a snapshot
    /// (`snap`, or one read now), then their own SUBSCRIBE and what arrived meanwhile.
    pub(super) async fn catch_up(
        &self,
        channel: &str,
        user: &Arc<User>,
        conns: &[Arc<Conn>],
        initial_data: Option<&Value>,
    ) -> Result<(), EngineError> {
        let (added, _) = self.index.begin_catch_up(channel, user, conns);
        if added.is_empty() {
            return Ok(());
        }
        let events = self.keys.channel(channel).events;
        let result = async {
            self.subscribe(&events).await?;
            self.snapshot(channel, Members::ForPresence).await
        }
        .await;
        match result {
            Ok(Some(snap)) => {
                self.index
                    .finish_catch_up(channel, user, &added, &snap.view(), initial_data);
                Ok(())
            }
            Ok(None) => {
                self.abandon(channel, &user.name, &added).await;
                Ok(())
            }
            Err(e) => {
                self.abandon(channel, &user.name, &added).await;
                Err(e)
            }
        }
    }

    /// Brings this node's view of `channel` in line with Redis after some of its events were
    /// lost: a snapshot, then (once the events up to it have had a moment to arrive) the members
    /// checked against it; see [`LocalIndex::reconcile`].
    pub(super) async fn resync(&self, channel: &str) {
        let snap = match self.snapshot(channel, Members::All).await {
            Ok(snap) => snap,
            Err(e) => {
                tracing::warn!("resynchronising channel {channel} failed: {e}");
                return;
            }
        };
        if let Some(snap) = &snap {
            let same_epoch = self
                .index
                .position(channel)
                .is_some_and(|(epoch, _)| epoch.as_deref() == Some(snap.epoch.as_str()));
            if same_epoch {
                self.index
                    .delivered(channel, snap.offset, Duration::from_secs(1))
                    .await;
            }
        }
        if self.index.reconcile(channel, snap.as_ref()) {
            let events = self.keys.channel(channel).events;
            let index = self.index.clone();
            let channel = channel.to_owned();
            self.unsubscribe(&events, move || !index.has_channel(&channel))
                .await;
        }
    }

    /// After the pub/sub connection was lost and is back: every channel this node delivers is
    /// resynchronised, since events published meanwhile never came.
    pub(super) async fn resync_all(&self) {
        for channel in self.index.channels() {
            self.resync(&channel).await;
        }
    }

    pub(super) async fn abandon(&self, channel: &str, user: &str, conns: &[Arc<Conn>]) {
        if self.index.abandon_catch_up(channel, user, conns) {
            let events = self.keys.channel(channel).events;
            let index = self.index.clone();
            let channel = channel.to_owned();
            self.unsubscribe(&events, move || !index.has_channel(&channel))
                .await;
        }
    }
}
