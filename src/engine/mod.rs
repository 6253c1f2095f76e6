//! The engine: everything the nodes of one hookbox server share. Channels (existence, settings,
//! history, state, members), the user registry, and the delivery of each channel's events to the
//! connections of this node, in one order per channel for everybody.
//!
//! The hub above it keeps HookBox's rules (who may do what, which webhooks, which errors) and
//! never touches shared state but through the [`Broker`] interface ([`broker`]), which every
//! engine implements in its own folder. Each call is one decision, made
//! atomically by the engine: create-if-absent reports whether this call created the channel, a
//! join whether the user was already a member, a detach whether it was the user's last
//! connection, a destroy whether the channel was still empty. So decisions that must happen once
//! (and fire their webhook once) happen once, whichever node asks.
//!
//! - [`memory::MemoryEngine`] (the default) keeps it all in this process, in sharded maps; each
//!   decision's event goes, under its channel's lock, to this node's local index.
//! - [`redis::RedisEngine`] keeps it in Redis (a single server, a Redis Cluster, or the master
//!   Redis Sentinel names): one Lua script per decision, the channel's events through pub/sub to
//!   every node, and each node's local index delivering them to its connections.
//!
//! Both deliver through [`delivery::LocalIndex`], one fan-out: a new broker brings its shared
//! state (one folder implementing [`Broker`]) and hands the index its events.
//!
//! Frames are built once per event ([`frames`]) and shared by every recipient; the hub builds
//! PUBLISH frames before calling, the engine the frames that depend on its data (own SUBSCRIBE,
//! presence, STATE_UPDATE).

pub mod broker;
pub mod delivery;
pub mod frames;
pub mod history;
pub mod local;
pub mod memory;
pub mod options;
pub mod redis;

pub use broker::{Attach, Broker, Channels, Expiring, Join, Nodes, Subscribers, Users};
pub use history::{now_stamp, raw, Entry};
pub use local::{Conn, User, UserState};
pub use options::{ChannelSettings, OptionError, Polling, UserOptions, CHANNEL_OPTION_KEYS};

use crate::protocol::OutFrame;
use std::sync::Arc;

/// Why the engine could not answer (never for the memory engine).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The call failed part way: some of its changes may have been made.
    #[error("engine unavailable: {0}")]
    Interrupted(String),
}

impl EngineError {
    /// The same failure, marked as having happened part way through a call.
    pub fn interrupted(self) -> EngineError {
        match self {
            EngineError::Unavailable(e) | EngineError::Interrupted(e) => {
                EngineError::Interrupted(e)
            }
        }
    }
}

/// 64 random bits as 16 hex characters: a channel's epoch, a node's id.
pub fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A channel's flags the hub's rules read before acting (moderation, anonymity, history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    pub moderated_publish: bool,
    pub moderated_subscribe: bool,
    pub moderated_unsubscribe: bool,
    pub anonymous: bool,
    pub keeps_history: bool,
}

impl Flags {
    pub fn of(s: &ChannelSettings) -> Flags {
        Flags {
            moderated_publish: s.is_moderated_publish(),
            moderated_subscribe: s.is_moderated_subscribe(),
            moderated_unsubscribe: s.is_moderated_unsubscribe(),
            anonymous: s.anonymous,
            keeps_history: s.history_size > 0,
        }
    }
}

/// Where a user stands with a channel, before a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    NoChannel,
    /// Already a member (the asking connection is now recorded for the channel).
    Member,
    NotMember(Flags),
}

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    NoChannel,
    /// The user was a member already; nothing was sent.
    AlreadyMember,
    /// The user is a member now: the presence frame went to the others, the own SUBSCRIBE to
    /// the user, and the history recorded it.
    Joined,
    /// The user has no connection left (its last one closed meanwhile).
    UserGone,
}

/// What a leave did: `None` if the user was not a member.
pub type Left = Option<Emptied>;

/// Whether the channel has no subscriber left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emptied(pub bool);

/// A publication: the encoded frame, its history entry (if the channel keeps history), and who
/// receives it.
pub struct Publication<'a> {
    pub frame: OutFrame,
    pub entry: Option<Entry>,
    /// The connection that must not get it (a non-reflective channel's publisher).
    pub skip_conn: Option<&'a str>,
    pub to: Recipients<'a>,
}

/// Who receives a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients<'a> {
    /// Every subscriber.
    Subscribers,
    /// `only_to_sender`: this user's connections (for this channel if subscribed, else all).
    User(&'a str),
    /// `only_to_sender` without a sender (a Web API publish): it is only recorded.
    Nobody,
}

/// What a connection's close left to do.
#[derive(Debug, Default)]
pub struct Detached {
    /// Channels whose last recorded connection of this user this was, in per-connection or
    /// global-unsubscription mode: the user must leave them.
    pub emptied: Vec<Arc<str>>,
    /// It was the user's last connection: the disconnect cascade must run.
    pub last: bool,
}

/// What claiming an idempotency key found (see `api::idempotency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this call's now: run it, then settle the key.
    New,
    /// Another call holds the key and is still running.
    Pending,
    /// A call with this key was applied; its answer (JSON text).
    Done(String),
    /// Too many keys are remembered to take another (the memory engine's bound).
    Full,
}

/// What a lease is for. A lease is held by one node at a time, for a while (see
/// [`Nodes::lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// Asking the create_channel webhook for a new channel: one node at a time per channel.
    Create,
    /// Running a channel's poller: one node per channel.
    Poll,
}

/// A node of the server, as the admin console shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeInfo {
    pub id: String,
    /// Where the node listens (`interface:port`).
    pub address: String,
    /// When it started, and when its heartbeat was last seen (Unix milliseconds).
    pub since: i64,
    pub seen: i64,
    /// Its heartbeat is fresher than `--node-timeout`.
    pub alive: bool,
    pub connections: usize,
    /// The node answering.
    pub this: bool,
}

/// One connection of a user, as the admin console shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConnInfo {
    pub id: String,
    pub transport: Option<&'static str>,
    pub address: String,
    /// When it connected (Unix milliseconds).
    pub since: i64,
    /// The node it is on.
    pub node: String,
}

/// What the engine found left behind by a node that died.
#[derive(Debug)]
pub enum Reaped {
    /// A connection of the dead node: its close handling must run (webhooks included).
    Connection(Arc<Conn>, Arc<str>),
    /// Its pollers stopped: channels that poll without a poller must get one.
    Pollers,
}

/// A request relayed to the node that owns what it is about (a CSP request whose session lives
/// on another node): the endpoint and the request's form.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RelayRequest {
    pub endpoint: String,
    pub form: Vec<(String, String)>,
}

/// The owner's answer to a relayed request, as the HTTP response it would have given.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RelayReply {
    pub status: u16,
    pub reason: Option<String>,
    pub content_type: String,
    pub body: String,
}

/// How a relayed request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Relayed {
    Reply(RelayReply),
    /// No node listens under that id: it is gone (or there is no other node).
    Gone,
    /// The node listens but did not answer in time (it may be busy, or Redis slow).
    NoAnswer,
    /// The node runs too many relayed requests to take another.
    Busy,
}

/// Runs the requests other nodes relay to this one (registered by the app).
pub type RelayHandler = Arc<
    dyn Fn(RelayRequest) -> std::pin::Pin<Box<dyn std::future::Future<Output = RelayReply> + Send>>
        + Send
        + Sync,
>;

/// The engine this node uses.
pub type Engine = Box<dyn Broker>;
