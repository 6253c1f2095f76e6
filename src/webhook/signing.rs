//! How a webhook request proves it came from hookbox, with `--webhook-secret`:
//!
//! - `X-Hookbox-Signature: sha256=<hex HMAC-SHA256(secret, body)>` on every request (hookbox's
//!   own scheme, kept for the apps that check it), and the form field `secret` (the original's);
//! - with a secret of the form `whsec_<base64>`, also the Standard Webhooks headers
//!   (standardwebhooks.com): `webhook-id` (one per call, the same on each retry of it, so that
//!   the app can drop duplicates), `webhook-timestamp` (Unix seconds) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, the key being
//!   the base64 after the prefix. The `standardwebhooks` libraries verify them unchanged.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};

/// The header of hookbox's own scheme.
pub const SIGNATURE_HEADER: &str = "x-hookbox-signature";
/// The prefix of a Standard Webhooks secret.
pub const STANDARD_PREFIX: &str = "whsec_";

/// `sha256=<hex HMAC-SHA256 of body keyed by secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::from("sha256=");
    for b in mac(secret.as_bytes(), &[body]) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length works");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The key of a Standard Webhooks secret (`whsec_<base64>`); `None` for another secret;
/// an error for a `whsec_` secret whose rest is not base64.
pub fn standard_key(secret: &str) -> Result<Option<Vec<u8>>, &'static str> {
    let Some(encoded) = secret.strip_prefix(STANDARD_PREFIX) else {
        return Ok(None);
    };
    match STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(Some(key)),
        _ => {
            Err("a whsec_ secret must be base64 after its prefix (as standardwebhooks makes them)")
        }
    }
}

/// A fresh message id for `webhook-id`.
pub fn message_id() -> String {
    format!("msg_{:032x}", rand::random::<u128>())
}

/// The Standard Webhooks headers of one request: `(name, value)` pairs.
pub fn standard_headers(
    key: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let timestamp = timestamp.to_string();
    let tag = mac(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", format!("v1,{}", STANDARD.encode(tag))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification, signed as its libraries do.
    #[test]
    fn standard_signatures_match_the_specification() {
        let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()
            .unwrap();
        let [(_, id), (_, ts), (_, sig)] = standard_headers(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            (id.as_str(), ts.as_str()),
            ("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330")
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_that_are_not_standard_keep_hookboxs_scheme_only() {
        assert_eq!(standard_key("plain secret"), Ok(None));
        assert!(standard_key("whsec_not base64!").is_err());
        assert!(standard_key("whsec_").is_err());
        assert_eq!(
            signature("s", b"action=connect"),
            "sha256=23768322bdf7c3ae364493ff7f06fac2ac757c123e25317d411bd5c9a57bb29b"
        );
    }
}
