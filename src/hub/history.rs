//! Channel history: `[TYPE, {…}]` entries, bounded by count and by age.

use super::options::ChannelOptions;
use serde_json::Value;

/// The original's timestamp: server local time, `YYYY-MM-DDTHH:MM:SS`.
pub fn now_stamp() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Records an event if the channel keeps history, then prunes.
pub fn record(opts: &mut ChannelOptions, kind: &str, body: Value) {
    if opts.history_size == 0 {
        return;
    }
    opts.history
        .push(Value::Array(vec![Value::String(kind.to_owned()), body]));
    prune(opts);
}

/// Drops entries past `history_size` (oldest first) and, with `history_duration`, entries whose
/// `datetime` is older than that many seconds. Entries without a `datetime` (allowed in a preset
/// `history`) are kept by age and only pruned by count (the original crashed on them).
pub fn prune(opts: &mut ChannelOptions) {
    // A duration too long to subtract from now (thousands of years) prunes nothing by age.
    let cutoff = i64::try_from(opts.history_duration)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|age| chrono::Local::now().checked_sub_signed(age));
    if let (true, Some(cutoff)) = (opts.history_duration > 0, cutoff) {
        let cutoff = cutoff.format("%Y-%m-%dT%H:%M:%S").to_string();
        opts.history.retain(|entry| {
            match entry
                .get(1)
                .and_then(|b| b.get("datetime"))
                .and_then(Value::as_str)
            {
                // Same-format local stamps compare correctly as strings.
                Some(stamp) => stamp >= cutoff.as_str(),
                None => true,
            }
        });
    }
    let size = usize::try_from(opts.history_size).unwrap_or(usize::MAX);
    if size > 0 && opts.history.len() > size {
        let excess = opts.history.len() - size;
        opts.history.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_newest() {
        let mut o = ChannelOptions {
            history_size: 2,
            ..ChannelOptions::default()
        };
        for i in 0..3 {
            record(&mut o, "PUBLISH", json!({"payload": i}));
        }
        assert_eq!(
            o.history,
            vec![
                json!(["PUBLISH", {"payload": 1}]),
                json!(["PUBLISH", {"payload": 2}])
            ]
        );
    }

    #[test]
    fn huge_duration_does_not_panic() {
        let mut o = ChannelOptions {
            history_size: 10,
            history_duration: u64::MAX,
            ..ChannelOptions::default()
        };
        record(&mut o, "PUBLISH", json!({"datetime": now_stamp()}));
        o.history_duration = 10_000_000_000_000;
        record(&mut o, "PUBLISH", json!({"datetime": now_stamp()}));
        assert_eq!(o.history.len(), 2);
    }

    #[test]
    fn duration_prunes_old_and_keeps_undated() {
        let mut o = ChannelOptions {
            history_size: 10,
            history_duration: 60,
            history: vec![
                json!(["PUBLISH", {"payload": 0}]),
                json!(["PUBLISH", {"datetime": "2000-01-01T00:00:00"}]),
            ],
            ..ChannelOptions::default()
        };
        record(&mut o, "PUBLISH", json!({"datetime": now_stamp()}));
        assert_eq!(o.history.len(), 2);
    }
}
