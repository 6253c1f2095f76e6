//! Channel history: `[TYPE, {…}]` entries, bounded by count (`history_size`), by age
//! (`history_duration`) and by bytes (`--history-max-bytes`).
//!
//! Entries are kept already encoded in the server's JSON dialect, so that sending the history in
//! an own-SUBSCRIBE frame copies bytes instead of serializing values under the channel's lock,
//! and so that the byte bound is exact.

use super::options::ChannelSettings;
use crate::protocol::{to_ascii_string, Position};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::VecDeque;

/// Bytes of history a channel keeps unless the hub says otherwise (`--history-max-bytes`).
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024;

/// The original's timestamp: server local time, `YYYY-MM-DDTHH:MM:SS`.
pub fn now_stamp() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// One history entry, encoded.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `["TYPE", {…}]` as the server writes JSON (ASCII only, Python separators).
    json: Box<RawValue>,
    /// The entry's `datetime`, for pruning by age; preset entries may have none.
    stamp: Option<Box<str>>,
    /// The channel offset of the event it records (0 for a preset entry).
    pub offset: u64,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.json.get() == other.json.get()
    }
}

impl Entry {
    /// An entry of `kind` with `body` (which carries `stamp` as its `datetime`).
    pub fn new<B: Serialize>(kind: &str, body: &B, stamp: &str) -> Entry {
        Entry {
            json: raw(&(kind, body)),
            stamp: Some(stamp.into()),
            offset: 0,
        }
    }

    /// A join's or a leave's entry (`SUBSCRIBE` or `UNSUBSCRIBE`: the user, the time).
    pub fn membership(kind: &str, user: &str, stamp: &str) -> Entry {
        Entry::new(
            kind,
            &serde_json::json!({"user": user, "datetime": stamp}),
            stamp,
        )
    }

    /// An entry given as a value (a preset `history` option).
    pub fn from_value(v: &Value) -> Entry {
        let stamp = v
            .get(1)
            .and_then(|b| b.get("datetime"))
            .and_then(Value::as_str)
            .map(Into::into);
        Entry {
            json: raw(v),
            stamp,
            offset: 0,
        }
    }

    /// The encoded entry, `["TYPE", {…}]`.
    pub fn json(&self) -> &str {
        self.json.get()
    }

    /// Whether it records a PUBLISH (the entries a recovering client is sent).
    pub fn is_publication(&self) -> bool {
        self.json.get().starts_with("[\"PUBLISH\"")
    }

    /// Encoded size in bytes.
    pub fn size(&self) -> usize {
        self.json.get().len()
    }

    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.json.get()).expect("entries are valid JSON")
    }
}

/// Encodes `v` once, in the server's JSON dialect, as a raw value.
pub fn raw<T: Serialize + ?Sized>(v: &T) -> Box<RawValue> {
    RawValue::from_string(to_ascii_string(v)).expect("the encoder writes valid JSON")
}

#[derive(Debug, Clone, PartialEq)]
pub struct History {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_bytes: usize,
    /// The highest offset of a publication dropped (or never kept) so far: the publications
    /// newer than it are all still here.
    floor: u64,
}

impl Default for History {
    fn default() -> Self {
        History {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes: DEFAULT_MAX_BYTES,
            floor: 0,
        }
    }
}

impl History {
    /// Replaces the entries (a preset `history` option), keeping the byte bound.
    pub fn replace(&mut self, values: &[Value]) {
        self.floor = self
            .entries
            .iter()
            .filter(|e| e.is_publication())
            .map(|e| e.offset)
            .fold(self.floor, u64::max);
        self.entries.clear();
        self.bytes = 0;
        for v in values {
            self.push(Entry::from_value(v));
        }
        self.prune_bytes();
    }

    /// Sets the byte bound (the hub's `--history-max-bytes`), pruning if needed.
    pub fn set_max_bytes(&mut self, max: usize) {
        self.max_bytes = max;
        self.prune_bytes();
    }

    pub fn push(&mut self, e: Entry) {
        self.bytes += e.size();
        self.entries.push_back(e);
    }

    fn pop_oldest(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.dropped(&e);
        }
    }

    /// Accounts for an entry taken out: its bytes, and the floor if it was a publication.
    fn dropped(&mut self, e: &Entry) {
        self.bytes -= e.size();
        if e.is_publication() {
            self.floor = self.floor.max(e.offset);
        }
    }

    /// The highest offset of a publication dropped (or never kept) so far.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Notes a publication at `offset` that is not kept (the channel has no history): a client
    /// that was before it can no longer recover.
    pub fn skip(&mut self, offset: u64) {
        self.floor = self.floor.max(offset);
    }

    /// The publications a client at `pos` missed, oldest first, if the history still holds every
    /// one of them and they fit in `allowance` bytes, counting `overhead` more for each (what
    /// replaying an entry as a frame adds to it). `epoch` and `offset` are the channel's now;
    /// `floor` is [`History::floor`] (or the Redis copy of it). `None`: not recoverable (another
    /// epoch, a position from the future, a publication after it dropped or never kept, or more
    /// than the connection can take at once).
    pub fn missed(
        &self,
        now: (&str, u64),
        floor: u64,
        pos: &Position,
        allowance: usize,
        overhead: usize,
    ) -> Option<Vec<&Entry>> {
        let (epoch, offset) = now;
        if pos.epoch != epoch || pos.offset > offset || floor > pos.offset {
            return None;
        }
        let mut used = 0;
        let mut out = Vec::new();
        for e in self.entries.iter().filter(|e| e.offset > pos.offset) {
            if !e.is_publication() {
                continue;
            }
            used += e.size() + overhead;
            if used > allowance {
                return None;
            }
            out.push(e);
        }
        Some(out)
    }

    fn prune_bytes(&mut self) {
        while self.bytes > self.max_bytes {
            self.pop_oldest();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn to_json(&self) -> Vec<Value> {
        self.entries.iter().map(Entry::to_value).collect()
    }

    /// The newest entries whose encoded size (with separators) fits in `allowance` bytes, for an
    /// own-SUBSCRIBE frame; the oldest are left out.
    pub fn newest_within(&self, allowance: usize) -> Tail<'_> {
        let mut used = 0;
        let mut start = self.entries.len();
        for (i, e) in self.entries.iter().enumerate().rev() {
            used += e.size() + 2;
            if used > allowance {
                break;
            }
            start = i;
        }
        Tail(&self.entries, start)
    }
}

/// Entries from an index on, serialized as a JSON array of the encoded entries.
pub struct Tail<'a>(&'a VecDeque<Entry>, usize);

impl Serialize for Tail<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len() - self.1))?;
        for e in self.0.iter().skip(self.1) {
            seq.serialize_element(&*e.json)?;
        }
        seq.end()
    }
}

/// Records an entry if the channel keeps history, then prunes.
pub fn record(history: &mut History, settings: &ChannelSettings, entry: Entry) {
    if settings.history_size == 0 {
        if entry.is_publication() {
            history.skip(entry.offset);
        }
        return;
    }
    history.push(entry);
    prune(history, settings, true);
}

/// Drops entries past `history_size` (oldest first), past the byte bound and, with `by_age` and
/// `history_duration`, entries whose `datetime` is older than that many seconds (the original
/// pruned by age only when appending). Entries without a `datetime` (allowed in a preset
/// `history`) are kept by age and only pruned by count and size (the original crashed on them).
pub fn prune(history: &mut History, settings: &ChannelSettings, by_age: bool) {
    // A duration too long to subtract from now (thousands of years) prunes nothing by age.
    let cutoff = i64::try_from(settings.history_duration)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|age| chrono::Local::now().checked_sub_signed(age));
    if let (true, true, Some(cutoff)) = (by_age, settings.history_duration > 0, cutoff) {
        let cutoff = cutoff.format("%Y-%m-%dT%H:%M:%S").to_string();
        // Same-format local stamps compare correctly as strings.
        while let Some(i) = history
            .entries
            .iter()
            .position(|e| e.stamp.as_deref().is_some_and(|s| s < cutoff.as_str()))
        {
            let e = history.entries.remove(i).expect("found");
            history.dropped(&e);
        }
    }
    let size = usize::try_from(settings.history_size).unwrap_or(usize::MAX);
    while size > 0 && history.entries.len() > size {
        history.pop_oldest();
    }
    history.prune_bytes();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A channel's settings and history, as the engine keeps them.
    #[derive(Default)]
    struct ChannelOptions {
        settings: ChannelSettings,
        history: History,
    }

    fn publish(o: &mut ChannelOptions, payload: Value, stamp: &str) {
        record(
            &mut o.history,
            &o.settings,
            Entry::new(
                "PUBLISH",
                &json!({"payload": payload, "datetime": stamp}),
                stamp,
            ),
        );
    }

    #[test]
    fn keeps_the_newest() {
        let mut o = ChannelOptions::default();
        o.settings.history_size = 2;
        for i in 0..3 {
            publish(&mut o, json!(i), "2026-01-01T00:00:00");
        }
        let payloads: Vec<Value> = o
            .history
            .to_json()
            .iter()
            .map(|e| e[1]["payload"].clone())
            .collect();
        assert_eq!(payloads, vec![json!(1), json!(2)]);
    }

    #[test]
    fn bounded_in_bytes_and_trimmed_to_an_allowance() {
        let mut o = ChannelOptions::default();
        o.settings.history_size = 100;
        o.history.set_max_bytes(1000);
        for i in 0..20 {
            publish(&mut o, json!("x".repeat(90) + &i.to_string()), "t");
        }
        assert!(o.history.bytes <= 1000 && o.history.len() < 20);
        assert_eq!(
            o.history.bytes,
            o.history
                .to_json()
                .iter()
                .map(|v| to_ascii_string(v).len())
                .sum::<usize>()
        );
        let newest = to_ascii_string(&o.history.newest_within(300));
        let kept: Vec<Value> = serde_json::from_str(&newest).unwrap();
        assert!(!kept.is_empty() && newest.len() <= 300, "{newest}");
        assert!(kept.last().unwrap()[1]["payload"]
            .as_str()
            .unwrap()
            .ends_with("19"));
        assert_eq!(to_ascii_string(&o.history.newest_within(10)), "[]");
    }

    #[test]
    fn huge_duration_does_not_panic() {
        let mut o = ChannelOptions::default();
        o.settings.history_size = 10;
        o.settings.history_duration = u64::MAX;
        publish(&mut o, json!(1), &now_stamp());
        o.settings.history_duration = 10_000_000_000_000;
        publish(&mut o, json!(2), &now_stamp());
        assert_eq!(o.history.len(), 2);
    }

    #[test]
    fn duration_prunes_old_and_keeps_undated() {
        let mut o = ChannelOptions::default();
        o.settings.history_size = 10;
        o.settings.history_duration = 60;
        o.history.replace(&[
            json!(["PUBLISH", {"payload": 0}]),
            json!(["PUBLISH", {"datetime": "2000-01-01T00:00:00"}]),
        ]);
        publish(&mut o, json!(1), &now_stamp());
        assert_eq!(o.history.len(), 2);
        assert_eq!(
            o.history.bytes,
            o.history.entries.iter().map(Entry::size).sum::<usize>()
        );
    }

    /// A publication in the model channel below.
    fn publication(o: &mut ChannelOptions, offset: u64) {
        let mut e = Entry::new("PUBLISH", &json!({"payload": offset, "datetime": "t"}), "t");
        e.offset = offset;
        record(&mut o.history, &o.settings, e);
    }

    fn membership(o: &mut ChannelOptions, offset: u64) {
        let mut e = Entry::new("SUBSCRIBE", &json!({"user": "u", "datetime": "t"}), "t");
        e.offset = offset;
        record(&mut o.history, &o.settings, e);
    }

    #[test]
    fn missed_is_what_came_after_the_position() {
        let mut o = ChannelOptions::default();
        o.settings.history_size = 3;
        membership(&mut o, 1);
        for off in 2..=4 {
            publication(&mut o, off);
        }
        let at = |offset| Position {
            epoch: "e".into(),
            offset,
        };
        let missed = |pos: &Position, allowance| {
            o.history
                .missed(("e", 4), o.history.floor(), pos, allowance, 64)
                .map(|v| v.iter().map(|e| e.offset).collect::<Vec<_>>())
        };
        assert_eq!(missed(&at(2), 10_000), Some(vec![3, 4]));
        assert_eq!(missed(&at(4), 10_000), Some(vec![]));
        assert_eq!(missed(&at(1), 10_000), Some(vec![2, 3, 4]));
        assert_eq!(
            missed(&at(0), 10_000),
            Some(vec![2, 3, 4]),
            "only a join was dropped"
        );
        assert_eq!(missed(&at(5), 10_000), None, "from the future");
        assert_eq!(missed(&at(2), 100), None, "more than the allowance");
        let other = Position {
            epoch: "x".into(),
            offset: 2,
        };
        assert_eq!(missed(&other, 10_000), None, "another epoch");
        publication(&mut o, 5);
        assert_eq!(o.history.floor(), 2, "publication 2 was dropped");
    }

    #[derive(Debug, Clone)]
    enum Step {
        Publish,
        /// Someone else joins or leaves (an event that is not a publication).
        Presence,
        /// The client's connection drops, or it comes back and recovers.
        Toggle,
        /// The channel's history_size changes (0: no history).
        Resize(u64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => Just(Step::Publish),
            2 => Just(Step::Presence),
            2 => Just(Step::Toggle),
            1 => (0u64..6).prop_map(Step::Resize),
        ]
    }

    proptest::proptest! {
        /// Random publish / drop / reconnect schedules against one channel: what the client
        /// ends up with has no duplicate and is in order; every recovery that succeeds delivers
        /// exactly the publications made while it was away; and a recovery fails only when one
        /// of those is really missing from the history.
        #[test]
        fn recovery_loses_and_duplicates_nothing(
            steps in proptest::collection::vec(step(), 1..80),
            size in 0u64..6,
        ) {
            let mut o = ChannelOptions::default();
            o.settings.history_size = size;
            let mut offset = 0;
            let mut published = Vec::new(); // every publication's offset
            let mut got: Vec<u64> = Vec::new(); // what the client received, in order
            let mut online = true;
            let mut pos = 0; // the client's last seen offset
            for s in steps {
                match s {
                    Step::Publish => {
                        offset += 1;
                        publication(&mut o, offset);
                        published.push(offset);
                        if online {
                            got.push(offset);
                            pos = offset;
                        }
                    }
                    Step::Presence => {
                        offset += 1;
                        membership(&mut o, offset);
                    }
                    Step::Resize(n) => {
                        o.settings.history_size = n;
                        prune(&mut o.history, &o.settings, false);
                    }
                    Step::Toggle if online => online = false,
                    Step::Toggle => {
                        online = true;
                        let me = Position { epoch: "e".into(), offset: pos };
                        let away: Vec<u64> =
                            published.iter().copied().filter(|p| *p > pos).collect();
                        match o.history.missed(("e", offset), o.history.floor(), &me, usize::MAX / 2, 64) {
                            Some(missed) => {
                                let missed: Vec<u64> = missed.iter().map(|e| e.offset).collect();
                                proptest::prop_assert_eq!(&missed, &away);
                                got.extend(missed);
                            }
                            None => {
                                let kept: Vec<u64> =
                                    o.history.entries.iter().map(|e| e.offset).collect();
                                proptest::prop_assert!(
                                    away.iter().any(|p| !kept.contains(p)),
                                    "refused although {away:?} are all in {kept:?}"
                                );
                                // Not recovered: the client starts afresh from now.
                            }
                        }
                        pos = offset;
                    }
                }
            }
            proptest::prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        }
    }
}
