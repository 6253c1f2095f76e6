//! Channel options (§6.1) and user options (§6.2), with strict validation.
//!
//! Options arrive as a JSON object (create_channel webhook replies, `/web/create_channel`,
//! `/web/set_channel_options`, polling replies). Every key is validated before any is applied, so a
//! bad request changes nothing. Unknown keys and wrong types are refused with a message naming the key.

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

/// A channel's settings: every option except `history` and `state`, which are the channel's data
/// (kept by the engine apart from its settings). The original's defaults (`moderated` is true).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSettings {
    pub reflective: bool,
    pub history_size: u64,
    pub history_duration: u64,
    pub history_publish_only: bool,
    pub moderated: bool,
    pub moderated_publish: bool,
    pub moderated_subscribe: bool,
    pub moderated_unsubscribe: bool,
    pub presenceful: bool,
    pub anonymous: bool,
    pub polling: Polling,
    pub server_presenceful: bool,
    pub server_user_presence: Vec<String>,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings {
            reflective: true,
            history_size: 0,
            history_duration: 0,
            history_publish_only: false,
            moderated: true,
            moderated_publish: false,
            moderated_subscribe: false,
            moderated_unsubscribe: false,
            presenceful: false,
            anonymous: false,
            polling: Polling::default(),
            server_presenceful: false,
            server_user_presence: Vec::new(),
        }
    }
}

/// A validated change of a channel's options: the settings it leads to, and the data it
/// replaces.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelUpdate {
    pub settings: ChannelSettings,
    /// A preset `history` replacing the current one.
    pub history: Option<Vec<Value>>,
    /// The new whole `state`.
    pub state: Option<Map<String, Value>>,
    /// `history` or `history_size` was given: the history must be trimmed at once (a fix of the
    /// original, which let a preset exceed `history_size` until the next append).
    pub trim_history: bool,
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

impl ChannelSettings {
    pub fn is_moderated_publish(&self) -> bool {
        self.moderated || self.moderated_publish
    }
    pub fn is_moderated_subscribe(&self) -> bool {
        self.moderated || self.moderated_subscribe
    }
    pub fn is_moderated_unsubscribe(&self) -> bool {
        self.moderated || self.moderated_unsubscribe
    }

    /// Validates every key of `opts` against these settings; nothing is applied, so a bad key
    /// changes nothing. The result says what applying them means.
    pub fn update(&self, opts: &Map<String, Value>) -> Result<ChannelUpdate, OptionError> {
        let mut next = self.clone();
        let mut update = ChannelUpdate {
            settings: ChannelSettings::default(),
            history: None,
            state: None,
            trim_history: false,
            polling_changed: false,
        };
        for (key, v) in opts {
            match key.as_str() {
                "reflective" => next.reflective = want_bool(key, v)?,
                "history_size" => {
                    next.history_size = want_count(key, v)?;
                    update.trim_history = true;
                }
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
                "history" => {
                    update.history = Some(validate_history(v)?.to_vec());
                    update.trim_history = true;
                }
                "state" => {
                    update.state = Some(v.as_object().ok_or_else(|| wrong(key, "dict"))?.clone());
                }
                "polling" => {
                    next.polling = next.polling.merged(v)?;
                    update.polling_changed = true;
                }
                _ => return Err(OptionError::UnknownKey(key.clone())),
            }
        }
        update.settings = next;
        Ok(update)
    }

    /// The update of applying `first`, then `then` (whose keys win), to these settings.
    pub fn update_twice(
        &self,
        first: &Map<String, Value>,
        then: &Map<String, Value>,
    ) -> Result<ChannelUpdate, OptionError> {
        let a = self.update(first)?;
        let b = a.settings.update(then)?;
        Ok(ChannelUpdate {
            settings: b.settings,
            history: b.history.or(a.history),
            state: b.state.or(a.state),
            trim_history: a.trim_history || b.trim_history,
            polling_changed: a.polling_changed || b.polling_changed,
        })
    }

    /// All options as JSON, as `/web/get_channel_info` shows them, with the channel's data.
    pub fn to_json(&self, history: Vec<Value>, state: &Map<String, Value>) -> Map<String, Value> {
        let v = json!({
            "reflective": self.reflective,
            "history_size": self.history_size,
            "history": history,
            "history_duration": self.history_duration,
            "history_publish_only": self.history_publish_only,
            "moderated": self.moderated,
            "moderated_publish": self.moderated_publish,
            "moderated_subscribe": self.moderated_subscribe,
            "moderated_unsubscribe": self.moderated_unsubscribe,
            "presenceful": self.presenceful,
            "anonymous": self.anonymous,
            "polling": self.polling.to_json(),
            "state": state,
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
        let o = ChannelSettings::default();
        let e = o
            .update(&obj(json!({"reflective": false, "history_size": 5.0})))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid type for history_size (should be int)"
        );
        assert_eq!(
            o.update(&obj(json!({"bogus": 1}))).unwrap_err().to_string(),
            "Invalid keyword argument bogus"
        );
        assert_eq!(
            o.update(&obj(json!({"presenceful": 1})))
                .unwrap_err()
                .to_string(),
            "Invalid type for presenceful (should be bool)"
        );
        let u = o
            .update(&obj(json!({"reflective": false, "state": {"a": 1}})))
            .unwrap();
        assert!(!u.settings.reflective && u.state == Some(obj(json!({"a": 1}))));
    }

    #[test]
    fn state_diff_reported() {
        let (updates, deletes) =
            state_diff(&obj(json!({"a": 1, "b": 2})), &obj(json!({"a": 1, "c": 3})));
        assert_eq!(
            (updates, deletes),
            (obj(json!({"c": 3})), vec!["b".to_owned()])
        );
    }

    #[test]
    fn polling_merges_and_validates() {
        let o = ChannelSettings::default();
        let o = o
            .update(&obj(
                json!({"polling": {"mode": "simple", "url": "http://x/"}}),
            ))
            .unwrap()
            .settings;
        let o = o
            .update(&obj(json!({"polling": {"interval": 1}})))
            .unwrap()
            .settings;
        assert_eq!(o.polling.mode, "simple");
        assert_eq!(o.polling.interval, 1.0);
        assert!(o.update(&obj(json!({"polling": {"mode": "bad"}}))).is_err());
    }
}
