//! The local index: which of this node's connections receive which channel, and the delivery of
//! the events a broker hands over into their outboxes.
//!
//! A broker hands events over synchronously, once per event (the Redis engine in its pub/sub
//! reader, the memory engine under the channel's lock): the index pushes frames into outboxes
//! and never waits. Every channel's events carry consecutive offsets, so a gap (events lost
//! while Redis was unreachable) is seen and counted.
//!
//! A connection starts receiving a channel only after its own SUBSCRIBE: it gets a *slot* in the
//! channel, pending until a snapshot of the channel (at offset S) is known; frames arriving
//! meanwhile are kept in the slot; then the own SUBSCRIBE goes out, followed by the kept frames
//! newer than S, and the slot delivers everything newer than S from then on.

use super::{Event, Followup, Kind, Snapshot, SnapshotView, UserEvent};
use crate::engine::frames::{self, history_room, Shown, SubscribeView};
use crate::engine::{Conn, User};
use crate::outbox::CloseReason;
use crate::protocol::{OutFrame, Position};
use indexmap::IndexMap;
use parking_lot::Mutex;
use serde_json::Value;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

const SHARDS: usize = 32;

/// One lock's worth of local channels.
type Shard = Mutex<HashMap<Arc<str>, LocalChannel>>;

/// One connection's place in a channel.
struct Slot {
    conn: Arc<Conn>,
    /// Events up to this offset are already in the connection's own SUBSCRIBE.
    after: u64,
    /// Until the own SUBSCRIBE is out: the frames that arrived meanwhile, with their offsets
    /// (boxed: 8 bytes in every slot instead of 24; a catch-up is short, and slots are many).
    #[allow(clippy::box_collection)]
    pending: Option<Box<Vec<(u64, OutFrame)>>>,
    /// The position the connection asked to recover from, for its coming own SUBSCRIBE (boxed:
    /// rare, and slots are many).
    recover: Option<Box<Position>>,
}

impl Slot {
    /// An event at `offset` for this connection: kept while its own SUBSCRIBE is on the way,
    /// sent if that SUBSCRIBE did not already show it.
    fn offer(&mut self, offset: u64, frame: &OutFrame) {
        match &mut self.pending {
            Some(kept) => kept.push((offset, frame.clone())),
            None if offset > self.after => self.conn.send(frame),
            None => {}
        }
    }
}

/// A local user that is a member of a channel, with its connections' slots.
struct Member {
    user: Arc<User>,
    /// Nearly always one (a tab): kept inline, one allocation less per member.
    slots: SmallVec<[Slot; 1]>,
}

#[derive(Default)]
struct LocalChannel {
    /// The channel's epoch, once an event or a snapshot told it (offsets count within it).
    epoch: Option<String>,
    /// The offset of the last event delivered (0: none yet).
    last: u64,
    /// This node's members, by user name (in join order): a storm of thousands of users
    /// joining or leaving one channel finds each in one step, not by a scan of all.
    members: IndexMap<Arc<str>, Member>,
}

impl LocalChannel {
    /// Takes `epoch` as the channel's. If it had another, the channel this node knew was
    /// destroyed and created again without this node seeing it (the events were lost, or Redis
    /// lost its data): its members here are members no more, so they get their UNSUBSCRIBE, and
    /// only connections joining the new channel stay (with what they kept cleared: it was of the
    /// old one). True if the channel was replaced.
    fn adopt_epoch(&mut self, channel: &str, epoch: &str) -> bool {
        match &self.epoch {
            Some(e) if e == epoch => return false,
            None => {
                self.epoch = Some(epoch.to_owned());
                return false;
            }
            Some(_) => {}
        }
        self.epoch = Some(epoch.to_owned());
        self.last = 0;
        let stamp = crate::engine::now_stamp();
        for m in self.members.values_mut() {
            let before = m.slots.len();
            m.slots.retain(|s| s.pending.is_some());
            for s in &mut m.slots {
                s.pending = Some(Box::default());
            }
            if m.slots.len() < before {
                let frame = frames::membership("UNSUBSCRIBE", channel, &m.user.name, &stamp);
                let mut st = m.user.state.lock();
                st.send_all(&frame);
                if m.slots.is_empty() {
                    st.channels.shift_remove(channel);
                }
            }
        }
        self.members.retain(|_, m| !m.slots.is_empty());
        true
    }

    fn member(&mut self, user: &str) -> Option<&mut Member> {
        self.members.get_mut(user)
    }

    /// Drops `user`'s member if none of its connections has a slot left.
    fn drop_if_slotless(&mut self, user: &str) {
        if self.members.get(user).is_some_and(|m| m.slots.is_empty()) {
            self.members.shift_remove(user);
        }
    }

    /// Sends (or keeps, for pending slots) a frame to the members' connections that receive
    /// this channel.
    fn deliver(
        &mut self,
        channel: &str,
        offset: u64,
        frame: &OutFrame,
        skip_user: Option<&str>,
        skip_conn: Option<&str>,
        only_user: Option<&str>,
    ) {
        for m in self.members.values_mut() {
            if skip_user == Some(&*m.user.name) || only_user.is_some_and(|u| u != &*m.user.name) {
                continue;
            }
            let st = m.user.state.lock();
            let receives = st.receives(channel, skip_conn);
            for slot in m.slots.iter_mut() {
                if receives(&slot.conn) {
                    slot.offer(offset, frame);
                }
            }
        }
    }
}

pub struct LocalIndex {
    /// This node's id (its own user events need no follow-up).
    node: Arc<str>,
    shards: Box<[Shard]>,
    hasher: RandomState,
    /// Users with at least one connection on this node.
    pub users: Mutex<HashMap<Arc<str>, Arc<User>>>,
    /// Woken after each channel event is delivered (see [`LocalIndex::delivered`]).
    delivered: tokio::sync::Notify,
}

impl LocalIndex {
    pub fn new(node: Arc<str>) -> LocalIndex {
        LocalIndex {
            node,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            users: Mutex::new(HashMap::new()),
            delivered: tokio::sync::Notify::new(),
        }
    }

    fn shard(&self, channel: &str) -> &Shard {
        &self.shards[self.hasher.hash_one(channel) as usize % SHARDS]
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.lock().get(name).cloned()
    }

    /// Delivers one event of `channel`; what needs waiting is returned to the caller to spawn.
    pub fn on_channel_event(&self, channel: &str, ev: Event<'_>) -> Option<Followup> {
        let followup = self.deliver_event(channel, ev);
        self.delivered.notify_waiters();
        followup
    }

    fn deliver_event(&self, channel: &str, ev: Event<'_>) -> Option<Followup> {
        let frame = ev.frame;
        let mut shard = self.shard(channel).lock();
        let Some(lc) = shard.get_mut(channel) else {
            // No connection here receives the channel; a user of this node may still be
            // concerned with its connections that never did (per-connection subscriptions).
            self.deliver_unslotted(channel, &ev.kind, frame);
            return None;
        };
        if lc.adopt_epoch(channel, &ev.epoch) {
            crate::metrics::replaced_channel();
            tracing::warn!("channel {channel} was replaced without this node seeing it go");
            if lc.members.is_empty() {
                shard.remove(channel);
                return Some(Followup::Unsubscribe(channel.to_owned()));
            }
        }
        if ev.offset <= lc.last {
            return None; // already delivered
        }
        let mut followup = None;
        if lc.last != 0 && ev.offset > lc.last + 1 {
            let lost = ev.offset - lc.last - 1;
            crate::metrics::lost_events(lost);
            tracing::warn!("{lost} events of channel {channel} were lost (Redis unreachable?)");
            followup = Some(Followup::Lost(channel.to_owned()));
        }
        lc.last = ev.offset;
        match ev.kind {
            Kind::Publish { skip_conn, to } => {
                let frame = frame?.at_offset(ev.offset);
                let skip = (!skip_conn.is_empty()).then_some(skip_conn.as_str());
                match to.as_str() {
                    "*" => lc.deliver(channel, ev.offset, &frame, None, skip, None),
                    "-" => {}
                    // only_to_sender to a member (a publisher that is not one gets it through its
                    // own events: `UserEvent::Publication`).
                    user => {
                        let user = user.strip_prefix("u:").unwrap_or(user);
                        lc.deliver(channel, ev.offset, &frame, None, skip, Some(user));
                    }
                }
            }
            Kind::Broadcast { skip_user } => {
                let skip = (!skip_user.is_empty()).then_some(skip_user.as_str());
                lc.deliver(channel, ev.offset, &frame?, skip, None, None);
            }
            Kind::Join { user } => {
                if let Some(frame) = frame {
                    lc.deliver(channel, ev.offset, &frame, Some(&user), None, None);
                }
            }
            Kind::Leave { user, presence } => {
                let frame = frame?;
                if presence {
                    lc.deliver(channel, ev.offset, &frame, Some(&user), None, None);
                }
                if let Some(u) = self.user(&user) {
                    u.left(channel, &frame);
                }
                lc.members.shift_remove(&*user);
                if lc.members.is_empty() {
                    shard.remove(channel);
                    return Some(Followup::Unsubscribe(channel.to_owned()));
                }
            }
            Kind::Destroy { stamp } => {
                let lc = shard.remove(channel)?;
                for m in lc.members.into_values() {
                    m.user.removed_from(channel, &stamp);
                }
                return Some(Followup::Unsubscribe(channel.to_owned()));
            }
        }
        followup
    }

    /// An event of a channel no connection here receives: a leaving user's own UNSUBSCRIBE
    /// (and the channel forgotten).
    fn deliver_unslotted(&self, channel: &str, kind: &Kind, frame: Option<OutFrame>) {
        if let (Kind::Leave { user, .. }, Some(frame)) = (kind, frame) {
            if let Some(u) = self.user(user) {
                u.left(channel, &frame);
            }
        }
    }

    /// Applies one event of `user` to its connections on this node.
    pub fn on_user_event(&self, user: &str, event: UserEvent) -> Option<Followup> {
        // A join this node asked for: its connections are already in.
        if matches!(&event, UserEvent::Joined { node, .. } if *node == *self.node) {
            return None;
        }
        let u = self.user(user)?;
        match event {
            UserEvent::Frame(frame) => u.state.lock().send_all(&frame),
            UserEvent::Publication {
                channel,
                frame,
                skip_conn,
            } => {
                // The user may have joined the channel since: a connection with a slot there
                // takes it as the channel's traffic (kept while its own SUBSCRIBE is on the way,
                // not again if that SUBSCRIBE's history has it). Lock order: index shard, then
                // the user's state.
                let mut shard = self.shard(&channel).lock();
                let mut member = shard.get_mut(&*channel).and_then(|lc| lc.member(user));
                let offset = frame.offset();
                for c in u.state.lock().conns.iter() {
                    if Some(&*c.id) == skip_conn.as_deref() {
                        continue;
                    }
                    let slot = member
                        .as_mut()
                        .and_then(|m| m.slots.iter_mut().find(|s| Arc::ptr_eq(&s.conn, c)));
                    match slot {
                        Some(slot) => slot.offer(offset, &frame),
                        None => c.send(&frame),
                    }
                }
            }
            UserEvent::Kick => {
                for c in u.state.lock().conns.iter() {
                    c.outbox.close(CloseReason::Kicked);
                }
            }
            UserEvent::Options(v) => {
                if let Some(map) = v.as_object() {
                    let mut st = u.state.lock();
                    let mut opts = crate::engine::UserOptions::default();
                    if opts.apply(map, false).is_ok() {
                        st.options = opts;
                    }
                }
            }
            UserEvent::Joined { channel, .. } => {
                return Some(Followup::CatchUp { channel, user: u });
            }
        }
        None
    }

    /// Gives `conns` of `user` pending slots in `channel` (those that have none), creating the
    /// local channel. Returns the connections that got one, and whether the channel is new here
    /// (its pub/sub subscription is then due).
    pub fn begin_catch_up(
        &self,
        channel: &str,
        user: &Arc<User>,
        conns: &[Arc<Conn>],
    ) -> (Vec<Arc<Conn>>, bool) {
        let mut shard = self.shard(channel).lock();
        let new = !shard.contains_key(channel);
        let lc = shard.entry(Arc::from(channel)).or_default();
        let m = lc
            .members
            .entry(user.name.clone())
            .or_insert_with(|| Member {
                user: user.clone(),
                slots: SmallVec::new(),
            });
        let mut added = Vec::new();
        for c in conns {
            if !m.slots.iter().any(|s| Arc::ptr_eq(&s.conn, c)) {
                m.slots.push(Slot {
                    conn: c.clone(),
                    after: 0,
                    pending: Some(Box::default()),
                    recover: None,
                });
                added.push(c.clone());
            }
        }
        (added, new)
    }

    /// Resolves the pending slots of `conns` with a snapshot of the channel: own SUBSCRIBE, then
    /// the kept frames newer than the snapshot.
    pub fn finish_catch_up(
        &self,
        channel: &str,
        user: &Arc<User>,
        conns: &[Arc<Conn>],
        snap: &SnapshotView<'_>,
        initial_data: Option<&Value>,
    ) {
        let mut shard = self.shard(channel).lock();
        let Some(lc) = shard.get_mut(channel) else {
            return; // destroyed meanwhile
        };
        if lc.adopt_epoch(channel, snap.epoch) {
            crate::metrics::replaced_channel();
            tracing::warn!("channel {channel} was replaced without this node seeing it go");
        }
        let Some(m) = lc.member(&user.name) else {
            return; // left meanwhile
        };
        user.state
            .lock()
            .channels
            .entry(Arc::from(channel))
            .or_default();
        for slot in m.slots.iter_mut() {
            if !conns.iter().any(|c| Arc::ptr_eq(c, &slot.conn)) {
                continue;
            }
            let Some(kept) = slot.pending.take() else {
                continue;
            };
            // A recovery shares the room between the history shown and the replay.
            let room = match slot.recover {
                Some(_) => frames::recovery_room(&slot.conn.outbox),
                None => history_room(&slot.conn.outbox),
            };
            let view = SubscribeView {
                epoch: snap.epoch,
                offset: snap.offset,
                history: snap.history.newest_within(room),
                history_size: snap.settings.history_size,
                history_duration: snap.settings.history_duration,
                state: snap.state,
                presence: snap.presence.clone(),
            };
            // A connection that gave a position gets `recovered` and what it missed up to the
            // snapshot; the kept frames newer than it follow.
            let outbox = &slot.conn.outbox;
            match slot.recover.take() {
                Some(pos) => {
                    let missed = snap.history.missed(
                        (snap.epoch, snap.offset),
                        snap.floor,
                        &pos,
                        room,
                        frames::replay_overhead(channel),
                    );
                    frames::push_recovery(outbox, channel, &user.name, view, initial_data, missed);
                }
                None => {
                    let shown = Shown::to(outbox, None);
                    let own = frames::own_subscribe(channel, &user.name, view, initial_data, shown);
                    outbox.push(&own);
                }
            }
            for (offset, frame) in *kept {
                if offset > snap.offset {
                    slot.conn.send(&frame);
                }
            }
            slot.after = snap.offset;
        }
    }

    /// `conn` of `user` asks to recover from `pos` in `channel`: its slot waits for an own
    /// SUBSCRIBE again, keeping what arrives meanwhile. `None`: it has no slot; `Some(true)`:
    /// the caller must read a snapshot and [`LocalIndex::finish_catch_up`]; `Some(false)`: a
    /// catch-up is under way already, and its own SUBSCRIBE will carry the recovery.
    pub fn request_recovery(
        &self,
        channel: &str,
        user: &str,
        conn: &Arc<Conn>,
        pos: &Position,
    ) -> Option<bool> {
        let mut shard = self.shard(channel).lock();
        let slot = shard
            .get_mut(channel)?
            .member(user)?
            .slots
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.conn, conn))?;
        slot.recover = Some(Box::new(pos.clone()));
        if slot.pending.is_some() {
            return Some(false);
        }
        slot.pending = Some(Box::default());
        Some(true)
    }

    /// A recovery that could not read its snapshot: the slot delivers again, starting with what
    /// it kept meanwhile.
    pub fn cancel_recovery(&self, channel: &str, user: &str, conn: &Arc<Conn>) {
        let mut shard = self.shard(channel).lock();
        let Some(m) = shard.get_mut(channel).and_then(|lc| lc.member(user)) else {
            return;
        };
        if let Some(slot) = m.slots.iter_mut().find(|s| Arc::ptr_eq(&s.conn, conn)) {
            slot.recover = None;
            for (_, frame) in slot.pending.take().map(|kept| *kept).unwrap_or_default() {
                slot.conn.send(&frame);
            }
        }
    }

    /// A connection of a member was recorded for the channel (a SUBSCRIBE of a tab whose user
    /// is in already): it receives the traffic from now on, without an own SUBSCRIBE, as the
    /// original did.
    pub fn add_slot(&self, channel: &str, user: &str, conn: &Arc<Conn>) {
        let mut shard = self.shard(channel).lock();
        let Some(lc) = shard.get_mut(channel) else {
            return;
        };
        let last = lc.last;
        if let Some(m) = lc.member(user) {
            if !m.slots.iter().any(|s| Arc::ptr_eq(&s.conn, conn)) {
                m.slots.push(Slot {
                    conn: conn.clone(),
                    after: last,
                    pending: None,
                    recover: None,
                });
            }
        }
    }

    /// Drops the still-pending slots of `conns` (the join did not happen); returns true if the
    /// channel has no local member left (its subscription can go).
    pub fn abandon_catch_up(&self, channel: &str, user: &str, conns: &[Arc<Conn>]) -> bool {
        let mut shard = self.shard(channel).lock();
        let Some(lc) = shard.get_mut(channel) else {
            return false;
        };
        if let Some(m) = lc.member(user) {
            m.slots
                .retain(|s| s.pending.is_none() || !conns.iter().any(|c| Arc::ptr_eq(c, &s.conn)));
        }
        lc.drop_if_slotless(user);
        if lc.members.is_empty() {
            shard.remove(channel);
            return true;
        }
        false
    }

    /// A connection of `user` closed: its slots go. Returns the channels left without a local
    /// member.
    pub fn drop_connection(&self, user: &Arc<User>, conn: &Arc<Conn>) -> Vec<String> {
        let channels: Vec<Arc<str>> = user.state.lock().channels.keys().cloned().collect();
        let mut emptied = Vec::new();
        for channel in channels {
            let mut shard = self.shard(&channel).lock();
            let Some(lc) = shard.get_mut(&channel) else {
                continue;
            };
            // Only this user's member holds the connection's slots.
            if let Some(m) = lc.member(&user.name) {
                m.slots.retain(|s| !Arc::ptr_eq(&s.conn, conn));
            }
            lc.drop_if_slotless(&user.name);
            if lc.members.is_empty() {
                shard.remove(&channel);
                emptied.push(channel.to_string());
            }
        }
        emptied
    }

    /// Waits (at most `bound`) until this node has delivered `channel`'s event at `offset`, if
    /// it delivers the channel at all: a publish answers after its local subscribers have it.
    pub async fn delivered(&self, channel: &str, offset: u64, bound: std::time::Duration) {
        let _ = tokio::time::timeout(bound, async {
            loop {
                let woken = self.delivered.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let done = match self.shard(channel).lock().get(channel) {
                    Some(lc) => lc.last >= offset,
                    None => true,
                };
                if done {
                    return;
                }
                woken.await;
            }
        })
        .await;
    }

    /// Closes every connection of this node; how many.
    pub fn close_all(&self, reason: CloseReason) -> usize {
        let users: Vec<Arc<User>> = self.users.lock().values().cloned().collect();
        let mut closed = 0;
        for u in users {
            for c in u.state.lock().conns.iter() {
                c.outbox.close(reason.clone());
                closed += 1;
            }
        }
        closed
    }

    /// Users with a connection on this node, and channels with a member on this node.
    pub fn counts(&self) -> (usize, usize) {
        let channels = self.shards.iter().map(|s| s.lock().len()).sum();
        (self.users.lock().len(), channels)
    }

    /// This node's channels.
    pub fn channels(&self) -> Vec<String> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().keys().map(|k| k.to_string()).collect::<Vec<_>>())
            .collect()
    }

    /// The last offset delivered of `channel` in its epoch, if this node delivers it.
    pub fn position(&self, channel: &str) -> Option<(Option<String>, u64)> {
        let shard = self.shard(channel).lock();
        shard.get(channel).map(|lc| (lc.epoch.clone(), lc.last))
    }

    /// Checks this node's members of `channel` against `snap`, a snapshot at least as new as
    /// every event delivered (events up to its offset that never came are counted lost): a member
    /// that is no member in the snapshot left or was removed while its events were lost, so its
    /// connections get their UNSUBSCRIBE and stop receiving the channel; a snapshot of another
    /// epoch means the channel was replaced. Returns true if the channel has no local member
    /// left (its subscription can go).
    pub fn reconcile(&self, channel: &str, snap: Option<&Snapshot>) -> bool {
        let mut shard = self.shard(channel).lock();
        let Some(lc) = shard.get_mut(channel) else {
            return false;
        };
        let stamp = crate::engine::now_stamp();
        let members: &[String] = match snap {
            Some(snap) => {
                if lc.adopt_epoch(channel, &snap.epoch) {
                    crate::metrics::replaced_channel();
                } else if snap.offset > lc.last {
                    crate::metrics::lost_events(snap.offset - lc.last);
                    lc.last = snap.offset;
                }
                &snap.members
            }
            None => &[], // the channel is gone
        };
        let members: std::collections::HashSet<&str> = members.iter().map(String::as_str).collect();
        lc.members.retain(|_, m| {
            let pending = m.slots.iter().any(|s| s.pending.is_some());
            if pending || members.contains(&*m.user.name) {
                return true;
            }
            m.user.removed_from(channel, &stamp);
            false
        });
        if lc.members.is_empty() {
            shard.remove(channel);
            return true;
        }
        false
    }

    /// After a switch to a new master (Sentinel), `snap` is the channel there. A promoted replica
    /// that had not received the last events is behind what this node delivered: their offsets
    /// will be given again, to new events, which must not be taken as delivered. The channel's
    /// position goes back to the snapshot's; the events rolled back are logged and counted as
    /// lost (they are gone from Redis). True if it went back.
    pub fn rewind(&self, channel: &str, snap: &Snapshot) -> bool {
        let mut shard = self.shard(channel).lock();
        let Some(lc) = shard.get_mut(channel) else {
            return false;
        };
        if lc.epoch.as_deref() != Some(snap.epoch.as_str()) || snap.offset >= lc.last {
            return false;
        }
        let back = lc.last - snap.offset;
        crate::metrics::lost_events(back);
        tracing::warn!(
            "channel {channel} is {back} events behind on the new Redis master (they had not \
             been replicated): its offsets {} to {} will be given again",
            snap.offset + 1,
            lc.last
        );
        lc.last = snap.offset;
        true
    }

    /// Whether this node delivers `channel` to anyone (so it must stay subscribed).
    pub fn has_channel(&self, channel: &str) -> bool {
        self.shard(channel).lock().contains_key(channel)
    }
}
