//! What the Redis engine writes to and reads from Redis: key names, history entries, channel
//! snapshots and event messages.

use crate::engine::delivery::{Event, Kind, Snapshot, UserEvent};
use crate::engine::history::{Entry, History};
use crate::engine::options::ChannelSettings;
use crate::engine::Conn;
use crate::net::Transport;
use crate::protocol::{About, OutFrame};
use redis::Value as RValue;
use serde_json::{Map, Value};

/// Key names, under a prefix (`--redis-prefix`). Every key of a channel carries the channel's
/// name as its hash tag (`{…}`), every key of a user the user's, so that each script touches one
/// slot of a Redis Cluster.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// A name inside a hash tag: `%`, `{` and `}` escaped so that the tag ends where it should.
fn tag(name: &str) -> String {
    name.replace('%', "%25")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// The keys of one channel.
pub struct ChannelKeys {
    pub meta: String,
    pub history: String,
    pub members: String,
    pub state: String,
    /// The pub/sub channel of its events.
    pub events: String,
}

/// The keys of one user.
pub struct UserKeys {
    pub meta: String,
    pub conns: String,
    pub channels: String,
    pub recorded: String,
    /// Channels whose server presence watches this user.
    pub watchers: String,
    pub events: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn channel(&self, name: &str) -> ChannelKeys {
        let base = format!("{}:c:{{{}}}", self.prefix, tag(name));
        ChannelKeys {
            history: format!("{base}:h"),
            members: format!("{base}:m"),
            state: format!("{base}:st"),
            events: format!("{base}:ev"),
            meta: base,
        }
    }

    pub fn user(&self, name: &str) -> UserKeys {
        let base = format!("{}:u:{{{}}}", self.prefix, tag(name));
        UserKeys {
            conns: format!("{base}:conns"),
            channels: format!("{base}:chans"),
            recorded: format!("{base}:rec"),
            watchers: format!("{base}:w"),
            events: format!("{base}:ev"),
            meta: base,
        }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every channel's name.
    pub fn channel_names(&self) -> String {
        format!("{}:chans", self.prefix)
    }

    /// Every connection, scored by connect time.
    pub fn connections(&self) -> String {
        format!("{}:conns", self.prefix)
    }

    /// Every node's heartbeat, by node id: `{"since": …, "seen": …}`.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// One node's connections (connection id → user name), for cleaning up after it.
    pub fn node_conns(&self, node: &str) -> String {
        format!("{}:n:{node}:conns", self.prefix)
    }

    /// A node's pub/sub channel for relayed requests and their replies (see `relay`).
    pub fn relay(&self, node: &str) -> String {
        format!("{}:n:{node}:relay", self.prefix)
    }

    /// A channel's lease of one kind (`create`, `poll`).
    pub fn lease(&self, channel: &str, kind: &str) -> String {
        format!("{}:{kind}", self.channel(channel).meta)
    }

    /// The lock a node takes to clean up after a dead one.
    pub fn node_reaper(&self, node: &str) -> String {
        format!("{}:n:{node}:reaper", self.prefix)
    }

    /// The channel prefix of event channel names, to tell channel from user events.
    pub fn is_channel_events(&self, chan: &str) -> bool {
        chan.starts_with(&format!("{}:c:{{", self.prefix))
    }

    /// The name inside a key's hash tag.
    pub fn untag(key: &str) -> Option<String> {
        let start = key.find('{')? + 1;
        let end = start + key[start..].find('}')?;
        Some(
            key[start..end]
                .replace("%7D", "}")
                .replace("%7B", "{")
                .replace("%25", "%"),
        )
    }
}

/// A channel's settings as stored: JSON of every option but history and state.
pub fn settings_json(s: &ChannelSettings) -> String {
    let mut m = s.to_json(Vec::new(), &Map::new());
    m.shift_remove("history");
    m.shift_remove("state");
    Value::Object(m).to_string()
}

/// The stored settings, read back through the same validation as any options.
pub fn parse_settings(text: &str) -> ChannelSettings {
    serde_json::from_str::<Map<String, Value>>(text)
        .ok()
        .and_then(|m| ChannelSettings::default().update(&m).ok())
        .map(|u| u.settings)
        .unwrap_or_default()
}

/// The fields `CREATE` and `UPDATE` store next to the settings JSON, for the scripts to read.
pub fn settings_args(s: &ChannelSettings) -> [String; 6] {
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    [
        settings_json(s),
        flag(s.presenceful),
        flag(s.history_publish_only),
        s.history_size.to_string(),
        s.history_duration.to_string(),
        flag(s.reflective),
    ]
}

/// A history entry as given in a preset `history` option: `"<secs> <json>"`.
pub fn preset_entry(v: &Value) -> String {
    let secs = v
        .get(1)
        .and_then(|b| b.get("datetime"))
        .and_then(Value::as_str)
        .and_then(stamp_secs)
        .unwrap_or(-1);
    format!("{secs} {}", crate::protocol::to_ascii_string(v))
}

/// Unix seconds of a `datetime` stamp (server local time).
pub fn stamp_secs(stamp: &str) -> Option<i64> {
    let naive = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S").ok()?;
    naive
        .and_local_timezone(chrono::Local)
        .earliest()
        .map(|t| t.timestamp())
}

pub fn now_secs() -> i64 {
    chrono::Local::now().timestamp()
}

/// What a node records of each of its connections (`<prefix>:n:<node>:conns`), so that another
/// node can close it for it, and the admin console can show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnRecord {
    pub user: String,
    pub cookie: String,
    pub addr: String,
    pub transport: Option<Transport>,
    pub since_ms: i64,
}

impl ConnRecord {
    pub fn of(user: &str, conn: &Conn) -> ConnRecord {
        ConnRecord {
            user: user.to_owned(),
            cookie: conn.cookie.clone(),
            addr: conn.remote_addr.clone(),
            transport: Some(conn.transport),
            since_ms: conn.since_ms,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::json!({
            "user": self.user,
            "cookie": self.cookie,
            "addr": self.addr,
            "transport": self.transport.map(Transport::name),
            "since": self.since_ms,
        })
        .to_string()
    }

    pub fn parse(text: &str) -> Option<ConnRecord> {
        let v: Value = serde_json::from_str(text).ok()?;
        Some(ConnRecord {
            user: v["user"].as_str()?.to_owned(),
            cookie: v["cookie"].as_str().unwrap_or("").to_owned(),
            addr: v["addr"].as_str().unwrap_or("").to_owned(),
            transport: v["transport"].as_str().and_then(Transport::from_name),
            since_ms: v["since"].as_i64().unwrap_or(0),
        })
    }
}

fn text(v: &RValue) -> String {
    match v {
        RValue::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        RValue::SimpleString(s) => s.clone(),
        RValue::Int(i) => i.to_string(),
        RValue::VerbatimString { text, .. } => text.clone(),
        _ => String::new(),
    }
}

fn int(v: &RValue) -> i64 {
    match v {
        RValue::Int(i) => *i,
        other => text(other).parse().unwrap_or(0),
    }
}

/// Parses a stored history entry `"<offset> <secs> <json>"`.
fn parse_entry(e: &str) -> Option<Entry> {
    let mut parts = e.splitn(3, ' ');
    let offset: u64 = parts.next()?.parse().ok()?;
    let _secs = parts.next()?;
    let json: Value = serde_json::from_str(parts.next()?).ok()?;
    let mut entry = Entry::from_value(&json);
    entry.offset = offset;
    Some(entry)
}

/// Parses a `SNAPSHOT` (or `JOIN`) reply `{2, offset, epoch, settings, floor, n, entries…, 2m,
/// pairs…, members…}`; `history_max_bytes` bounds the history as on every node.
pub fn parse_snapshot(items: &[RValue], history_max_bytes: usize) -> Option<Snapshot> {
    if items.len() < 7 || int(&items[0]) != 2 {
        return None;
    }
    let offset = int(&items[1]) as u64;
    let epoch = text(&items[2]);
    let settings = parse_settings(&text(&items[3]));
    let floor = int(&items[4]).max(0) as u64;
    let n = int(&items[5]).max(0) as usize;
    let entries = items.get(6..6 + n)?;
    let mut history = History::default();
    history.set_max_bytes(history_max_bytes);
    for e in entries {
        if let Some(entry) = parse_entry(&text(e)) {
            history.push(entry);
        }
    }
    let m = int(items.get(6 + n)?).max(0) as usize;
    let pairs = items.get(7 + n..7 + n + m)?;
    let mut state = Map::new();
    for kv in pairs.chunks(2) {
        if let [k, v] = kv {
            let val = serde_json::from_str(&text(v)).unwrap_or(Value::Null);
            state.insert(text(k), val);
        }
    }
    let members = items[7 + n + m..].iter().map(text).collect();
    Some(Snapshot {
        epoch,
        offset,
        floor,
        settings,
        history,
        state,
        members,
    })
}

/// Parses an event message of `channel`: a JSON header line, then the frame's args (the frame's
/// name and what it is about follow from the event).
pub fn parse_event<'m>(channel: &str, msg: &'m [u8]) -> Option<Event<'m>> {
    let nl = msg.iter().position(|b| *b == b'\n')?;
    let header: Vec<Value> = serde_json::from_slice(&msg[..nl]).ok()?;
    let s = |i: usize| {
        header
            .get(i)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let epoch = header.first()?.as_str()?.to_owned();
    let offset = header.get(1)?.as_u64()?;
    let kind = match header.get(2)?.as_str()? {
        "P" => Kind::Publish {
            skip_conn: s(3),
            to: s(4),
        },
        "B" => Kind::Broadcast { skip_user: s(3) },
        "J" => Kind::Join { user: s(3) },
        "L" => Kind::Leave {
            user: s(3),
            presence: header.get(4).and_then(Value::as_i64) == Some(1),
        },
        "X" => Kind::Destroy { stamp: s(3) },
        _ => return None,
    };
    let args = &msg[nl + 1..];
    let member = |user: &str| About::Member {
        channel: channel.into(),
        user: user.into(),
        position: None,
    };
    let frame = match &kind {
        _ if args.is_empty() => None,
        Kind::Publish { .. } => Some((
            "PUBLISH",
            About::Publish {
                channel: channel.into(),
            },
        )),
        Kind::Broadcast { .. } => Some(("STATE_UPDATE", About::Nothing)),
        Kind::Join { user } => Some(("SUBSCRIBE", member(user))),
        Kind::Leave { user, .. } => Some(("UNSUBSCRIBE", member(user))),
        // A destroy carries none: each member's UNSUBSCRIBE is made where it is delivered.
        Kind::Destroy { .. } => None,
    }
    .map(|(name, about)| OutFrame::encoded(name, args.into(), about));
    Some(Event {
        epoch: epoch.into(),
        offset,
        kind,
        frame,
    })
}

/// Parses a user event message: a JSON header line (`["M"]`, `["K"]`, `["O", options]`,
/// `["J", channel, node]`, `["P", channel, offset, skip_conn]`), then the MESSAGE's args for
/// `M`, the PUBLISH's for `P`.
pub fn parse_user_event(msg: &[u8]) -> Option<UserEvent> {
    let nl = msg.iter().position(|b| *b == b'\n')?;
    let header: Vec<Value> = serde_json::from_slice(&msg[..nl]).ok()?;
    Some(match header.first()?.as_str()? {
        "M" => UserEvent::Frame(OutFrame::encoded(
            "MESSAGE",
            msg[nl + 1..].into(),
            About::Nothing,
        )),
        "P" => {
            let channel = header.get(1)?.as_str()?;
            let about = About::Publish {
                channel: channel.into(),
            };
            let frame = OutFrame::encoded("PUBLISH", msg[nl + 1..].into(), about)
                .at_offset(header.get(2)?.as_u64()?);
            let skip = header.get(3)?.as_str()?;
            UserEvent::Publication {
                channel: channel.to_owned(),
                frame,
                skip_conn: (!skip.is_empty()).then(|| skip.to_owned()),
            }
        }
        "K" => UserEvent::Kick,
        "O" => UserEvent::Options(header.get(1)?.clone()),
        "J" => UserEvent::Joined {
            channel: header.get(1)?.as_str()?.to_owned(),
            node: header
                .get(2)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tag_names_safely() {
        let k = Keys::new("hb");
        let c = k.channel("a{b}%");
        assert_eq!(c.meta, "hb:c:{a%7Bb%7D%25}");
        assert_eq!(Keys::untag(&c.events).as_deref(), Some("a{b}%"));
        assert!(k.is_channel_events(&c.events));
        assert!(!k.is_channel_events(&k.user("x").events));
    }

    #[test]
    fn events_parse() {
        let e = parse_event(
            "room",
            b"[\"ep\", 7, \"P\", \"c1\", \"*\"]\n{\"payload\": 1}",
        )
        .unwrap();
        assert_eq!((&*e.epoch, e.offset), ("ep", 7));
        assert_eq!(
            e.kind,
            Kind::Publish {
                skip_conn: "c1".into(),
                to: "*".into()
            }
        );
        let frame = e.frame.unwrap();
        assert_eq!(frame.text(), "\"PUBLISH\", {\"payload\": 1}");
        assert_eq!(
            frame.about(),
            &About::Publish {
                channel: "room".into()
            }
        );
        let left = parse_event("room", b"[\"ep\", 8, \"L\", \"ann\", 1]\n{}").unwrap();
        let frame = left.frame.unwrap();
        assert_eq!(frame.name(), "UNSUBSCRIBE");
        assert!(matches!(frame.about(), About::Member { user, .. } if &**user == "ann"));
        assert!(parse_event("room", b"[\"ep\", 9, \"X\", \"now\"]\n")
            .unwrap()
            .frame
            .is_none());
        assert!(parse_event("room", b"nonsense").is_none());
    }

    #[test]
    fn user_events_parse() {
        let frame = parse_user_event(b"[\"M\"]\n{\"payload\": 2}").unwrap();
        assert!(
            matches!(frame, UserEvent::Frame(f) if f.text() == "\"MESSAGE\", {\"payload\": 2}")
        );
        let publication =
            parse_user_event(b"[\"P\", \"room\", 7, \"c1\"]\n{\"payload\": 3}").unwrap();
        assert!(matches!(
            publication,
            UserEvent::Publication { channel, frame, skip_conn: Some(skip) }
                if channel == "room" && frame.offset() == 7 && skip == "c1" && frame.name() == "PUBLISH"
        ));
        assert!(matches!(
            parse_user_event(b"[\"K\"]\n"),
            Some(UserEvent::Kick)
        ));
        let joined = parse_user_event(b"[\"J\", \"room\", \"n1\"]\n").unwrap();
        assert!(
            matches!(joined, UserEvent::Joined { channel, node } if channel == "room" && node == "n1")
        );
        assert!(parse_user_event(b"[\"Z\"]\n").is_none());
        assert!(parse_user_event(b"no header").is_none());
    }

    #[test]
    fn settings_round_trip() {
        let s = ChannelSettings {
            presenceful: true,
            history_size: 9,
            ..ChannelSettings::default()
        };
        assert_eq!(parse_settings(&settings_json(&s)), s);
    }
}
