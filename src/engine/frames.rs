//! The server frames that concern a channel, built in one place for both engines: the own
//! SUBSCRIBE, presence SUBSCRIBE / UNSUBSCRIBE, STATE_UPDATE and PUBLISH.

use super::history::Tail;
use crate::outbox::Outbox;
use crate::protocol::{args, OutFrame};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// How much history an own-SUBSCRIBE frame may carry for a connection: half the room left in its
/// outbox, so that a replay of many channels to a new tab stays within the budget (each takes at
/// most half of what the previous ones left) and traffic that follows still fits.
pub fn history_room(outbox: &Outbox) -> usize {
    outbox.room() / 2
}

/// What an own-SUBSCRIBE frame shows of its channel.
pub struct SubscribeView<'a> {
    pub history: Tail<'a>,
    pub history_size: u64,
    pub history_duration: u64,
    pub state: &'a Map<String, Value>,
    /// Subscriber names, the user included, on presenceful channels; empty on others.
    pub presence: Vec<&'a str>,
}

/// The own-SUBSCRIBE frame for `user` (history before the event, presence including the user).
/// Serialized straight from the channel's data: the history entries are already encoded, so this
/// copies at most `--history-max-bytes`.
pub fn own_subscribe(
    channel: &str,
    user: &str,
    view: SubscribeView<'_>,
    initial_data: Option<&Value>,
) -> OutFrame {
    #[derive(Serialize)]
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
    OutFrame::new(
        "SUBSCRIBE",
        &OwnSubscribe {
            channel_name: channel,
            user,
            history: view.history,
            history_size: view.history_size,
            history_duration: view.history_duration,
            state: view.state,
            presence: view.presence,
            initial_data,
        },
    )
}

/// A membership frame, `SUBSCRIBE` (presence) or `UNSUBSCRIBE`: `{channel_name, user, datetime}`.
pub fn membership(kind: &str, channel: &str, user: &str, stamp: &str) -> OutFrame {
    OutFrame::new(
        kind,
        &args([
            ("channel_name", json!(channel)),
            ("user", json!(user)),
            ("datetime", json!(stamp)),
        ]),
    )
}

/// A STATE_UPDATE for a state change.
pub fn state_update(channel: &str, updates: Map<String, Value>, deletes: Vec<String>) -> OutFrame {
    OutFrame::new(
        "STATE_UPDATE",
        &args([
            ("channel_name", json!(channel)),
            ("updates", Value::Object(updates)),
            ("deletes", json!(deletes)),
        ]),
    )
}

/// A PUBLISH's history entry body: `{payload, datetime, user?}`.
#[derive(Serialize)]
pub struct PublishBody<'a> {
    pub payload: &'a RawValue,
    pub datetime: &'a str,
    /// Absent on anonymous channels; JSON null for a Web API publish without `originator`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a Value>,
}

/// A PUBLISH frame: the channel name, then the entry body's keys.
pub fn publish(channel: &str, body: &PublishBody<'_>) -> OutFrame {
    #[derive(Serialize)]
    struct PublishArgs<'a> {
        channel_name: &'a str,
        #[serde(flatten)]
        body: &'a PublishBody<'a>,
    }
    OutFrame::new(
        "PUBLISH",
        &PublishArgs {
            channel_name: channel,
            body,
        },
    )
}
