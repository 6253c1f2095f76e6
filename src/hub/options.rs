//! Channel options (§6.1) and user options (§6.2), with strict validation.
//!
//! Options arrive as a JSON object (create_channel webhook replies, `/web/create_channel`,
//! `/web/set_channel_options`, polling replies). Every key is validated before any is applied, so a
//! bad request changes nothing. Unknown keys and wrong types are refused with a message naming the key.

use super::history::History;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionError {
    #[error("Invalid keyword argument {0}")]
    UnknownKey(String),
    #[error("Invalid type for {key} (should be {expected})")]
    WrongType { key: String, expected: &'static str },
    #[error("Invalid value for {key}: {why}")]
    BadValue { key: String, why: &'static str },
}

fn wrong(key: &str, expected: &'static str) -> OptionError {
    OptionError::WrongType {
        key: key.to_owned(),
        expected,
    }
}

pub(crate) fn want_bool(key: &str, v: &Value) -> Result<bool, OptionError> {
    v.as_bool().ok_or_else(|| wrong(key, "bool"))
}

fn want_count(key: &str, v: &Value) -> Result<u64, OptionError> {
    match v {
        Value::Number(n) if n.is_u64() => Ok(n.as_u64().expect("checked")),
        Value::Number(n) if n.is_i64() => Err(OptionError::BadValue {
            key: key.to_owned(),
            why: "must not be negative",
        }),
        _ => Err(wrong(key, "int")),
    }
}

pub(crate) fn want_names(key: &str, v: &Value) -> Result<Vec<String>, OptionError> {
    let Value::Array(items) = v else {
        return Err(wrong(key, "list"));
    };
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_owned)
                .ok_or_else(|| wrong(key, "list of strings"))
        })
        .collect()
}

/// The `polling` option (§9.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Polling {
    pub mode: String,
    pub interval: f64,
    pub url: String,
    pub form: Map<String, Value>,
    pub originator: String,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            mode: String::new(),
            interval: 5.0,
            url: String::new(),
            form: Map::new(),
            originator: String::new(),
        }
    }
}

impl Polling {
    pub fn is_active(&self) -> bool {
        !self.mode.is_empty()
    }

    fn to_json(&self) -> Value {
        json!({"mode": self.mode, "interval": self.interval, "url": self.url,
               "form": self.form, "originator": self.originator})
    }

    /// Merges a `polling` object key-wise into a copy of `self`.
    fn merged(&self, v: &Value) -> Result<Polling, OptionError> {
        let Value::Object(map) = v else {
            return Err(wrong("polling", "dict"));
        };
        let mut p = self.clone();
        for (k, v) in map {
            match k.as_str() {
                "mode" => {
                    let mode = v.as_str().ok_or_else(|| wrong("polling.mode", "str"))?;
                    if !matches!(mode, "" | "simple" | "persistent" | "once") {
                        return Err(OptionError::BadValue {
                            key: "polling.mode".to_owned(),
                            why: "must be \"\", \"simple\", \"persistent\" or \"once\"",
                        });
                    }
                    p.mode = mode.to_owned();
                }
                "interval" => {
                    let i = v
                        .as_f64()
                        .ok_or_else(|| wrong("polling.interval", "number"))?;
                    // At most a day: a poller that never fires is a mistake, not a setting.
                    if !(i.is_finite() && i > 0.0 && i <= 86_400.0) {
                        return Err(OptionError::BadValue {
                            key: "polling.interval".to_owned(),
                            why: "must be a positive number of seconds, at most 86400",
                        });
                    }
                    p.interval = i;
                }
                "url" => {
                    p.url = v
                        .as_str()
                        .ok_or_else(|| wrong("polling.url", "str"))?
                        .to_owned()
                }
                "originator" => {
                    p.originator = v
                        .as_str()
                        .ok_or_else(|| wrong("polling.originator", "str"))?
                        .to_owned()
                }
                "form" => {
                    p.form = v
                        .as_object()
                        .ok_or_else(|| wrong("polling.form", "dict"))?
                        .clone()
                }
                other => return Err(OptionError::UnknownKey(format!("polling.{other}"))),
            }
        }
        if p.is_active() && p.url.is_empty() {
            return Err(OptionError::BadValue {
                key: "polling.url".to_owned(),
                why: "required when a polling mode is set",
            });
        }
        Ok(p)
    }
}

/// Every channel option, with the original's defaults (`moderated` is true).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelOptions {
    pub reflective: bool,
    pub history_size: u64,
    pub history: History,
    pub history_duration: u64,
    pub history_publish_only: bool,
    pub moderated: bool,
    pub moderated_publish: bool,
    pub moderated_subscribe: bool,
    pub moderated_unsubscribe: bool,
    pub presenceful: bool,
    pub anonymous: bool,
    pub polling: Polling,
    pub state: Map<String, Value>,
    pub server_presenceful: bool,
    pub server_user_presence: Vec<String>,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            reflective: true,
            history_size: 0,
            history: History::default(),
            history_duration: 0,
            history_publish_only: false,
            moderated: true,
            moderated_publish: false,
            moderated_subscribe: false,
            moderated_unsubscribe: false,
            presenceful: false,
            anonymous: false,
            polling: Polling::default(),
            state: Map::new(),
            server_presenceful: false,
            server_user_presence: Vec::new(),
        }
    }
}

/// What applying options changed that others must hear about.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// `(updates, deletes)` when `state` changed.
    pub state_diff: Option<(Map<String, Value>, Vec<String>)>,
    /// The `polling` option was given: the poller must be restarted.
    pub polling_changed: bool,
}

/// The names of every channel option, for callers that need to tell options from other fields.
pub const CHANNEL_OPTION_KEYS: [&str; 15] = [
    "reflective",
    "history_size",
    "history",
    "history_duration",
    "history_publish_only",
    "moderated",
    "moderated_publish",
    "moderated_subscribe",
    "moderated_unsubscribe",
    "presenceful",
    "anonymous",
    "polling",
    "state",
    "server_presenceful",
    "server_user_presence",
];

impl ChannelOptions {
    pub fn is_moderated_publish(&self) -> bool {
        self.moderated || self.moderated_publish
    }
    pub fn is_moderated_subscribe(&self) -> bool {
        self.moderated || self.moderated_subscribe
    }
    pub fn is_moderated_unsubscribe(&self) -> bool {
        self.moderated || self.moderated_unsubscribe
    }

    /// Validates every key of `opts`, then applies them all (or none).
    pub fn apply(&mut self, opts: &Map<String, Value>) -> Result<Applied, OptionError> {
        let mut next = self.clone();
        let mut applied = Applied::default();
        for (key, v) in opts {
            match key.as_str() {
                "reflective" => next.reflective = want_bool(key, v)?,
                "history_size" => next.history_size = want_count(key, v)?,
                "history_duration" => next.history_duration = want_count(key, v)?,
                "history_publish_only" => next.history_publish_only = want_bool(key, v)?,
                "moderated" => next.moderated = want_bool(key, v)?,
                "moderated_publish" => next.moderated_publish = want_bool(key, v)?,
                "moderated_subscribe" => next.moderated_subscribe = want_bool(key, v)?,
                "moderated_unsubscribe" => next.moderated_unsubscribe = want_bool(key, v)?,
                "presenceful" => next.presenceful = want_bool(key, v)?,
                "anonymous" => next.anonymous = want_bool(key, v)?,
                "server_presenceful" => next.server_presenceful = want_bool(key, v)?,
                "server_user_presence" => next.server_user_presence = want_names(key, v)?,
                "history" => next.history.replace(validate_history(v)?),
                "state" => {
                    next.state = v.as_object().ok_or_else(|| wrong(key, "dict"))?.clone();
                }
                "polling" => {
                    next.polling = next.polling.merged(v)?;
                    applied.polling_changed = true;
                }
                _ => return Err(OptionError::UnknownKey(key.clone())),
            }
        }
        if opts.contains_key("state") {
            let diff = state_diff(&self.state, &next.state);
            if !diff.0.is_empty() || !diff.1.is_empty() {
                applied.state_diff = Some(diff);
            }
        }
        *self = next;
        if opts.contains_key("history") || opts.contains_key("history_size") {
            // Fix of the original: a preset history longer than history_size is trimmed at once.
            crate::hub::history::prune(self);
        }
        Ok(applied)
    }

    /// All options as JSON, as `/web/get_channel_info` shows them.
    pub fn to_json(&self) -> Map<String, Value> {
        let v = json!({
            "reflective": self.reflective,
            "history_size": self.history_size,
            "history": self.history.to_json(),
            "history_duration": self.history_duration,
            "history_publish_only": self.history_publish_only,
            "moderated": self.moderated,
            "moderated_publish": self.moderated_publish,
            "moderated_subscribe": self.moderated_subscribe,
            "moderated_unsubscribe": self.moderated_unsubscribe,
            "presenceful": self.presenceful,
            "anonymous": self.anonymous,
            "polling": self.polling.to_json(),
            "state": self.state,
            "server_presenceful": self.server_presenceful,
            "server_user_presence": self.server_user_presence,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("json! of an object literal is an object"),
        }
    }
}

/// History entries must be `[TYPE, {…}]` pairs.
fn validate_history(v: &Value) -> Result<&[Value], OptionError> {
    let Value::Array(items) = v else {
        return Err(wrong("history", "list"));
    };
    for item in items {
        let ok = matches!(item, Value::Array(pair) if pair.len() == 2 && pair[0].is_string() && pair[1].is_object());
        if !ok {
            return Err(OptionError::BadValue {
                key: "history".to_owned(),
                why: "entries must be [\"TYPE\", {...}] pairs",
            });
        }
    }
    Ok(items)
}

/// `(updates, deletes)` turning `old` into `new`.
pub fn state_diff(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> (Map<String, Value>, Vec<String>) {
    let updates = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let deletes = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    (updates, deletes)
}

/// User options (§6.2). Every connect replaces them: defaults plus what that reply contains.
#[derive(Debug, Clone, PartialEq)]
pub struct UserOptions {
    pub reflective: bool,
    pub moderated_message: bool,
    pub per_connection_subscriptions: bool,
    pub global_unsubscriptions: bool,
    pub auto_subscribe: Vec<String>,
}

impl Default for UserOptions {
    fn default() -> Self {
        UserOptions {
            reflective: true,
            moderated_message: true,
            per_connection_subscriptions: false,
            global_unsubscriptions: false,
            auto_subscribe: Vec::new(),
        }
    }
}

impl UserOptions {
    /// Applies the user-option keys of `opts`. With `strict`, other keys are refused
    /// (`/web/set_user_options`); otherwise they are ignored (a connect reply has `name` etc.).
    pub fn apply(&mut self, opts: &Map<String, Value>, strict: bool) -> Result<(), OptionError> {
        let mut next = self.clone();
        for (key, v) in opts {
            match key.as_str() {
                "reflective" => next.reflective = want_bool(key, v)?,
                "moderated_message" => next.moderated_message = want_bool(key, v)?,
                "per_connection_subscriptions" => {
                    next.per_connection_subscriptions = want_bool(key, v)?
                }
                "global_unsubscriptions" => next.global_unsubscriptions = want_bool(key, v)?,
                "auto_subscribe" => next.auto_subscribe = want_names(key, v)?,
                _ if strict => return Err(OptionError::UnknownKey(key.clone())),
                _ => {}
            }
        }
        *self = next;
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "reflective": self.reflective,
            "moderated_message": self.moderated_message,
            "per_connection_subscriptions": self.per_connection_subscriptions,
            "global_unsubscriptions": self.global_unsubscriptions,
            "auto_subscribe": self.auto_subscribe,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn strict_types_and_all_or_nothing() {
        let mut o = ChannelOptions::default();
        let e = o
            .apply(&obj(json!({"reflective": false, "history_size": 5.0})))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid type for history_size (should be int)"
        );
        assert!(o.reflective, "nothing applied when one key is bad");
        assert_eq!(
            o.apply(&obj(json!({"bogus": 1}))).unwrap_err().to_string(),
            "Invalid keyword argument bogus"
        );
        assert_eq!(
            o.apply(&obj(json!({"presenceful": 1})))
                .unwrap_err()
                .to_string(),
            "Invalid type for presenceful (should be bool)"
        );
    }

    #[test]
    fn state_diff_reported() {
        let mut o = ChannelOptions::default();
        o.apply(&obj(json!({"state": {"a": 1, "b": 2}}))).unwrap();
        let a = o.apply(&obj(json!({"state": {"a": 1, "c": 3}}))).unwrap();
        assert_eq!(
            a.state_diff,
            Some((obj(json!({"c": 3})), vec!["b".to_owned()]))
        );
    }

    #[test]
    fn polling_merges_and_validates() {
        let mut o = ChannelOptions::default();
        o.apply(&obj(
            json!({"polling": {"mode": "simple", "url": "http://x/"}}),
        ))
        .unwrap();
        o.apply(&obj(json!({"polling": {"interval": 1}}))).unwrap();
        assert_eq!(o.polling.mode, "simple");
        assert_eq!(o.polling.interval, 1.0);
        assert!(o.apply(&obj(json!({"polling": {"mode": "bad"}}))).is_err());
    }
}
