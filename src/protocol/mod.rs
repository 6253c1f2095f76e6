//! RTJP, the "real-time JSON protocol" HookBox speaks over every transport.
//!
//! A frame is `[id, name, args]` followed by `\r\n`. This module is pure (no I/O): the decoder turns
//! inbound bytes into frames or per-frame errors, and [`OutFrame`] encodes a server frame once so
//! that it can be shared by every recipient. Frame ids are per connection, so an encoded frame is
//! stored without its id; the connection's outbox prefixes `[<id>` when it writes it.

mod client;
mod decode;
mod json;

pub use client::{
    ArgError, ClientFrame, FrameKind, Position, ResumeArg, MAX_EPOCH_LEN, MAX_TICKET_LEN,
};
pub use decode::{parse_frame, FrameDecoder, FrameError, FrameTooLarge, InFrame};
pub use json::{to_ascii_string, write_ascii};

use bytes::Bytes;
use serde_json::{Map, Value};

/// The frames a server sends, as metrics count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerFrame {
    Connected,
    Subscribe,
    Unsubscribe,
    Publish,
    StateUpdate,
    Message,
    Error,
    SetCookie,
    Other,
}

impl ServerFrame {
    pub const ALL: [ServerFrame; 9] = [
        ServerFrame::Connected,
        ServerFrame::Subscribe,
        ServerFrame::Unsubscribe,
        ServerFrame::Publish,
        ServerFrame::StateUpdate,
        ServerFrame::Message,
        ServerFrame::Error,
        ServerFrame::SetCookie,
        ServerFrame::Other,
    ];

    pub fn of(name: &str) -> ServerFrame {
        match name {
            "CONNECTED" => ServerFrame::Connected,
            "SUBSCRIBE" => ServerFrame::Subscribe,
            "UNSUBSCRIBE" => ServerFrame::Unsubscribe,
            "PUBLISH" => ServerFrame::Publish,
            "STATE_UPDATE" => ServerFrame::StateUpdate,
            "MESSAGE" => ServerFrame::Message,
            "ERROR" => ServerFrame::Error,
            "SET_COOKIE" => ServerFrame::SetCookie,
            _ => ServerFrame::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ServerFrame::Connected => "CONNECTED",
            ServerFrame::Subscribe => "SUBSCRIBE",
            ServerFrame::Unsubscribe => "UNSUBSCRIBE",
            ServerFrame::Publish => "PUBLISH",
            ServerFrame::StateUpdate => "STATE_UPDATE",
            ServerFrame::Message => "MESSAGE",
            ServerFrame::Error => "ERROR",
            ServerFrame::SetCookie => "SET_COOKIE",
            ServerFrame::Other => "other",
        }
    }

    /// Its position in [`ServerFrame::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A server frame encoded once, minus its leading `[<id>`: the bytes `, "NAME", {args}]\r\n`,
/// and which frame it is.
///
/// Cloning is one atomic increment, so a publication fans out without re-encoding.
///
/// A PUBLISH also carries its channel offset beside the shared bytes: the connections that asked
/// for positions get it spliced in as a last `offset` key when the frame is written, so the
/// original clients see the original frame and nobody's copy is encoded twice.
#[derive(Clone, Debug)]
pub struct OutFrame {
    tail: Bytes,
    kind: ServerFrame,
    /// The channel offset of the event (0: none, or not shown).
    offset: u64,
}

/// What writing an offset adds at most: `, "offset": ` and 20 digits.
const OFFSET_KEY_LEN: usize = 32;

impl OutFrame {
    /// Encodes a frame with the given name and arguments (ASCII-only, Python separators).
    pub fn new<A: serde::Serialize + ?Sized>(name: &str, args: &A) -> OutFrame {
        let mut out = Vec::with_capacity(64 + name.len());
        out.extend_from_slice(b", ");
        write_ascii(&mut out, name);
        out.extend_from_slice(b", ");
        write_ascii(&mut out, args);
        out.extend_from_slice(b"]\r\n");
        OutFrame {
            tail: Bytes::from(out),
            kind: ServerFrame::of(name),
            offset: 0,
        }
    }

    /// The frame marked with its channel offset, shown to connections that asked for positions.
    pub fn at_offset(mut self, offset: u64) -> OutFrame {
        self.offset = offset;
        self
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A frame encoded elsewhere (another node), from the bytes [`OutFrame::tail`] gave there:
    /// `, "NAME", …`.
    pub fn from_bytes(tail: Bytes) -> OutFrame {
        let name = tail
            .get(3..)
            .and_then(|rest| rest.iter().position(|b| *b == b'"').map(|end| &rest[..end]))
            .and_then(|name| std::str::from_utf8(name).ok())
            .map_or(ServerFrame::Other, ServerFrame::of);
        OutFrame {
            tail,
            kind: name,
            offset: 0,
        }
    }

    /// The encoded frame without its id, as shared between nodes.
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    pub fn kind(&self) -> ServerFrame {
        self.kind
    }

    /// The frame as text without its id and brackets: `"NAME", {args}`.
    pub fn text(&self) -> &str {
        let inner = self
            .tail
            .get(2..self.tail.len().saturating_sub(3))
            .unwrap_or_default();
        // The encoder writes ASCII only.
        std::str::from_utf8(inner).unwrap_or_default()
    }

    /// Size in bytes once written with an id (used for outbox byte budgets), for a connection
    /// that is shown offsets (`positions`) or not.
    pub fn wire_len(&self, positions: bool) -> usize {
        let offset = if positions && self.offset != 0 {
            OFFSET_KEY_LEN
        } else {
            0
        };
        self.tail.len() + 8 + offset
    }

    /// Writes the complete frame `[id, "NAME", {args}]\r\n` into `out`; with `positions`, an
    /// offset the frame carries is added as the args' last key, `"offset": N`.
    pub fn write_with_id(&self, id: u64, positions: bool, out: &mut Vec<u8>) {
        out.push(b'[');
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        let args_end = self.tail.len().saturating_sub(4);
        // Only into a non-empty object: `…}]\r\n` not preceded by `{`.
        if positions
            && self.offset != 0
            && self.tail.ends_with(b"}]\r\n")
            && self.tail.get(args_end.wrapping_sub(1)) != Some(&b'{')
        {
            out.extend_from_slice(&self.tail[..args_end]);
            out.extend_from_slice(b", \"offset\": ");
            out.extend_from_slice(itoa::Buffer::new().format(self.offset).as_bytes());
            out.extend_from_slice(b"}]\r\n");
        } else {
            out.extend_from_slice(&self.tail);
        }
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
    fn a_frame_from_another_node_knows_its_kind() {
        let f = OutFrame::new("STATE_UPDATE", &args([("a", json!(1))]));
        let copy = OutFrame::from_bytes(Bytes::copy_from_slice(f.tail()));
        assert_eq!(copy.kind(), ServerFrame::StateUpdate);
        assert_eq!(
            OutFrame::from_bytes(Bytes::from_static(b"junk")).kind(),
            ServerFrame::Other
        );
    }

    #[test]
    fn frame_with_id() {
        let f = OutFrame::new(
            "ERROR",
            &args([("id", json!(4)), ("msg", json!("Invalid json for payload"))]),
        );
        let mut out = Vec::new();
        f.write_with_id(5, false, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[5, \"ERROR\", {\"id\": 4, \"msg\": \"Invalid json for payload\"}]\r\n"
        );
    }

    #[test]
    fn an_offset_is_shown_only_to_connections_that_asked() {
        let f = OutFrame::new("PUBLISH", &args([("payload", json!(1))])).at_offset(7);
        let write = |positions| {
            let mut out = Vec::new();
            f.write_with_id(2, positions, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(write(false), "[2, \"PUBLISH\", {\"payload\": 1}]\r\n");
        assert_eq!(
            write(true),
            "[2, \"PUBLISH\", {\"payload\": 1, \"offset\": 7}]\r\n"
        );
        assert!(write(true).len() <= f.wire_len(true) + 1);
        assert!(write(false).len() <= f.wire_len(false) + 1);
        let empty = OutFrame::new("X", &Map::new()).at_offset(3);
        let mut out = Vec::new();
        empty.write_with_id(1, true, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "[1, \"X\", {}]\r\n");
    }
}
