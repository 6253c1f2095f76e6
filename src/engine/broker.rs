//! The broker interface: every call the hub makes on shared state, one documented method per
//! decision, implemented by each engine in its own folder ([`super::memory`], [`super::redis`]).
//!
//! Five traits by concern, so that an engine implements each one in the file that owns it, and
//! [`Broker`] (all five) is what the hub holds, as `Box<dyn Broker>`. The calls are async trait
//! methods (boxed futures): one allocation per call, next to a webhook or a fan-out to many
//! connections; the memory engine's futures are ready at once.

use super::options::{self, OptionError, Polling, UserOptions};
use super::{
    Claim, Conn, ConnInfo, Detached, EngineError, Flags, Joined, LeaseKind, Left, Membership,
    NodeInfo, Publication, Reaped, RelayHandler, RelayRequest, Relayed,
};
use crate::protocol::{OutFrame, Position};
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

type R<T> = Result<T, EngineError>;

/// Everything an engine provides: what the hub holds.
pub trait Broker: Channels + Subscribers + Users + Nodes + Expiring {}

impl<T: Channels + Subscribers + Users + Nodes + Expiring> Broker for T {}

/// Channels: existence, settings, state, destroy.
#[async_trait]
pub trait Channels: Send + Sync {
    async fn channel_exists(&self, ch: &str) -> R<bool>;

    async fn flags(&self, ch: &str) -> R<Option<Flags>>;

    async fn polling(&self, ch: &str) -> R<Option<Polling>>;

    /// Channels that poll (for adopting the pollers of a dead node; none with one node).
    async fn polling_channels(&self) -> R<Vec<String>>;

    /// Creates a channel from validated options unless it exists; true if this call created it.
    async fn create_channel(&self, ch: &str, update: options::ChannelUpdate) -> R<bool>;

    /// Applies options to an existing channel (`None`: no such channel); true if the poller must
    /// be restarted.
    async fn update_channel(
        &self,
        ch: &str,
        opts: &Map<String, Value>,
    ) -> R<Option<Result<bool, OptionError>>>;

    /// `/web/get_channel_info`'s body.
    async fn channel_info(&self, ch: &str) -> R<Option<Value>>;

    async fn channel_names(&self) -> R<Vec<Value>>;

    async fn members(&self, ch: &str) -> R<Option<Vec<Arc<str>>>>;

    /// Sets a state key; a STATE_UPDATE goes out if the value changed. False: no channel.
    async fn set_state(&self, ch: &str, key: &str, val: Value) -> R<bool>;

    /// Deletes a state key; a STATE_UPDATE goes out if it existed. False: no channel.
    async fn delete_state(&self, ch: &str, key: &str) -> R<bool>;

    /// Removes a channel that has no subscriber; true if removed.
    async fn destroy_if_empty(&self, ch: &str) -> R<bool>;

    /// Removes a channel, sending each subscriber its own UNSUBSCRIBE (no presence frames);
    /// false if it did not exist.
    async fn destroy_channel(&self, ch: &str) -> R<bool>;
}

/// A channel's members, and what reaches them.
#[async_trait]
pub trait Subscribers: Send + Sync {
    /// Where `user` stands with the channel; a member's asking connection `conn` is recorded
    /// for the channel.
    async fn membership(&self, ch: &str, user: &str, conn: Option<&Arc<str>>) -> R<Membership>;

    /// The channel's flags if `user` is one of its members.
    async fn member_flags(&self, ch: &str, user: &str) -> R<Option<Flags>>;

    /// Makes `user` a member (see [`Join`]).
    async fn join(&self, ch: &str, user: &str, join: Join<'_>) -> R<Joined>;

    /// A connection of a member gave a position (it reconnected while its user stayed a
    /// member): it gets an own SUBSCRIBE with `recovered`, then what it missed. False without
    /// such a channel, member or connection here.
    async fn recover(&self, ch: &str, user: &str, conn: &Arc<str>, pos: &Position) -> R<bool>;

    /// Removes a member: presence UNSUBSCRIBE to the others (presenceful channels), its own
    /// UNSUBSCRIBE to all its connections, the history entry.
    async fn leave(&self, ch: &str, user: &str) -> R<Left>;

    /// Delivers a publication to the channel's subscribers in channel order; false: no channel.
    async fn publish(&self, ch: &str, p: Publication<'_>) -> R<bool>;
}

/// How a user joins a channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Join<'a> {
    /// The connection that asked (recorded for the channel).
    pub conn: Option<&'a Arc<str>>,
    /// Sent in the user's own SUBSCRIBE.
    pub initial_data: Option<&'a Value>,
    /// The position `conn` was at before it reconnected: its own SUBSCRIBE then says whether it
    /// is `recovered`, and is followed by the publications it missed.
    pub recover: Option<&'a Position>,
}

/// A connection that completed CONNECT, joining its user.
#[derive(Debug)]
pub struct Attach<'a> {
    pub conn: &'a Arc<Conn>,
    pub user: &'a str,
    /// The user's options from now on.
    pub options: UserOptions,
    /// The CONNECTED frame, the connection's first.
    pub connected: &'a OutFrame,
}

/// Users and their connections.
#[async_trait]
pub trait Users: Send + Sync {
    /// Attaches a connection that completed CONNECT to its user (created if absent; its
    /// options replaced): sends it `connected` first, then an own SUBSCRIBE for every channel
    /// the user is in. True if the user was created. [`EngineError::Interrupted`]: the
    /// connection may be attached in part, and must be detached.
    async fn attach(&self, a: Attach<'_>) -> R<bool>;

    /// Detaches a closed connection: which channels the user must leave now, and whether it
    /// was the user's last connection.
    async fn detach(&self, user: &str, conn: &Arc<Conn>) -> R<Detached>;

    async fn user_channels(&self, user: &str) -> R<Vec<Arc<str>>>;

    async fn has_connections(&self, user: &str) -> R<bool>;

    /// Removes a user that has no connection; true if removed (and so its disconnect is due).
    async fn remove_user(&self, user: &str) -> R<bool>;

    async fn user_exists(&self, user: &str) -> R<bool>;

    async fn user_options(&self, user: &str) -> R<Option<UserOptions>>;

    /// Replaces a user's options (`None`: no such user).
    async fn set_user_options(
        &self,
        user: &str,
        opts: &Map<String, Value>,
    ) -> R<Option<Result<(), OptionError>>>;

    /// The cookie of the user's last closed connection (for webhooks on its behalf).
    async fn temp_cookie(&self, user: &str) -> R<Option<String>>;

    async fn user_info(&self, user: &str) -> R<Option<Value>>;

    /// Sends a frame to every connection of a user; false if there is no such user.
    async fn send_to_user(&self, user: &str, frame: &OutFrame) -> R<bool>;

    /// Closes every connection of a user; the number closed, or `None` without such a user.
    async fn kick(&self, user: &str) -> R<Option<usize>>;

    /// Names of users with a connection, at most `limit` of them; true if there are more.
    async fn user_names(&self, limit: usize) -> R<(Vec<String>, bool)>;

    /// A user's connections, wherever they are (`None`: no such user).
    async fn connections_of(&self, user: &str) -> R<Option<Vec<ConnInfo>>>;

    async fn connection_ids(&self) -> R<Vec<Value>>;
}

/// The nodes of the server, and what only one of them may do at a time.
#[async_trait]
pub trait Nodes: Send + Sync {
    /// Takes or renews a lease for `ttl`; true if this node holds it now. With one node every
    /// lease is this node's.
    async fn lease(&self, kind: LeaseKind, name: &str, ttl: Duration) -> R<bool>;

    /// Gives a lease back, if this node holds it.
    async fn release(&self, kind: LeaseKind, name: &str) -> R<()>;

    /// Users with a connection on this node, and the channels this node knows (see
    /// [`crate::metrics::CHANNELS`]).
    fn counts(&self) -> (usize, usize);

    /// The nodes of the server (just this one with one node, described by `local`).
    async fn nodes(&self, local: NodeInfo) -> R<Vec<NodeInfo>>;

    /// Whether the engine answers (for `/readyz`).
    async fn ping(&self) -> R<()>;

    /// This node's id among the nodes; `None` with one node.
    fn node_id(&self) -> Option<&str>;

    /// Relays `req` to node `node` and waits (at most `wait`) for its reply. With one node
    /// there is no other to ask.
    async fn relay(&self, node: &str, req: RelayRequest, wait: Duration) -> R<Relayed>;

    /// Sets what runs the requests other nodes relay to this one.
    fn serve_relays(&self, handler: RelayHandler);

    /// What other nodes left behind when they died, as it is found; `None` with one node.
    fn take_reaped(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Reaped>>;
}

/// What every node remembers for a while: idempotency keys and revoked resume tickets.
#[async_trait]
pub trait Expiring: Send + Sync {
    /// Claims an idempotency key for `ttl` (see [`Claim`]).
    async fn claim_key(&self, key: &str, ttl: Duration) -> R<Claim>;

    /// Records the answer of a claimed key for `ttl`, or lets the key go (`None`: the call
    /// failed, and a retry may run).
    async fn settle_key(&self, key: &str, answer: Option<&str>, ttl: Duration) -> R<()>;

    /// Revokes the resume tickets of `user` issued up to `at_ms` (Unix milliseconds), on every
    /// node, for `keep` (as long as a ticket lives).
    async fn revoke_tickets(&self, user: &str, at_ms: i64, keep: Duration) -> R<()>;

    /// The time up to which the resume tickets of `user` are revoked, if they are.
    async fn tickets_revoked(&self, user: &str) -> R<Option<i64>>;
}
