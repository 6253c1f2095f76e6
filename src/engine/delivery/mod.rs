//! This node's delivery, the one fan-out of every engine: which local connections receive which
//! channel, fed by the events a broker hands over ([`Event`], [`UserEvent`]) and the channel as
//! it stands ([`SnapshotView`], of a [`Snapshot`] read from the broker or of the broker's own
//! channel).
//!
//! The index ([`LocalIndex`]) knows nothing of how the events travel: the Redis engine parses
//! its pub/sub messages into these types (`engine/redis/wire.rs`) and hands them over in the
//! pub/sub reader; the memory engine hands each over under its channel's lock, as it decides
//! it; another broker would do the same from its own wire. What needs waiting on the broker
//! comes back as a [`Followup`] (the memory engine has none to do).

mod index;
#[cfg(test)]
mod tests;

pub use index::LocalIndex;

use crate::engine::history::History;
use crate::engine::options::ChannelSettings;
use crate::engine::User;
use crate::protocol::OutFrame;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// A channel read atomically: its epoch and offset, settings, history, state and members.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub epoch: String,
    pub offset: u64,
    /// The highest offset of a publication no longer in (or never in) the history.
    pub floor: u64,
    pub settings: ChannelSettings,
    pub history: History,
    pub state: Map<String, Value>,
    pub members: Vec<String>,
}

/// A channel event, as a broker hands it over: the channel's epoch, the event's offset in it
/// (consecutive: a gap means events were lost), what happened, and its frame (encoded once).
#[derive(Debug)]
pub struct Event<'a> {
    /// Borrowed from a broker that keeps it, owned by one that parsed it.
    pub epoch: Cow<'a, str>,
    pub offset: u64,
    pub kind: Kind,
    /// `None` for an event that carries none (a destroy; a join without presence).
    pub frame: Option<OutFrame>,
}

#[derive(Debug, PartialEq)]
pub enum Kind {
    /// A publication: the connection to skip (`""` none) and the recipients (`*`, `u:<name>`,
    /// `-`).
    Publish { skip_conn: String, to: String },
    /// A frame for every member but `skip_user` (`""` none): STATE_UPDATE.
    Broadcast { skip_user: String },
    /// `user` joined at the request of `node`; the frame (if any) is the presence SUBSCRIBE
    /// for the others.
    Join { user: String },
    /// `user` left; the frame is the UNSUBSCRIBE, for the others too when `presence`.
    Leave { user: String, presence: bool },
    /// The channel was removed; members (if any) get an UNSUBSCRIBE stamped `stamp`.
    Destroy { stamp: String },
}

impl Snapshot {
    /// The snapshot as a catch-up reads it.
    pub fn view(&self) -> SnapshotView<'_> {
        SnapshotView {
            epoch: &self.epoch,
            offset: self.offset,
            floor: self.floor,
            settings: &self.settings,
            history: &self.history,
            state: &self.state,
            presence: if self.settings.presenceful {
                self.members.iter().map(String::as_str).collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// A channel as a catch-up shows it, borrowed: from a [`Snapshot`] read from a broker, or from
/// the channel itself where the broker keeps it (no copy of its history or state).
#[derive(Debug)]
pub struct SnapshotView<'a> {
    pub epoch: &'a str,
    pub offset: u64,
    /// The highest offset of a publication no longer in (or never in) the history.
    pub floor: u64,
    pub settings: &'a ChannelSettings,
    pub history: &'a History,
    pub state: &'a Map<String, Value>,
    /// The members an own SUBSCRIBE shows: a presence channel's, else none.
    pub presence: Vec<&'a str>,
}

/// An event of one user, for its connections on this node.
#[derive(Debug)]
pub enum UserEvent {
    /// A frame for every connection of the user (MESSAGE).
    Frame(OutFrame),
    /// An `only_to_sender` publication of `channel`, which the user was not in (so its
    /// connections may not receive the channel): to every connection of the user but
    /// `skip_conn`. The frame carries its offset.
    Publication {
        channel: String,
        frame: OutFrame,
        skip_conn: Option<String>,
    },
    /// Close every connection of the user (`/web/disconnect`).
    Kick,
    /// The user's options changed (a connect or `set_user_options` on some node).
    Options(Value),
    /// The user joined `channel` through `node`: this node's connections catch up (unless it
    /// is this node, whose connections are in already).
    Joined { channel: String, node: String },
}

/// Something the index cannot do itself because it must wait (on the broker).
pub enum Followup {
    /// This node's connections of `user` must catch up with `channel`.
    CatchUp { channel: String, user: Arc<User> },
    /// `channel` has no local member left: the broker may stop sending its events here.
    Unsubscribe(String),
    /// Events of `channel` were lost (logged and counted): its members here are checked against
    /// a fresh snapshot, since a lost leave or destroy would leave them receiving it.
    Lost(String),
}
