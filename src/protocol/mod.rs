//! RTJP, the "real-time JSON protocol" HookBox speaks over every transport.
//!
//! A frame is `[id, name, args]` followed by `\r\n`. This module is pure (no I/O): the decoder turns
//! inbound bytes into frames or per-frame errors, and [`OutFrame`] encodes a server frame once so
//! that it can be shared by every recipient. Frame ids are per connection, so an encoded frame is
//! stored without its id; the connection's outbox prefixes `[<id>` when it writes it.

mod client;
mod decode;
mod json;

pub use client::{ArgError, ClientFrame, FrameKind};
pub use decode::{FrameDecoder, FrameError, FrameTooLarge, InFrame};
pub use json::{to_ascii_string, write_ascii};

use bytes::Bytes;
use serde_json::{Map, Value};

/// A server frame encoded once, minus its leading `[<id>`: the bytes `, "NAME", {args}]\r\n`.
///
/// Cloning is one atomic increment, so a publication fans out without re-encoding.
#[derive(Clone, Debug)]
pub struct OutFrame(Bytes);

impl OutFrame {
    /// Encodes a frame with the given name and arguments (ASCII-only, Python separators).
    pub fn new<A: serde::Serialize + ?Sized>(name: &str, args: &A) -> OutFrame {
        let mut out = Vec::with_capacity(64 + name.len());
        out.extend_from_slice(b", ");
        write_ascii(&mut out, name);
        out.extend_from_slice(b", ");
        write_ascii(&mut out, args);
        out.extend_from_slice(b"]\r\n");
        OutFrame(Bytes::from(out))
    }

    /// A frame encoded elsewhere (another node), from the bytes [`OutFrame::tail`] gave there.
    pub fn from_bytes(tail: Bytes) -> OutFrame {
        OutFrame(tail)
    }

    /// The encoded frame without its id, as shared between nodes.
    pub fn tail(&self) -> &[u8] {
        &self.0
    }

    /// Size in bytes once written with an id (used for outbox byte budgets).
    pub fn wire_len(&self) -> usize {
        self.0.len() + 8
    }

    /// Writes the complete frame `[id, "NAME", {args}]\r\n` into `out`.
    pub fn write_with_id(&self, id: u64, out: &mut Vec<u8>) {
        out.push(b'[');
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        out.extend_from_slice(&self.0);
    }
}

/// Builds an args object from `(key, value)` pairs, keeping their order.
pub fn args<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frame_with_id() {
        let f = OutFrame::new(
            "ERROR",
            &args([("id", json!(4)), ("msg", json!("Invalid json for payload"))]),
        );
        let mut out = Vec::new();
        f.write_with_id(5, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[5, \"ERROR\", {\"id\": 4, \"msg\": \"Invalid json for payload\"}]\r\n"
        );
    }
}
