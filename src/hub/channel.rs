//! A channel: subscribers (users, in subscription order), options, history and state.

use super::history::Tail;
use super::options::ChannelOptions;
use super::user::User;
use crate::outbox::Outbox;
use crate::protocol::{args, OutFrame};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How much history an own-SUBSCRIBE frame may carry for a connection: half the room left in its
/// outbox, so that a replay of many channels to a new tab stays within the budget (each takes at
/// most half of what the previous ones left) and traffic that follows still fits.
pub fn history_room(outbox: &Outbox) -> usize {
    outbox.room() / 2
}

#[derive(Debug)]
pub struct Channel {
    pub name: Arc<str>,
    pub options: ChannelOptions,
    pub subscribers: Vec<Arc<User>>,
    /// Cancels this channel's poller, if one runs.
    pub poller: Option<CancellationToken>,
    /// Users whose presence this channel tracks (§9.3), fixed at creation like the original.
    pub watched: Vec<String>,
}

impl Channel {
    pub fn new(name: Arc<str>, options: ChannelOptions, watched: Vec<String>) -> Channel {
        Channel {
            name,
            options,
            subscribers: Vec::new(),
            poller: None,
            watched,
        }
    }

    /// Whether this very user object is a subscriber (a user that left and came back under the
    /// same name is a new object).
    pub fn is_subscribed(&self, user: &Arc<User>) -> bool {
        self.subscribers.iter().any(|u| Arc::ptr_eq(u, user))
    }

    pub fn subscriber_names(&self) -> Vec<Value> {
        self.subscribers
            .iter()
            .map(|u| Value::from(&*u.name))
            .collect()
    }

    /// Sends a frame to every subscriber's connections for this channel.
    pub fn broadcast(&self, frame: &OutFrame, skip_user: Option<&str>, skip_conn: Option<&str>) {
        for user in &self.subscribers {
            if skip_user == Some(&*user.name) {
                continue;
            }
            user.state.lock().send_channel(&self.name, frame, skip_conn);
        }
    }

    /// The own-SUBSCRIBE frame for `user` (history before the event, presence including the user).
    /// The history is trimmed to its newest entries that fit in `history_room` bytes, so that a
    /// joining client's replay fits in its outbox; the entries are already encoded, so building
    /// the frame under the channel's lock copies at most `--history-max-bytes`.
    pub fn own_subscribe_frame(
        &self,
        user: &str,
        initial_data: Option<&Value>,
        history_room: usize,
    ) -> OutFrame {
        #[derive(serde::Serialize)]
        struct OwnSubscribe<'a> {
            channel_name: &'a str,
            user: &'a str,
            history: Tail<'a>,
            history_size: u64,
            history_duration: u64,
            state: &'a Map<String, Value>,
            presence: Vec<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            initial_data: Option<&'a Value>,
        }
        let presence = if self.options.presenceful {
            self.subscribers.iter().map(|u| &*u.name).collect()
        } else {
            Vec::new()
        };
        let args = OwnSubscribe {
            channel_name: &self.name,
            user,
            history: self.options.history.newest_within(history_room),
            history_size: self.options.history_size,
            history_duration: self.options.history_duration,
            state: &self.options.state,
            presence,
            initial_data,
        };
        OutFrame::new("SUBSCRIBE", &args)
    }

    /// Sends `user` its own-SUBSCRIBE frame on every connection that receives this channel,
    /// sized for the fullest of them (see [`history_room`]).
    pub fn send_own_subscribe(&self, user: &User, initial_data: Option<&Value>) {
        let st = user.state.lock();
        let room = st
            .channel_conns(&self.name, None)
            .map(|c| history_room(&c.outbox))
            .min()
            .unwrap_or(0);
        let frame = self.own_subscribe_frame(&user.name, initial_data, room);
        for conn in st.channel_conns(&self.name, None) {
            conn.outbox.push_own(&frame);
        }
    }

    /// A membership frame, `SUBSCRIBE` (presence) or `UNSUBSCRIBE`: `{channel_name, user, datetime}`.
    pub fn membership_frame(&self, kind: &str, user: &str, stamp: &str) -> OutFrame {
        OutFrame::new(
            kind,
            &args([
                ("channel_name", json!(&*self.name)),
                ("user", json!(user)),
                ("datetime", json!(stamp)),
            ]),
        )
    }

    /// Broadcasts a STATE_UPDATE for a state change.
    pub fn broadcast_state(&self, updates: Map<String, Value>, deletes: Vec<String>) {
        let frame = OutFrame::new(
            "STATE_UPDATE",
            &args([
                ("channel_name", json!(&*self.name)),
                ("updates", Value::Object(updates)),
                ("deletes", json!(deletes)),
            ]),
        );
        self.broadcast(&frame, None, None);
    }

    /// `/web/get_channel_info`'s body.
    pub fn info(&self) -> Value {
        json!({
            "name": &*self.name,
            "options": self.options.to_json(),
            "subscribers": self.subscriber_names(),
        })
    }
}
