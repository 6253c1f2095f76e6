//! CSP wire pieces that need no I/O: sticky session variables, packet encoding and decoding,
//! response bodies.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

/// The per-session sticky variables a request may update (§3.2). Invalid values are ignored.
#[derive(Debug, Clone)]
pub struct Vars {
    /// Prefix/suffix around request responses (handshake, send, close): JSONP wrapping.
    pub rp: String,
    pub rs: String,
    /// Prefix/suffix around comet batches.
    pub bp: String,
    pub bs: String,
    /// Long-poll duration requested by the client (capped by the server's poll timeout).
    pub du: f64,
    pub ct: &'static str,
    pub p: String,
    pub ps: usize,
    pub se: bool,
}

impl Default for Vars {
    fn default() -> Self {
        Vars {
            rp: String::new(),
            rs: String::new(),
            bp: String::new(),
            bs: String::new(),
            du: 30.0,
            ct: "text/html",
            p: String::new(),
            ps: 0,
            se: false,
        }
    }
}

/// Content types a client may ask for; anything else is ignored (the body reflects `rp`/`bp`,
/// so arbitrary types would be a cross-site scripting vector).
const CONTENT_TYPES: [&str; 6] = [
    "text/html",
    "text/plain",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "application/json",
];

/// Most padding spaces a client may ask for before each comet response.
const MAX_PADDING: usize = 4096;

/// JSONP prefixes (`rp`, `bp`) are reflected in front of a call: only a dotted identifier such
/// as `cb1` or `parent.hookbox.cb2` is accepted, so a response is at most a call of some function
/// with the server's JSON (never an attacker's script on hookbox's origin).
fn safe_prefix(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 128
            && v.split('.').all(|part| {
                let mut bytes = part.bytes();
                bytes
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
                    && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
            }))
}

/// JSONP suffixes (`rs`, `bs`): what the js.io client sends, `;`, or nothing.
fn safe_suffix(v: &str) -> bool {
    matches!(v, "" | ";")
}

/// The prebuffer `p`: letters, digits and spaces (it stands right before `bp`).
fn safe_prebuffer(v: &str) -> bool {
    v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
}

impl Vars {
    /// Applies the variables present in a request form.
    pub fn update(&mut self, get: impl Fn(&str) -> Option<String>) {
        type Check<'a> = (&'a str, &'a mut String, fn(&str) -> bool);
        let checks: [Check; 5] = [
            ("rp", &mut self.rp, safe_prefix),
            ("rs", &mut self.rs, safe_suffix),
            ("bp", &mut self.bp, safe_prefix),
            ("bs", &mut self.bs, safe_suffix),
            ("p", &mut self.p, safe_prebuffer),
        ];
        for (key, slot, safe) in checks {
            if let Some(v) = get(key).filter(|v| safe(v)) {
                *slot = v;
            }
        }
        if let Some(du) = get("du")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0)
        {
            self.du = du;
        }
        if let Some(ct) = get("ct").and_then(|v| CONTENT_TYPES.iter().find(|c| **c == v)) {
            self.ct = ct;
        }
        if let Some(ps) = get("ps")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|p| *p <= MAX_PADDING)
        {
            self.ps = ps;
        }
        if let Some(se) = get("se").and_then(|v| v.parse::<u8>().ok()) {
            self.se = se == 1;
        }
    }

    /// `rp(json)rs`: the body of handshake, send and close responses.
    pub fn request_body(&self, json: &str) -> String {
        format!("{}({json}){}", self.rp, self.rs)
    }

    /// What goes before and after the packets of a comet response carrying `count` packets, the
    /// last numbered `last_id`: `<padding><p><bp>([` and `])<bs>[SSE suffix]`. The packets go
    /// in between, separated by `, `.
    pub fn comet_frame(&self, count: usize, last_id: u64) -> (String, String) {
        let mut head = " ".repeat(self.ps);
        head.push_str(&self.p);
        head.push_str(&self.bp);
        head.push_str("([");
        let mut tail = String::from("])");
        tail.push_str(&self.bs);
        if self.se {
            if count == 0 {
                tail.push_str("\r\n");
            } else {
                tail.push_str(&format!("id: {last_id}\r\n\r\n"));
            }
        }
        (head, tail)
    }

    /// A comet response without packets.
    pub fn empty_batch(&self) -> String {
        let (head, tail) = self.comet_frame(0, 0);
        head + &tail
    }
}

/// A server packet carrying one RTJP frame: `[id, 1, "<URL-safe base64>"]`.
pub fn encode_packet(id: u64, frame: &[u8]) -> Bytes {
    Bytes::from(format!("[{id}, 1, \"{}\"]", URL_SAFE.encode(frame)))
}

/// The server's close packet.
pub fn close_packet(id: u64) -> Bytes {
    Bytes::from(format!("[{id}, 0, null]"))
}

/// A decoded client packet.
#[derive(Debug, PartialEq)]
pub enum ClientPacket {
    Data(Vec<u8>),
    /// `data: null`: the client closes the session.
    Close,
}

/// Why a `send` request was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PacketError {
    #[error("Invalid packet list (expected a JSON list of [id, encoding, data])")]
    NotAList,
    #[error("Invalid packet {0}")]
    BadPacket(usize),
    #[error("Invalid base64 in packet {0}")]
    BadBase64(u64),
    #[error("Packet id {got} out of order (expected {expected})")]
    OutOfOrder { got: u64, expected: u64 },
}

/// Parses a `send` body into `(id, packet)` pairs newer than `last_id`, checking that they
/// continue the sequence without gaps. Packets already received (id ≤ `last_id`) are skipped.
pub fn decode_packets(d: &str, last_id: u64) -> Result<Vec<(u64, ClientPacket)>, PacketError> {
    let value: Value = serde_json::from_str(d).map_err(|_| PacketError::NotAList)?;
    let Value::Array(items) = value else {
        return Err(PacketError::NotAList);
    };
    let mut out = Vec::new();
    let mut expected = last_id.saturating_add(1);
    for (i, item) in items.iter().enumerate() {
        let Some([id, enc, data]) = item
            .as_array()
            .and_then(|a| <&[Value; 3]>::try_from(a.as_slice()).ok())
        else {
            return Err(PacketError::BadPacket(i));
        };
        let id = id.as_u64().ok_or(PacketError::BadPacket(i))?;
        if id < expected {
            continue; // a re-sent packet we already have
        }
        if id != expected {
            return Err(PacketError::OutOfOrder { got: id, expected });
        }
        expected = expected.saturating_add(1);
        let packet = match (enc.as_u64(), data) {
            (_, Value::Null) => ClientPacket::Close,
            (Some(0), Value::String(s)) => ClientPacket::Data(s.as_bytes().to_vec()),
            (Some(1), Value::String(s)) => {
                ClientPacket::Data(decode_base64(s).ok_or(PacketError::BadBase64(id))?)
            }
            _ => return Err(PacketError::BadPacket(i)),
        };
        out.push((id, packet));
    }
    Ok(out)
}

/// URL-safe base64 with or without padding (standard-alphabet input is accepted too).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let cleaned: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(cleaned).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_skip_duplicates() {
        let frame = b"[1, \"CONNECT\", {}]\r\n";
        let encoded = URL_SAFE_NO_PAD.encode(frame);
        let d = format!("[[1, 1, \"{encoded}\"], [2, 0, \"x\"], [3, 0, null]]");
        let got = decode_packets(&d, 1).unwrap();
        assert_eq!(
            got,
            vec![
                (2, ClientPacket::Data(b"x".to_vec())),
                (3, ClientPacket::Close)
            ]
        );
        assert_eq!(
            decode_packets("[[5, 0, \"x\"]]", 1).unwrap_err(),
            PacketError::OutOfOrder {
                got: 5,
                expected: 2
            }
        );
        assert_eq!(
            decode_packets("[[1, 1, \"!!\"]]", 0).unwrap_err(),
            PacketError::BadBase64(1)
        );
        assert_eq!(decode_packets("{}", 0).unwrap_err(), PacketError::NotAList);
    }

    /// Arbitrary packet lists never panic, whatever the last id.
    #[test]
    fn random_packet_lists_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let pieces = [
            "[",
            "]",
            ",",
            "0",
            "1",
            "2",
            "18446744073709551615",
            "-1",
            "null",
            "\"",
            "\"QQ==\"",
            "\"_-\"",
            "{}",
            "1.5",
        ];
        for _ in 0..5000 {
            let d: String = (0..rng.random_range(0..16))
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            let _ = decode_packets(&d, rng.random_range(0..3));
        }
        assert!(decode_packets("[[18446744073709551615, 0, \"x\"]]", u64::MAX - 1).is_ok());
    }

    #[test]
    fn vars_ignore_unsafe_values() {
        let mut v = Vars::default();
        v.update(|k| match k {
            "rp" => Some("cb1".into()),
            "rs" => Some(";".into()),
            "bp" => Some("<script>".into()),
            "ct" => Some("text/evil".into()),
            "du" => Some("5".into()),
            _ => None,
        });
        assert_eq!(
            (v.rp.as_str(), v.rs.as_str(), v.bp.as_str(), v.ct, v.du),
            ("cb1", ";", "", "text/html", 5.0)
        );
        assert_eq!(v.request_body("\"OK\""), "cb1(\"OK\");");
        assert_eq!(v.empty_batch(), "([])");
    }

    #[test]
    fn jsonp_wrappers_are_identifiers_and_semicolons_only() {
        for (rp, ok) in [
            ("cb12", true),
            ("parent.hookbox._cb$", true),
            ("eval(name);x", false),
            ("a..b", false),
            ("1cb", false),
            ("cb.", false),
            ("x=1", false),
        ] {
            assert_eq!(safe_prefix(rp), ok, "{rp}");
        }
        assert!(safe_suffix(";") && safe_suffix(""));
        assert!(!safe_suffix(";alert(1)") && !safe_suffix(")"));
        assert!(safe_prebuffer("pre  ") && !safe_prebuffer("a;b") && !safe_prebuffer("a.b"));
    }
}
