//! The engine: everything the nodes of one hookbox server share. Channels (existence, settings,
//! history, state, members), the user registry, and the delivery of each channel's events to the
//! connections of this node, in one order per channel for everybody.
//!
//! The hub above it keeps HookBox's rules (who may do what, which webhooks, which errors) and
//! never touches shared state but through these calls. Each call is one decision, made
//! atomically by the engine: create-if-absent reports whether this call created the channel, a
//! join whether the user was already a member, a detach whether it was the user's last
//! connection, a destroy whether the channel was still empty. So decisions that must happen once
//! (and fire their webhook once) happen once, whichever node asks.
//!
//! - [`memory::MemoryEngine`] (the default) keeps it all in this process, in sharded maps; a
//!   publication is encoded once and pushed into the subscribers' outboxes under its channel's
//!   lock.
//! - [`redis::RedisEngine`] keeps it in Redis (a single server, a Redis Cluster, or the master
//!   Redis Sentinel names): one Lua script per decision, the channel's events through pub/sub to
//!   every node, and each node's local index delivering them to its connections.
//!
//! Frames are built once per event ([`frames`]) and shared by every recipient; the hub builds
//! PUBLISH frames before calling, the engine the frames that depend on its data (own SUBSCRIBE,
//! presence, STATE_UPDATE).

pub mod frames;
pub mod history;
pub mod local;
pub mod memory;
pub mod options;
pub mod redis;

pub use history::{now_stamp, raw, Entry};
pub use local::{Conn, User, UserState};
pub use options::{ChannelSettings, OptionError, Polling, UserOptions, CHANNEL_OPTION_KEYS};

use crate::protocol::{OutFrame, Position};
use serde_json::{Map, Value};
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
/// [`Engine::lease`]).
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
}

/// Runs the requests other nodes relay to this one (registered by the app).
pub type RelayHandler = Arc<
    dyn Fn(RelayRequest) -> std::pin::Pin<Box<dyn std::future::Future<Output = RelayReply> + Send>>
        + Send
        + Sync,
>;

/// The engine this node uses.
pub enum Engine {
    // Boxed: the memory engine's maps are inline, the Redis engine is a pointer.
    Memory(Box<memory::MemoryEngine>),
    Redis(redis::RedisEngine),
}

/// Forwards a call to the engine in use.
macro_rules! each {
    ($self:ident, $e:ident => $call:expr) => {
        match $self {
            Engine::Memory($e) => Ok($call),
            Engine::Redis($e) => $call.await,
        }
    };
}

impl Engine {
    // --- cluster -----------------------------------------------------------------------------

    /// Takes or renews a lease for `ttl`; true if this node holds it now. With one node (the
    /// memory engine) every lease is this node's.
    pub async fn lease(
        &self,
        kind: LeaseKind,
        name: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, EngineError> {
        match self {
            Engine::Memory(_) => Ok(true),
            Engine::Redis(e) => e.lease(kind, name, ttl).await,
        }
    }

    /// Claims an idempotency key for `ttl` (see [`Claim`]).
    pub async fn claim_key(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Claim, EngineError> {
        each!(self, e => e.claim_key(key, ttl))
    }

    /// Records the answer of a claimed key for `ttl`, or lets the key go (`None`: the call
    /// failed, and a retry may run).
    pub async fn settle_key(
        &self,
        key: &str,
        answer: Option<&str>,
        ttl: std::time::Duration,
    ) -> Result<(), EngineError> {
        each!(self, e => e.settle_key(key, answer, ttl))
    }

    /// Revokes the resume tickets of `user` issued up to `at_ms` (Unix milliseconds), on every
    /// node, for `keep` (as long as a ticket lives).
    pub async fn revoke_tickets(
        &self,
        user: &str,
        at_ms: i64,
        keep: std::time::Duration,
    ) -> Result<(), EngineError> {
        each!(self, e => e.revoke_tickets(user, at_ms, keep))
    }

    /// The time up to which the resume tickets of `user` are revoked, if they are.
    pub async fn tickets_revoked(&self, user: &str) -> Result<Option<i64>, EngineError> {
        each!(self, e => e.tickets_revoked(user))
    }

    /// Gives a lease back, if this node holds it.
    pub async fn release(&self, kind: LeaseKind, name: &str) -> Result<(), EngineError> {
        match self {
            Engine::Memory(_) => Ok(()),
            Engine::Redis(e) => e.release(kind, name).await,
        }
    }

    /// Users with a connection on this node, and the channels this node knows (see
    /// [`crate::metrics::CHANNELS`]).
    pub fn counts(&self) -> (usize, usize) {
        match self {
            Engine::Memory(e) => e.counts(),
            Engine::Redis(e) => e.counts(),
        }
    }

    /// The nodes of the server (just this one with the memory engine, described by `local`).
    pub async fn nodes(&self, local: NodeInfo) -> Result<Vec<NodeInfo>, EngineError> {
        match self {
            Engine::Memory(e) => Ok(vec![NodeInfo {
                connections: e.connection_count(),
                ..local
            }]),
            Engine::Redis(e) => e.nodes().await,
        }
    }

    /// Names of users with a connection, at most `limit` of them; true if there are more.
    pub async fn user_names(&self, limit: usize) -> Result<(Vec<String>, bool), EngineError> {
        each!(self, e => e.user_names(limit))
    }

    /// A user's connections, wherever they are (`None`: no such user).
    pub async fn connections_of(&self, user: &str) -> Result<Option<Vec<ConnInfo>>, EngineError> {
        each!(self, e => e.connections_of(user))
    }

    /// Whether the engine answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), EngineError> {
        match self {
            Engine::Memory(_) => Ok(()),
            Engine::Redis(e) => e.ping().await,
        }
    }

    /// This node's id among the nodes; `None` with one node (the memory engine).
    pub fn node_id(&self) -> Option<&str> {
        match self {
            Engine::Memory(_) => None,
            Engine::Redis(e) => Some(e.node_id()),
        }
    }

    /// Relays `req` to node `node` and waits (at most `wait`) for its reply. With one node
    /// there is no other to ask.
    pub async fn relay(
        &self,
        node: &str,
        req: RelayRequest,
        wait: std::time::Duration,
    ) -> Result<Relayed, EngineError> {
        match self {
            Engine::Memory(_) => Ok(Relayed::Gone),
            Engine::Redis(e) => e.relay(node, req, wait).await,
        }
    }

    /// Sets what runs the requests other nodes relay to this one.
    pub fn serve_relays(&self, handler: RelayHandler) {
        if let Engine::Redis(e) = self {
            e.serve_relays(handler);
        }
    }

    /// What other nodes left behind when they died, as it is found; `None` with one node.
    pub fn take_reaped(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Reaped>> {
        match self {
            Engine::Memory(_) => None,
            Engine::Redis(e) => e.take_reaped(),
        }
    }

    /// Channels that poll (for adopting the pollers of a dead node).
    pub async fn polling_channels(&self) -> Result<Vec<String>, EngineError> {
        match self {
            Engine::Memory(_) => Ok(Vec::new()),
            Engine::Redis(e) => e.polling_channels().await,
        }
    }

    // --- channels --------------------------------------------------------------------------

    pub async fn channel_exists(&self, ch: &str) -> Result<bool, EngineError> {
        each!(self, e => e.channel_exists(ch))
    }

    pub async fn flags(&self, ch: &str) -> Result<Option<Flags>, EngineError> {
        each!(self, e => e.flags(ch))
    }

    /// Creates a channel from validated options unless it exists; true if this call created it.
    pub async fn create_channel(
        &self,
        ch: &str,
        update: options::ChannelUpdate,
    ) -> Result<bool, EngineError> {
        each!(self, e => e.create_channel(ch, update))
    }

    /// Applies options to an existing channel (`None`: no such channel); true if the poller must
    /// be restarted.
    pub async fn update_channel(
        &self,
        ch: &str,
        opts: &Map<String, Value>,
    ) -> Result<Option<Result<bool, OptionError>>, EngineError> {
        each!(self, e => e.update_channel(ch, opts))
    }

    pub async fn polling(&self, ch: &str) -> Result<Option<Polling>, EngineError> {
        each!(self, e => e.polling(ch))
    }

    /// `/web/get_channel_info`'s body.
    pub async fn channel_info(&self, ch: &str) -> Result<Option<Value>, EngineError> {
        each!(self, e => e.channel_info(ch))
    }

    pub async fn channel_names(&self) -> Result<Vec<Value>, EngineError> {
        each!(self, e => e.channel_names())
    }

    pub async fn members(&self, ch: &str) -> Result<Option<Vec<Arc<str>>>, EngineError> {
        each!(self, e => e.members(ch))
    }

    /// Sets a state key; a STATE_UPDATE goes out if the value changed. False: no channel.
    pub async fn set_state(&self, ch: &str, key: &str, val: Value) -> Result<bool, EngineError> {
        each!(self, e => e.set_state(ch, key, val))
    }

    /// Deletes a state key; a STATE_UPDATE goes out if it existed. False: no channel.
    pub async fn delete_state(&self, ch: &str, key: &str) -> Result<bool, EngineError> {
        each!(self, e => e.delete_state(ch, key))
    }

    /// Removes a channel that has no subscriber; true if removed.
    pub async fn destroy_if_empty(&self, ch: &str) -> Result<bool, EngineError> {
        each!(self, e => e.destroy_if_empty(ch))
    }

    /// Removes a channel, sending each subscriber its own UNSUBSCRIBE (no presence frames);
    /// false if it did not exist.
    pub async fn destroy_channel(&self, ch: &str) -> Result<bool, EngineError> {
        each!(self, e => e.destroy_channel(ch))
    }

    // --- membership and publication ---------------------------------------------------------

    pub async fn membership(
        &self,
        ch: &str,
        user: &str,
        conn: Option<&Arc<str>>,
    ) -> Result<Membership, EngineError> {
        each!(self, e => e.membership(ch, user, conn))
    }

    /// The channel's flags if `user` is one of its members.
    pub async fn member_flags(&self, ch: &str, user: &str) -> Result<Option<Flags>, EngineError> {
        each!(self, e => e.member_flags(ch, user))
    }

    /// Makes `user` a member. With `recover` (the position the asking connection `conn` was at
    /// before it reconnected), that connection's own SUBSCRIBE says whether it is `recovered`
    /// and is followed by the publications it missed.
    pub async fn join(
        &self,
        ch: &str,
        user: &str,
        conn: Option<&Arc<str>>,
        initial_data: Option<&Value>,
        recover: Option<&Position>,
    ) -> Result<Joined, EngineError> {
        each!(self, e => e.join(ch, user, conn, initial_data, recover))
    }

    /// A connection of a member gave a position (it reconnected while its user stayed a
    /// member): it gets an own SUBSCRIBE with `recovered`, then what it missed. False without
    /// such a channel, member or connection here.
    pub async fn recover(
        &self,
        ch: &str,
        user: &str,
        conn: &Arc<str>,
        pos: &Position,
    ) -> Result<bool, EngineError> {
        each!(self, e => e.recover(ch, user, conn, pos))
    }

    /// Removes a member: presence UNSUBSCRIBE to the others (presenceful channels), its own
    /// UNSUBSCRIBE to all its connections, the history entry.
    pub async fn leave(&self, ch: &str, user: &str) -> Result<Left, EngineError> {
        each!(self, e => e.leave(ch, user))
    }

    /// Delivers a publication to the channel's subscribers in channel order; false: no channel.
    pub async fn publish(&self, ch: &str, p: Publication<'_>) -> Result<bool, EngineError> {
        each!(self, e => e.publish(ch, p))
    }

    // --- users ------------------------------------------------------------------------------

    /// Attaches a connection that completed CONNECT to user `name` (created if absent; its
    /// options replaced): sends it `connected` first, then an own SUBSCRIBE for every channel
    /// the user is in. True if the user was created. [`EngineError::Interrupted`]: the
    /// connection may be attached in part, and must be detached.
    pub async fn attach(
        &self,
        conn: &Arc<Conn>,
        name: &str,
        options: UserOptions,
        connected: &OutFrame,
    ) -> Result<bool, EngineError> {
        each!(self, e => e.attach(conn, name, options, connected))
    }

    pub async fn detach(&self, user: &str, conn: &Arc<Conn>) -> Result<Detached, EngineError> {
        each!(self, e => e.detach(user, conn))
    }

    pub async fn user_channels(&self, user: &str) -> Result<Vec<Arc<str>>, EngineError> {
        each!(self, e => e.user_channels(user))
    }

    pub async fn has_connections(&self, user: &str) -> Result<bool, EngineError> {
        each!(self, e => e.has_connections(user))
    }

    /// Removes a user that has no connection; true if removed (and so its disconnect is due).
    pub async fn remove_user(&self, user: &str) -> Result<bool, EngineError> {
        each!(self, e => e.remove_user(user))
    }

    pub async fn user_exists(&self, user: &str) -> Result<bool, EngineError> {
        each!(self, e => e.user_exists(user))
    }

    pub async fn user_options(&self, user: &str) -> Result<Option<UserOptions>, EngineError> {
        each!(self, e => e.user_options(user))
    }

    pub async fn set_user_options(
        &self,
        user: &str,
        opts: &Map<String, Value>,
    ) -> Result<Option<Result<(), OptionError>>, EngineError> {
        each!(self, e => e.set_user_options(user, opts))
    }

    /// The cookie of the user's last closed connection (for webhooks on its behalf).
    pub async fn temp_cookie(&self, user: &str) -> Result<Option<String>, EngineError> {
        each!(self, e => e.temp_cookie(user))
    }

    pub async fn user_info(&self, user: &str) -> Result<Option<Value>, EngineError> {
        each!(self, e => e.user_info(user))
    }

    /// Sends a frame to every connection of a user; false if there is no such user.
    pub async fn send_to_user(&self, user: &str, frame: &OutFrame) -> Result<bool, EngineError> {
        each!(self, e => e.send_to_user(user, frame))
    }

    /// Closes every connection of a user; the number closed, or `None` without such a user.
    pub async fn kick(&self, user: &str) -> Result<Option<usize>, EngineError> {
        each!(self, e => e.kick(user))
    }

    pub async fn connection_ids(&self) -> Result<Vec<Value>, EngineError> {
        each!(self, e => e.connection_ids())
    }
}
