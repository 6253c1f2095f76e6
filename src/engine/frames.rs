//! The server frames that concern a channel, built in one place for both engines: the own
//! SUBSCRIBE, presence SUBSCRIBE / UNSUBSCRIBE, STATE_UPDATE and PUBLISH.

use super::history::{Entry, Tail};
use crate::outbox::Outbox;
use crate::protocol::{args, About, OutFrame, Placed};
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
    /// The channel's epoch and the offset of this subscribe (shown to connections that asked
    /// for positions).
    pub epoch: &'a str,
    pub offset: u64,
    pub history: Tail<'a>,
    pub history_size: u64,
    pub history_duration: u64,
    pub state: &'a Map<String, Value>,
    /// Subscriber names, the user included, on presenceful channels; empty on others.
    pub presence: Vec<&'a str>,
}

/// What an own-SUBSCRIBE tells a connection about positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Nothing (the original clients, which did not ask with CONNECT `recovery`).
    Nothing,
    /// The channel's `epoch` and the subscribe's `offset`.
    Position,
    /// The position, and `recovered`: whether the publications the client missed since the
    /// position it gave follow this frame (true), or are gone (false).
    Recovery(bool),
}

impl Shown {
    /// What a connection is shown: nothing unless it asked for positions.
    pub fn to(outbox: &Outbox, recovery: Option<bool>) -> Shown {
        match (outbox.shows_positions(), recovery) {
            (false, _) => Shown::Nothing,
            (true, None) => Shown::Position,
            (true, Some(r)) => Shown::Recovery(r),
        }
    }
}

/// The own-SUBSCRIBE frame for `user` (history before the event, presence including the user).
/// Serialized straight from the channel's data: the history entries are already encoded, so this
/// copies at most `--history-max-bytes`.
pub fn own_subscribe(
    channel: &str,
    user: &str,
    view: SubscribeView<'_>,
    initial_data: Option<&Value>,
    shown: Shown,
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
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    }
    let positioned = shown != Shown::Nothing;
    let recovered = match shown {
        Shown::Recovery(r) => Some(r),
        _ => None,
    };
    let about = About::Member {
        channel: channel.into(),
        user: user.into(),
        position: positioned.then(|| {
            Box::new(Placed {
                epoch: view.epoch.into(),
                offset: view.offset,
                recovered,
            })
        }),
    };
    OutFrame::with(
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
            epoch: positioned.then_some(view.epoch),
            offset: positioned.then_some(view.offset),
            recovered,
        },
        about,
    )
}

/// What replaying an entry of `channel` as a PUBLISH frame adds to the entry's size, at most:
/// the frame's name, id and `channel_name` (escaped: up to 6 bytes a character), its offset.
pub fn replay_overhead(channel: &str) -> usize {
    96 + 6 * channel.len()
}

/// The room a recovery may take in a connection's outbox: a quarter for the own SUBSCRIBE's
/// history and a quarter for the replayed publications, so that half is left for the traffic
/// that follows before the writer drains.
pub fn recovery_room(outbox: &Outbox) -> usize {
    outbox.room() / 4
}

/// Answers a recovery in `outbox`: the own SUBSCRIBE with `recovered`, then (if recovered) the
/// publications it missed, oldest first. Counted in the metrics.
pub fn push_recovery(
    outbox: &Outbox,
    channel: &str,
    user: &str,
    view: SubscribeView<'_>,
    initial_data: Option<&Value>,
    missed: Option<Vec<&Entry>>,
) {
    crate::metrics::recovery(missed.is_some());
    let shown = Shown::to(outbox, Some(missed.is_some()));
    outbox.push(&own_subscribe(channel, user, view, initial_data, shown));
    for entry in missed.into_iter().flatten() {
        if let Some(frame) = replayed(channel, entry) {
            outbox.push(&frame);
        }
    }
}

/// A publication replayed from history to a recovering client: the PUBLISH frame it missed,
/// `{channel_name, payload, datetime, user?}` with its offset. `None` for an entry that is not a
/// publication.
pub fn replayed(channel: &str, entry: &Entry) -> Option<OutFrame> {
    // Entries are `["PUBLISH", {…}]` as the server's encoder wrote them.
    let body = entry
        .json()
        .strip_prefix("[\"PUBLISH\", {")?
        .strip_suffix("}]")?;
    let mut text = String::with_capacity(body.len() + channel.len() + 40);
    text.push_str("{\"channel_name\": ");
    text.push_str(&crate::protocol::to_ascii_string(channel));
    if !body.is_empty() {
        text.push_str(", ");
        text.push_str(body);
    }
    text.push('}');
    let args: &RawValue = serde_json::from_str(&text).ok()?;
    let about = About::Publish {
        channel: channel.into(),
    };
    Some(OutFrame::with("PUBLISH", args, about).at_offset(entry.offset))
}

/// A membership frame, `SUBSCRIBE` (presence) or `UNSUBSCRIBE`: `{channel_name, user, datetime}`.
pub fn membership(kind: &'static str, channel: &str, user: &str, stamp: &str) -> OutFrame {
    OutFrame::with(
        kind,
        &args([
            ("channel_name", json!(channel)),
            ("user", json!(user)),
            ("datetime", json!(stamp)),
        ]),
        About::Member {
            channel: channel.into(),
            user: user.into(),
            position: None,
        },
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
    OutFrame::with(
        "PUBLISH",
        &PublishArgs {
            channel_name: channel,
            body,
        },
        About::Publish {
            channel: channel.into(),
        },
    )
}
