//! RTJP frames as server-sent events, and the stream's channel positions.
//!
//! Each frame becomes `event: NAME` + `data: {args}`. The positions of the stream's channels
//! (epoch and offset of each, as the frames show them) travel as the event `id`, which the
//! browser sends back as `Last-Event-ID` when it reconnects: the new stream then recovers every
//! channel from there. While a channel's recovery is pending, its live PUBLISH frames (which the
//! answer replays) and its plain replayed own SUBSCRIBE are held back, so that an EventSource
//! page sees each publication once without any logic of its own.

use crate::protocol::{Position, MAX_EPOCH_LEN};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A channel's place: its epoch and the offset of the last event the stream accounted for.
type Place = (String, u64);

/// The positions a stream has reached, and its channels still waiting for a recovery answer.
#[derive(Debug, Default)]
pub struct Positions {
    /// The channels the request named: only they are recovered on a reconnect, so only they
    /// are in the id (a user's other subscriptions would only make every id longer).
    named: HashSet<String>,
    /// The stream's user (from CONNECTED): only its own SUBSCRIBE and UNSUBSCRIBE frames move
    /// positions, not other members' presence frames.
    me: Option<String>,
    // Sorted, so that the id is the same text for the same positions.
    places: BTreeMap<String, Place>,
    /// Channel → the id of the SUBSCRIBE frame that asked to recover it (an ERROR with that id
    /// ends the wait) and the offset it asked from.
    pending: HashMap<String, (i64, u64)>,
}

/// The args of a frame that matter to positions.
#[derive(Deserialize)]
struct Args<'a> {
    #[serde(borrow)]
    channel_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    epoch: Option<Cow<'a, str>>,
    offset: Option<u64>,
    recovered: Option<bool>,
    id: Option<i64>,
}

/// What one frame does to the stream.
enum Effect {
    Show { moved: bool },
    Hide,
}

impl Positions {
    /// The positions of a stream on `named` channels.
    pub fn new<'a>(named: impl IntoIterator<Item = &'a str>) -> Positions {
        Positions {
            named: named.into_iter().map(str::to_owned).collect(),
            ..Positions::default()
        }
    }

    /// Parses a `Last-Event-ID` this stream's writer produced: `{"channel": ["epoch", offset]}`.
    /// Anything else gives no positions (the browser cannot send something better).
    pub fn parse_id(text: &str) -> BTreeMap<String, Position> {
        serde_json::from_str::<BTreeMap<String, Place>>(text)
            .map(|places| {
                places
                    .into_iter()
                    // An epoch longer than any the server gives is no position (as in a
                    // SUBSCRIBE's `recover`).
                    .filter(|(_, (epoch, _))| epoch.len() <= MAX_EPOCH_LEN)
                    .map(|(ch, (epoch, offset))| (ch, Position { epoch, offset }))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `channel`'s recovery from `from` was asked by the SUBSCRIBE frame `frame_id`. Until
    /// its answer, the id keeps `from` for it: a stream cut before the answer asks again.
    pub fn expect_recovery(&mut self, channel: &str, frame_id: i64, from: &Position) {
        self.pending
            .insert(channel.to_owned(), (frame_id, from.offset));
        self.places
            .insert(channel.to_owned(), (from.epoch.clone(), from.offset));
    }

    /// Appends the events for the frames at the start of `data` (as the outbox drains them:
    /// `[id, "NAME", {args}]` lines) to `out`, stopping at a frame boundary once `out` holds
    /// `max` bytes. Returns how many bytes of `data` it used. (Each event may carry an id of
    /// several kilobytes: the caller writes a bounded piece at a time rather than the whole
    /// drain's events at once.)
    pub fn write_events(&mut self, data: &[u8], out: &mut Vec<u8>, max: usize) -> usize {
        let mut used = 0;
        for line in data.split_inclusive(|&b| b == b'\n') {
            if out.len() >= max {
                break;
            }
            used += line.len();
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            // Frames come from our own encoder; one that does not parse would be a bug, and is
            // skipped rather than breaking the stream.
            let Ok((_, name, args)) =
                serde_json::from_slice::<(serde::de::IgnoredAny, Cow<str>, &RawValue)>(line)
            else {
                tracing::error!("unparsable outgoing frame skipped on an SSE stream");
                continue;
            };
            let moved = match self.apply(&name, args.get()) {
                Effect::Hide => continue,
                Effect::Show { moved } => moved,
            };
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            if moved {
                out.extend_from_slice(b"\nid: ");
                crate::protocol::write_ascii(out, &self.places);
            }
            out.extend_from_slice(b"\ndata: ");
            // Our JSON has no raw line breaks (strings escape them); any whitespace break would
            // end the data line, and a space means the same in JSON.
            out.extend(args.get().bytes().map(|b| match b {
                b'\n' | b'\r' => b' ',
                b => b,
            }));
            out.extend_from_slice(b"\n\n");
        }
        used
    }

    /// Updates the positions for one frame and says whether to show it.
    fn apply(&mut self, name: &str, args: &str) -> Effect {
        if !matches!(
            name,
            "PUBLISH" | "SUBSCRIBE" | "UNSUBSCRIBE" | "ERROR" | "CONNECTED"
        ) {
            return Effect::Show { moved: false };
        }
        let Ok(a) = serde_json::from_str::<Args>(args) else {
            return Effect::Show { moved: false };
        };
        if name == "CONNECTED" {
            self.me = a.name.map(Cow::into_owned);
            return Effect::Show { moved: false };
        }
        if name == "ERROR" {
            // A refused SUBSCRIBE with recover: nothing is coming for that channel.
            if let Some(id) = a.id {
                self.pending.retain(|_, (asked, _)| *asked != id);
            }
            return Effect::Show { moved: false };
        }
        let Some(channel) = a.channel_name else {
            return Effect::Show { moved: false };
        };
        if !self.named.contains(&*channel) {
            return Effect::Show { moved: false };
        }
        let pending = self.pending.contains_key(&*channel);
        match name {
            // Another member leaving (presence) moves nothing.
            "UNSUBSCRIBE" if a.user.as_deref() != self.me.as_deref() => {
                Effect::Show { moved: false }
            }
            "UNSUBSCRIBE" => {
                self.pending.remove(&*channel);
                let moved = self.places.remove(&*channel).is_some();
                Effect::Show { moved }
            }
            // Own SUBSCRIBEs carry the epoch; others' (presence) do not.
            "SUBSCRIBE" => match (a.epoch, a.offset) {
                (Some(epoch), Some(mut offset)) => {
                    let asked = self.pending.get(&*channel).map(|&(_, from)| from);
                    match (a.recovered, asked) {
                        // The replay follows: until each replayed publication moves it, the
                        // position stays where the stream asked from, so that a stream cut
                        // during the replay asks for the rest again.
                        (Some(true), Some(from)) => offset = from,
                        (Some(_), _) => {}
                        (None, Some(_)) => return Effect::Hide,
                        (None, None) => {}
                    }
                    if a.recovered.is_some() {
                        self.pending.remove(&*channel);
                    }
                    self.places
                        .insert(channel.into_owned(), (epoch.into_owned(), offset));
                    Effect::Show { moved: true }
                }
                _ => Effect::Show { moved: false },
            },
            _ => {
                if pending {
                    return Effect::Hide;
                }
                let Some(offset) = a.offset else {
                    return Effect::Show { moved: false };
                };
                match self.places.get_mut(&*channel) {
                    // Replayed publications may be older than the answer's offset, which already
                    // accounts for them: a position never goes back.
                    Some(place) if offset > place.1 => {
                        place.1 = offset;
                        Effect::Show { moved: true }
                    }
                    _ => Effect::Show { moved: false },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(p: &mut Positions, frames: &[&str]) -> String {
        let data: String = frames.iter().map(|f| format!("{f}\r\n")).collect();
        let mut out = Vec::new();
        assert_eq!(
            p.write_events(data.as_bytes(), &mut out, usize::MAX),
            data.len()
        );
        String::from_utf8(out).unwrap()
    }

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.to_owned(),
            offset,
        }
    }

    #[test]
    fn frames_become_events_and_positions_the_id() {
        let mut p = Positions::new(["a"]);
        let out = events(
            &mut p,
            &[
                r#"[1, "CONNECTED", {"name": "ann", "payload": null}]"#,
                r#"[2, "SUBSCRIBE", {"channel_name": "a", "history": [], "epoch": "e1", "offset": 4}]"#,
                r#"[3, "PUBLISH", {"channel_name": "a", "payload": {"t": "x\ny"}, "offset": 5}]"#,
                r#"[4, "SUBSCRIBE", {"channel_name": "a", "user": "bob"}]"#,
            ],
        );
        assert_eq!(
            out,
            "event: CONNECTED\ndata: {\"name\": \"ann\", \"payload\": null}\n\n\
             event: SUBSCRIBE\nid: {\"a\": [\"e1\", 4]}\ndata: {\"channel_name\": \"a\", \"history\": [], \"epoch\": \"e1\", \"offset\": 4}\n\n\
             event: PUBLISH\nid: {\"a\": [\"e1\", 5]}\ndata: {\"channel_name\": \"a\", \"payload\": {\"t\": \"x\\ny\"}, \"offset\": 5}\n\n\
             event: SUBSCRIBE\ndata: {\"channel_name\": \"a\", \"user\": \"bob\"}\n\n"
        );
        let back = Positions::parse_id("{\"a\": [\"e1\", 5]}");
        assert_eq!(back["a"].epoch, "e1");
        assert_eq!(back["a"].offset, 5);
        assert!(Positions::parse_id("garbage").is_empty());
        // An epoch no server gives (longer than a SUBSCRIBE's `recover` may quote) is dropped.
        let long = format!("{{\"a\": [\"{}\", 5], \"b\": [\"e1\", 2]}}", "e".repeat(65));
        assert_eq!(Positions::parse_id(&long).keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn a_pending_recovery_hides_live_frames_until_its_answer() {
        let mut p = Positions::new(["a"]);
        p.expect_recovery("a", 2, &at("e1", 7));
        let out = events(
            &mut p,
            &[
                // A member's replayed SUBSCRIBE and a live publication, both before the answer.
                r#"[2, "SUBSCRIBE", {"channel_name": "a", "epoch": "e1", "offset": 9}]"#,
                r#"[3, "PUBLISH", {"channel_name": "a", "payload": 9, "offset": 9}]"#,
                r#"[4, "SUBSCRIBE", {"channel_name": "a", "epoch": "e1", "offset": 9, "recovered": true}]"#,
                r#"[5, "PUBLISH", {"channel_name": "a", "payload": 8, "offset": 8}]"#,
                r#"[6, "PUBLISH", {"channel_name": "a", "payload": 9, "offset": 9}]"#,
                r#"[7, "PUBLISH", {"channel_name": "a", "payload": 10, "offset": 10}]"#,
            ],
        );
        let payloads: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("data: {\"channel_name\": \"a\", \"payload\""))
            .collect();
        assert_eq!(payloads.len(), 3, "{out}");
        assert_eq!(out.matches("event: SUBSCRIBE").count(), 1, "{out}");
        // The answer's id is where the stream asked from; each replayed publication moves it.
        let ids: Vec<&str> = out.lines().filter(|l| l.starts_with("id: ")).collect();
        assert_eq!(
            ids,
            [
                "id: {\"a\": [\"e1\", 7]}",
                "id: {\"a\": [\"e1\", 8]}",
                "id: {\"a\": [\"e1\", 9]}",
                "id: {\"a\": [\"e1\", 10]}"
            ],
            "{out}"
        );
        assert!(out.ends_with("id: {\"a\": [\"e1\", 10]}\ndata: {\"channel_name\": \"a\", \"payload\": 10, \"offset\": 10}\n\n"));
    }

    #[test]
    fn an_error_for_the_recovering_subscribe_ends_the_wait() {
        let mut p = Positions::new(["a"]);
        p.expect_recovery("a", 2, &at("e1", 0));
        let out = events(
            &mut p,
            &[
                r#"[1, "ERROR", {"id": 2, "msg": "no"}]"#,
                r#"[2, "PUBLISH", {"channel_name": "a", "payload": 1, "offset": 3}]"#,
            ],
        );
        assert!(out.contains("event: PUBLISH"), "{out}");
    }

    #[test]
    fn only_the_named_channels_and_the_users_own_frames_move_the_id() {
        let mut p = Positions::new(["a", "b"]);
        p.expect_recovery("b", 2, &at("eb", 3));
        let out = events(
            &mut p,
            &[
                r#"[1, "CONNECTED", {"name": "ann", "payload": null}]"#,
                r#"[2, "SUBSCRIBE", {"channel_name": "a", "epoch": "ea", "offset": 1}]"#,
                // A channel the request did not name (another tab's subscription).
                r#"[3, "SUBSCRIBE", {"channel_name": "z", "epoch": "ez", "offset": 1}]"#,
                r#"[4, "UNSUBSCRIBE", {"channel_name": "a", "user": "bob"}]"#,
                r#"[5, "PUBLISH", {"channel_name": "a", "payload": 1, "offset": 2}]"#,
                r#"[6, "UNSUBSCRIBE", {"channel_name": "a", "user": "ann"}]"#,
            ],
        );
        let ids: Vec<&str> = out.lines().filter(|l| l.starts_with("id: ")).collect();
        // b, still recovering, stays in every id at the position asked from.
        assert_eq!(
            ids,
            [
                "id: {\"a\": [\"ea\", 1], \"b\": [\"eb\", 3]}",
                "id: {\"a\": [\"ea\", 2], \"b\": [\"eb\", 3]}",
                "id: {\"b\": [\"eb\", 3]}"
            ],
            "{out}"
        );
    }

    #[test]
    fn events_are_written_a_bounded_piece_at_a_time() {
        let mut p = Positions::new(["a"]);
        let frame = r#"[1, "PUBLISH", {"channel_name": "a", "payload": 1, "offset": 2}]"#;
        let data = format!("{frame}\r\n{frame}\r\n{frame}\r\n");
        let mut out = Vec::new();
        let used = p.write_events(data.as_bytes(), &mut out, 1);
        assert_eq!(used, frame.len() + 2);
        assert_eq!(
            String::from_utf8(out).unwrap().matches("event: ").count(),
            1
        );
    }
}
