//! Reading the web application's answer: `[success, {options}]`.

use serde_json::{Map, Value};

/// The outcome of a hook. Transport failures and malformed replies are denials whose `error`
/// option says what went wrong, exactly as the original server reported them.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub success: bool,
    pub options: Map<String, Value>,
    /// The reply's first `Set-Cookie` header, relayed to the browser as a SET_COOKIE frame.
    pub set_cookie: Option<String>,
    /// The web app could not be reached or answered 5xx: it surely did not act on the call,
    /// and the denial is hookbox's. An informational hook is worth trying again; a real denial,
    /// a bad reply or a timeout (the web app may have acted) is not.
    pub retryable: bool,
    /// No slot was free for the call (see `slots`): the client may try again in this many
    /// seconds.
    pub retry_after: Option<u32>,
}

impl Decision {
    /// A denial carrying `msg` as its `error` option.
    pub fn failure(msg: String) -> Decision {
        let mut options = Map::new();
        options.insert("error".to_owned(), Value::String(msg));
        Decision {
            success: false,
            options,
            set_cookie: None,
            retryable: false,
            retry_after: None,
        }
    }

    /// Parses a `200` body; a body that is no `[bool, {…}]` is a [`BadReply`].
    pub fn parse(body: &[u8], set_cookie: Option<String>) -> Result<Decision, BadReply> {
        let shape = |text: &str| BadReply {
            public: text.to_owned(),
            detail: text.to_owned(),
        };
        let value: Value = serde_json::from_slice(body).map_err(|_| BadReply {
            public: "Invalid json".to_owned(),
            detail: format!("Invalid json: {}", quote(body)),
        })?;
        let Value::Array(mut items) = value else {
            return Err(shape("Invalid response (expected json list of length 2)"));
        };
        if items.len() != 2 {
            return Err(shape("Invalid response (expected json list of length 2)"));
        }
        let Value::Object(options) = items.pop().expect("length checked") else {
            return Err(shape(
                "Invalid response (expected json object in response index 1)",
            ));
        };
        Ok(Decision {
            success: json_truthy(&items[0]),
            options,
            set_cookie,
            retryable: false,
            retry_after: None,
        })
    }

    /// The `msg` option of a reply, when it is text: what django-hookbox and other web apps of the
    /// 0.3.3 era put in a refusal (`[false, {"msg": …}]`).
    pub fn reply_msg(&self) -> Option<String> {
        self.options
            .get("msg")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// The message a client sees when this decision denies its action.
    pub fn error_msg(&self) -> String {
        match self.options.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "Unauthorized".to_owned(),
            Some(other) => crate::protocol::to_ascii_string(other),
        }
    }
}

/// Why a `200` reply is no decision: the text for clients (without the reply, which may show the
/// web app's internals) and the text for the log (quoting at most [`QUOTE_CHARS`] of it).
#[derive(Debug, Clone, PartialEq)]
pub struct BadReply {
    pub public: String,
    pub detail: String,
}

/// How much of a bad reply is quoted in logs and detailed errors.
pub const QUOTE_CHARS: usize = 1000;

/// `body` as text, cut to [`QUOTE_CHARS`] characters.
pub fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// Python truthiness of a JSON value.
pub fn json_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let d = Decision::parse(br#"[true, {"name": "a"}]"#, None).unwrap();
        assert!(d.success);
        assert_eq!(d.options["name"], "a");
        let bad = Decision::parse(b"nope", None).unwrap_err();
        assert_eq!(
            (bad.public.as_str(), bad.detail.as_str()),
            ("Invalid json", "Invalid json: nope")
        );
        assert_eq!(
            Decision::parse(b"[true]", None).unwrap_err().public,
            "Invalid response (expected json list of length 2)"
        );
        assert_eq!(
            Decision::parse(b"[true, 3]", None).unwrap_err().public,
            "Invalid response (expected json object in response index 1)"
        );
        let d = Decision::parse(b"[0, {}]", None).unwrap();
        assert!(!d.success);
        assert_eq!(d.error_msg(), "Unauthorized");
    }

    #[test]
    fn quotes_are_bounded() {
        let big = "x".repeat(5000);
        let bad = Decision::parse(big.as_bytes(), None).unwrap_err();
        assert_eq!(
            bad.detail.chars().count(),
            "Invalid json: ".len() + QUOTE_CHARS + 1
        );
    }
}
