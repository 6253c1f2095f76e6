//! Server frames as server-sent events, and the stream's channel positions.
//!
//! Each frame becomes `event: NAME` + `data: {args}`, from the frame's name and encoded args; the
//! positions follow what each frame is about ([`About`]), typed, so nothing here parses JSON but a
//! `Last-Event-ID`. The positions of the stream's channels
//! (epoch and offset of each, as the frames show them) travel as the event `id`, which the
//! browser sends back as `Last-Event-ID` when it reconnects: the new stream then recovers every
//! channel from there. While a channel's recovery is pending, its live PUBLISH frames (which the
//! answer replays) and its plain replayed own SUBSCRIBE are held back, so that an EventSource
//! page sees each publication once without any logic of its own.

use crate::protocol::{About, OutFrame, Placed, Position, ServerFrame, MAX_EPOCH_LEN};
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

    /// Appends the events for the first of `frames` (as the outbox drained them; `positions`:
    /// the stream is shown offsets) to `out`, stopping once `out` holds `max` bytes. Returns how
    /// many frames it used. (Each event may carry an id of several kilobytes: the caller writes
    /// a bounded piece at a time rather than the whole drain's events at once.)
    pub fn write_events(
        &mut self,
        frames: &[OutFrame],
        positions: bool,
        out: &mut Vec<u8>,
        max: usize,
    ) -> usize {
        let mut used = 0;
        for frame in frames {
            if out.len() >= max {
                break;
            }
            used += 1;
            let moved = match self.apply(frame, positions) {
                Effect::Hide => continue,
                Effect::Show { moved } => moved,
            };
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(frame.name().as_bytes());
            if moved {
                out.extend_from_slice(b"\nid: ");
                crate::protocol::write_ascii(out, &self.places);
            }
            out.extend_from_slice(b"\ndata: ");
            let data = out.len();
            frame.write_args(positions, out);
            // Strings escape line breaks, but a payload keeps the whitespace it was sent with,
            // and a break would end the data line: a space means the same in JSON.
            for b in &mut out[data..] {
                if matches!(*b, b'\n' | b'\r') {
                    *b = b' ';
                }
            }
            out.extend_from_slice(b"\n\n");
        }
        used
    }

    /// Updates the positions for one frame and says whether to show it.
    fn apply(&mut self, frame: &OutFrame, positions: bool) -> Effect {
        const NOT_MOVED: Effect = Effect::Show { moved: false };
        let (channel, user, placed) = match frame.about() {
            About::Nothing => return NOT_MOVED,
            About::Connected { user } => {
                self.me = Some(user.to_string());
                return NOT_MOVED;
            }
            About::Error { answers, .. } => {
                // A refused SUBSCRIBE with recover: nothing is coming for that channel.
                if let Some(id) = answers {
                    self.pending.retain(|_, (asked, _)| asked != id);
                }
                return NOT_MOVED;
            }
            About::Publish { channel } => (channel, None, None),
            About::Member {
                channel,
                user,
                position,
            } => (channel, Some(user), position.as_deref()),
        };
        if !self.named.contains(&**channel) {
            return NOT_MOVED;
        }
        match (frame.kind(), user) {
            (ServerFrame::Unsubscribe, Some(user)) => {
                // Another member leaving (presence) moves nothing.
                if self.me.as_deref() != Some(&**user) {
                    return NOT_MOVED;
                }
                self.pending.remove(&**channel);
                let moved = self.places.remove(&**channel).is_some();
                Effect::Show { moved }
            }
            // Own SUBSCRIBEs carry the position; others' (presence) do not.
            (ServerFrame::Subscribe, _) => match placed {
                Some(placed) => self.subscribed(channel, placed),
                None => NOT_MOVED,
            },
            (ServerFrame::Publish, None) => {
                if self.pending.contains_key(&**channel) {
                    return Effect::Hide;
                }
                let offset = frame.offset();
                if !positions || offset == 0 {
                    return NOT_MOVED;
                }
                match self.places.get_mut(&**channel) {
                    // Replayed publications may be older than the answer's offset, which already
                    // accounts for them: a position never goes back.
                    Some(place) if offset > place.1 => {
                        place.1 = offset;
                        Effect::Show { moved: true }
                    }
                    _ => NOT_MOVED,
                }
            }
            _ => NOT_MOVED,
        }
    }

    /// The stream's own SUBSCRIBE to `channel`, at `placed`.
    fn subscribed(&mut self, channel: &str, placed: &Placed) -> Effect {
        let asked = self.pending.get(channel).map(|&(_, from)| from);
        let offset = match (placed.recovered, asked) {
            // The replay follows: until each replayed publication moves it, the position stays
            // where the stream asked from, so that a stream cut during the replay asks for the
            // rest again.
            (Some(true), Some(from)) => from,
            // A plain own SUBSCRIBE (replayed as the user's other tab joins, say) while the
            // answer is awaited: the answer follows.
            (None, Some(_)) => return Effect::Hide,
            _ => placed.offset,
        };
        if placed.recovered.is_some() {
            self.pending.remove(channel);
        }
        self.places
            .insert(channel.to_owned(), (placed.epoch.to_string(), offset));
        Effect::Show { moved: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::frames;
    use serde_json::json;

    fn events(p: &mut Positions, frames: &[OutFrame]) -> String {
        let mut out = Vec::new();
        assert_eq!(
            p.write_events(frames, true, &mut out, usize::MAX),
            frames.len()
        );
        String::from_utf8(out).unwrap()
    }

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.to_owned(),
            offset,
        }
    }

    fn connected(user: &str) -> OutFrame {
        let about = About::Connected { user: user.into() };
        OutFrame::with("CONNECTED", &json!({"name": user, "payload": null}), about)
    }

    /// An own SUBSCRIBE at `epoch`/`offset`, answering a recovery if `recovered` says.
    fn own(channel: &str, epoch: &str, offset: u64, recovered: Option<bool>) -> OutFrame {
        let mut args = json!({"channel_name": channel, "epoch": epoch, "offset": offset});
        if let Some(r) = recovered {
            args["recovered"] = json!(r);
        }
        let position = Some(Box::new(Placed {
            epoch: epoch.into(),
            offset,
            recovered,
        }));
        let about = About::Member {
            channel: channel.into(),
            user: "ann".into(),
            position,
        };
        OutFrame::with("SUBSCRIBE", &args, about)
    }

    fn publish(channel: &str, payload: serde_json::Value, offset: u64) -> OutFrame {
        let about = About::Publish {
            channel: channel.into(),
        };
        let args = json!({"channel_name": channel, "payload": payload});
        OutFrame::with("PUBLISH", &args, about).at_offset(offset)
    }

    fn error(answers: i64) -> OutFrame {
        let about = About::Error {
            answers: Some(answers),
            msg: "no".into(),
        };
        OutFrame::with("ERROR", &json!({"id": answers, "msg": "no"}), about)
    }

    #[test]
    fn frames_become_events_and_positions_the_id() {
        let mut p = Positions::new(["a"]);
        let out = events(
            &mut p,
            &[
                connected("ann"),
                own("a", "e1", 4, None),
                publish("a", json!({"t": "x\ny"}), 5),
                frames::membership("SUBSCRIBE", "a", "bob", "t"),
            ],
        );
        assert_eq!(
            out,
            "event: CONNECTED\ndata: {\"name\": \"ann\", \"payload\": null}\n\n\
             event: SUBSCRIBE\nid: {\"a\": [\"e1\", 4]}\ndata: {\"channel_name\": \"a\", \"epoch\": \"e1\", \"offset\": 4}\n\n\
             event: PUBLISH\nid: {\"a\": [\"e1\", 5]}\ndata: {\"channel_name\": \"a\", \"payload\": {\"t\": \"x\\ny\"}, \"offset\": 5}\n\n\
             event: SUBSCRIBE\ndata: {\"channel_name\": \"a\", \"user\": \"bob\", \"datetime\": \"t\"}\n\n"
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
    fn a_payloads_own_line_breaks_stay_on_the_data_line() {
        #[derive(serde::Serialize)]
        struct Args<'a> {
            payload: &'a serde_json::value::RawValue,
        }
        let payload = serde_json::from_str("{\"a\":\r\n1}").unwrap();
        let frame = OutFrame::with("PUBLISH", &Args { payload }, About::Nothing);
        let out = events(&mut Positions::new(["a"]), &[frame]);
        assert_eq!(out, "event: PUBLISH\ndata: {\"payload\": {\"a\":  1}}\n\n");
    }

    #[test]
    fn a_pending_recovery_hides_live_frames_until_its_answer() {
        let mut p = Positions::new(["a"]);
        p.expect_recovery("a", 2, &at("e1", 7));
        let out = events(
            &mut p,
            &[
                // A plain own SUBSCRIBE and a live publication, both before the answer.
                own("a", "e1", 9, None),
                publish("a", json!(9), 9),
                own("a", "e1", 9, Some(true)),
                publish("a", json!(8), 8),
                publish("a", json!(9), 9),
                publish("a", json!(10), 10),
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
        let out = events(&mut p, &[error(2), publish("a", json!(1), 3)]);
        assert!(out.contains("event: PUBLISH"), "{out}");
        let mut p = Positions::new(["a"]);
        p.expect_recovery("a", 2, &at("e1", 0));
        let out = events(&mut p, &[error(3), publish("a", json!(1), 3)]);
        assert!(
            !out.contains("event: PUBLISH"),
            "another frame's error: {out}"
        );
    }

    #[test]
    fn only_the_named_channels_and_the_users_own_frames_move_the_id() {
        let mut p = Positions::new(["a", "b"]);
        p.expect_recovery("b", 2, &at("eb", 3));
        let out = events(
            &mut p,
            &[
                connected("ann"),
                own("a", "ea", 1, None),
                // A channel the request did not name (another tab's subscription).
                own("z", "ez", 1, None),
                frames::membership("UNSUBSCRIBE", "a", "bob", "t"),
                publish("a", json!(1), 2),
                frames::membership("UNSUBSCRIBE", "a", "ann", "t"),
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
        let frames = vec![publish("a", json!(1), 2); 3];
        let mut out = Vec::new();
        assert_eq!(p.write_events(&frames, true, &mut out, 1), 1);
        assert_eq!(
            String::from_utf8(out).unwrap().matches("event: ").count(),
            1
        );
    }
}
