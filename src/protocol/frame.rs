//! A server frame as every transport shares it: its name, its args encoded once, and what it is
//! about, typed. Each transport frames it in its own wire format when it writes it: RTJP as
//! `[id, "NAME", {args}]\r\n` (WebSocket, hixie, CSP), SSE as `event: NAME` + `data: {args}`.
//! Nothing about RTJP is in the frame itself, and no transport parses what the server encoded.

use super::json::write_ascii;
use serde_json::{Map, Value};
use std::sync::Arc;

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

/// What a frame is about, typed: what a transport needs beyond the encoded args (SSE keeps its
/// stream's positions with it), set by whoever builds the frame.
#[derive(Debug, Default, PartialEq)]
pub enum About {
    /// Nothing a transport needs (STATE_UPDATE, MESSAGE, SET_COOKIE, RESUME).
    #[default]
    Nothing,
    /// CONNECTED: the connection's user.
    Connected { user: Box<str> },
    /// An ERROR: the id of the client frame it answers (if that had one) and its text.
    Error { answers: Option<i64>, msg: Box<str> },
    /// A PUBLISH on `channel` (its offset is the frame's).
    Publish { channel: Box<str> },
    /// A SUBSCRIBE or UNSUBSCRIBE of `user` on `channel`. An own SUBSCRIBE that shows the
    /// channel's position carries it (boxed: most frames have none).
    Member {
        channel: Box<str>,
        user: Box<str>,
        position: Option<Box<Placed>>,
    },
}

/// The position an own SUBSCRIBE shows: the channel's epoch, the subscribe's offset, and
/// (answering a recovery) whether what the client missed follows.
#[derive(Debug, PartialEq)]
pub struct Placed {
    pub epoch: Box<str>,
    pub offset: u64,
    pub recovered: Option<bool>,
}

/// The part of a frame every recipient shares.
#[derive(Debug)]
struct Body {
    name: &'static str,
    kind: ServerFrame,
    /// The args object, encoded once (ASCII-only, Python separators).
    args: Box<[u8]>,
    about: About,
}

/// A server frame, shared by every recipient: cloning is one atomic increment, so a publication
/// fans out without re-encoding, and a queued frame is two words.
///
/// A PUBLISH also carries its channel offset beside the shared body: the connections that asked
/// for positions get it spliced in as a last `offset` key when the frame is written, so the
/// original clients see the original frame and nobody's copy is encoded twice.
#[derive(Clone, Debug)]
pub struct OutFrame {
    body: Arc<Body>,
    /// The channel offset of the event (0: none, or not shown).
    offset: u64,
}

/// What writing an offset adds at most: `, "offset": ` and 20 digits.
const OFFSET_KEY_LEN: usize = 32;

/// What RTJP adds to a frame's name and args: `[`, the id (counted as 8), `, "`, `", `, `]\r\n`.
const RTJP_FRAMING_LEN: usize = 17;

impl OutFrame {
    /// Encodes a frame that is about nothing a transport needs.
    pub fn new<A: serde::Serialize + ?Sized>(name: &'static str, args: &A) -> OutFrame {
        OutFrame::with(name, args, About::Nothing)
    }

    /// Encodes a frame with what it is about.
    pub fn with<A: serde::Serialize + ?Sized>(
        name: &'static str,
        args: &A,
        about: About,
    ) -> OutFrame {
        let mut out = Vec::with_capacity(64);
        write_ascii(&mut out, args);
        OutFrame::encoded(name, out.into(), about)
    }

    /// A frame whose args are already encoded (by this server's encoder, on this node or on
    /// another one).
    pub fn encoded(name: &'static str, args: Box<[u8]>, about: About) -> OutFrame {
        OutFrame {
            body: Arc::new(Body {
                name,
                kind: ServerFrame::of(name),
                args,
                about,
            }),
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

    pub fn name(&self) -> &'static str {
        self.body.name
    }

    pub fn kind(&self) -> ServerFrame {
        self.body.kind
    }

    pub fn about(&self) -> &About {
        &self.body.about
    }

    /// The args as encoded, without the offset (what travels between nodes).
    pub fn args(&self) -> &[u8] {
        &self.body.args
    }

    /// The frame as text without its id and brackets, `"NAME", {args}` (the console's view).
    pub fn text(&self) -> String {
        // The encoder writes ASCII only.
        format!(
            "\"{}\", {}",
            self.body.name,
            String::from_utf8_lossy(&self.body.args)
        )
    }

    /// Size in bytes once written as RTJP with an id (used for outbox byte budgets), for a
    /// connection that is shown offsets (`positions`) or not.
    pub fn wire_len(&self, positions: bool) -> usize {
        let offset = if positions && self.offset != 0 {
            OFFSET_KEY_LEN
        } else {
            0
        };
        self.body.name.len() + self.body.args.len() + RTJP_FRAMING_LEN + offset
    }

    /// Writes the args into `out`; with `positions`, an offset the frame carries is added as
    /// their last key, `"offset": N` (only into a non-empty object).
    pub fn write_args(&self, positions: bool, out: &mut Vec<u8>) {
        let args = &*self.body.args;
        match args.strip_suffix(b"}") {
            Some(open) if positions && self.offset != 0 && open != b"{" => {
                out.extend_from_slice(open);
                out.extend_from_slice(b", \"offset\": ");
                out.extend_from_slice(itoa::Buffer::new().format(self.offset).as_bytes());
                out.push(b'}');
            }
            _ => out.extend_from_slice(args),
        }
    }

    /// Writes the frame as RTJP, `[id, "NAME", {args}]\r\n`, into `out`.
    pub fn write_rtjp(&self, id: u64, positions: bool, out: &mut Vec<u8>) {
        out.push(b'[');
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        out.extend_from_slice(b", \"");
        out.extend_from_slice(self.body.name.as_bytes());
        out.extend_from_slice(b"\", ");
        self.write_args(positions, out);
        out.extend_from_slice(b"]\r\n");
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
        f.write_rtjp(5, false, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[5, \"ERROR\", {\"id\": 4, \"msg\": \"Invalid json for payload\"}]\r\n"
        );
        assert_eq!(f.kind(), ServerFrame::Error);
        assert_eq!(
            f.text(),
            "\"ERROR\", {\"id\": 4, \"msg\": \"Invalid json for payload\"}"
        );
    }

    #[test]
    fn an_offset_is_shown_only_to_connections_that_asked() {
        let f = OutFrame::new("PUBLISH", &args([("payload", json!(1))])).at_offset(7);
        let write = |positions| {
            let mut out = Vec::new();
            f.write_rtjp(2, positions, &mut out);
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
        empty.write_rtjp(1, true, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "[1, \"X\", {}]\r\n");
    }

    #[test]
    fn a_frame_is_two_words() {
        assert_eq!(std::mem::size_of::<OutFrame>(), 16);
        assert_eq!(std::mem::size_of::<Option<OutFrame>>(), 16);
    }
}
