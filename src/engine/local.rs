//! Users and their connections on this node, and which of them receive a channel (the delivery
//! itself is the local index's, `engine/delivery/`).
//!
//! A user exists while at least one connection is attached; several connections (browser tabs)
//! can share one user. Subscriptions belong to the user; each channel also records which of the
//! user's connections asked for it (used by `per_connection_subscriptions`).

use super::frames;
use super::options::UserOptions;
use crate::net::Transport;
use crate::outbox::Outbox;
use crate::protocol::OutFrame;
use indexmap::IndexMap;
use parking_lot::Mutex;
use std::sync::Arc;

/// A connected client (a WebSocket or a CSP session) that completed CONNECT.
#[derive(Debug)]
pub struct Conn {
    /// 32 lowercase hex characters, like a uuid4 without dashes.
    pub id: Arc<str>,
    /// The client's `cookie_string`, forwarded verbatim to webhooks.
    pub cookie: String,
    /// The client's X-Forwarded-For if present, else the socket's peer address.
    pub remote_addr: String,
    pub outbox: Arc<Outbox>,
    pub transport: Transport,
    /// When the connection completed CONNECT (Unix milliseconds).
    pub since_ms: i64,
}

impl Conn {
    pub fn send(&self, frame: &OutFrame) {
        // A full outbox closes itself; the transport then ends the connection.
        self.outbox.push(frame);
    }
}

#[derive(Debug)]
pub struct User {
    pub name: Arc<str>,
    // Lock order: a channel shard lock may be held while taking this lock, never the reverse.
    pub state: Mutex<UserState>,
}

#[derive(Debug, Default)]
pub struct UserState {
    pub conns: Vec<Arc<Conn>>,
    /// Channel name → ids of the connections recorded for it, in subscription order.
    pub channels: IndexMap<Arc<str>, Vec<Arc<str>>>,
    pub options: UserOptions,
    /// The cookie of the last connection that left, used for the disconnect cascade's webhooks.
    pub temp_cookie: String,
    /// Set when the user was removed from the server; a connection must not attach to it then.
    pub gone: bool,
}

impl User {
    pub fn new(name: Arc<str>) -> User {
        User {
            name,
            state: Mutex::new(UserState::default()),
        }
    }

    /// The user is a member of `channel` no more: each of its connections gets `frame` (the
    /// UNSUBSCRIBE its leave sent the others too), and the channel is forgotten.
    pub fn left(&self, channel: &str, frame: &OutFrame) {
        let mut st = self.state.lock();
        st.send_all(frame);
        st.channels.shift_remove(channel);
    }

    /// The user was taken out of `channel` (destroyed, or replaced): its own UNSUBSCRIBE, made
    /// at `stamp`, and the channel forgotten.
    pub fn removed_from(&self, channel: &str, stamp: &str) {
        self.left(
            channel,
            &frames::membership("UNSUBSCRIBE", channel, &self.name, stamp),
        );
    }
}

impl UserState {
    /// Sends to every connection of the user.
    pub fn send_all(&self, frame: &OutFrame) {
        for conn in &self.conns {
            conn.send(frame);
        }
    }

    /// The connections that receive a channel's traffic: all of them normally, only the recorded
    /// ones with `per_connection_subscriptions`; never `skip_conn`.
    pub fn channel_conns<'a>(
        &'a self,
        channel: &str,
        skip_conn: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Conn>> + 'a {
        let receives = self.receives(channel, skip_conn);
        self.conns.iter().filter(move |conn| receives(conn))
    }

    /// Whether a connection of the user receives `channel`'s traffic: every one normally, only
    /// the recorded ones with `per_connection_subscriptions`; never `skip_conn`. (The local
    /// index's recipient filter.)
    pub fn receives<'a>(
        &'a self,
        channel: &str,
        skip_conn: Option<&'a str>,
    ) -> impl Fn(&Conn) -> bool + 'a {
        // The recorded connections matter only in per-connection mode: skip the lookup otherwise
        // (this runs once per recipient of every publication).
        let recorded = if self.options.per_connection_subscriptions {
            Some(self.channels.get(channel).map_or(&[][..], Vec::as_slice))
        } else {
            None
        };
        move |conn: &Conn| {
            skip_conn != Some(&*conn.id) && recorded.is_none_or(|ids| ids.contains(&conn.id))
        }
    }

    /// The user's connection with this id, if it is still attached.
    pub fn conn(&self, id: &str) -> Option<Arc<Conn>> {
        self.conns.iter().find(|c| &*c.id == id).cloned()
    }

    /// Records `conn_id` as one of the connections that subscribed to `channel`.
    pub fn record(&mut self, channel: &Arc<str>, conn_id: Option<&Arc<str>>) {
        let ids = self.channels.entry(channel.clone()).or_default();
        if let Some(id) = conn_id {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }
}
