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
        }
    }

    /// Parses a `200` body.
    pub fn parse(body: &[u8], set_cookie: Option<String>) -> Decision {
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                return Decision::failure(format!(
                    "Invalid json: {}",
                    String::from_utf8_lossy(body)
                ))
            }
        };
        let Value::Array(mut items) = value else {
            return Decision::failure(
                "Invalid response (expected json list of length 2)".to_owned(),
            );
        };
        if items.len() != 2 {
            return Decision::failure(
                "Invalid response (expected json list of length 2)".to_owned(),
            );
        }
        let Value::Object(options) = items.pop().expect("length checked") else {
            return Decision::failure(
                "Invalid response (expected json object in response index 1)".to_owned(),
            );
        };
        Decision {
            success: json_truthy(&items[0]),
            options,
            set_cookie,
        }
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
        let d = Decision::parse(br#"[true, {"name": "a"}]"#, None);
        assert!(d.success);
        assert_eq!(d.options["name"], "a");
        assert_eq!(
            Decision::parse(b"nope", None).error_msg(),
            "Invalid json: nope"
        );
        assert_eq!(
            Decision::parse(b"[true]", None).error_msg(),
            "Invalid response (expected json list of length 2)"
        );
        assert_eq!(
            Decision::parse(b"[true, 3]", None).error_msg(),
            "Invalid response (expected json object in response index 1)"
        );
        let d = Decision::parse(b"[0, {}]", None);
        assert!(!d.success);
        assert_eq!(d.error_msg(), "Unauthorized");
    }
}
