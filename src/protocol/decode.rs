//! Splitting an inbound byte stream into RTJP frames.

use serde_json::{Map, Value};

/// A well-formed client frame.
#[derive(Debug, Clone, PartialEq)]
pub struct InFrame {
    pub id: i64,
    pub name: String,
    pub args: Map<String, Value>,
}

/// A malformed frame. The connection stays usable; the client gets an ERROR frame with
/// `id` (the frame id if one could be read) and `msg` (the exact text of the original server).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{msg}")]
pub struct FrameError {
    pub id: Option<i64>,
    pub msg: &'static str,
}

/// Buffers inbound bytes and yields one result per `\r\n`-terminated line.
///
/// The buffer is bounded by `max_pending`: a peer that sends that many bytes without a line end is
/// refused (see [`FrameDecoder::push`]) instead of growing memory without limit.
#[derive(Debug)]
pub struct FrameDecoder {
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no line end: a frame sent a byte at a time is
    /// scanned once overall, not once per byte.
    scanned: usize,
    max_pending: usize,
}

/// The peer sent more than the allowed bytes without finishing a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame larger than {0} bytes")]
pub struct FrameTooLarge(pub usize);

impl FrameDecoder {
    pub fn new(max_pending: usize) -> FrameDecoder {
        FrameDecoder {
            pending: Vec::new(),
            scanned: 0,
            max_pending,
        }
    }

    /// Adds bytes and returns every complete frame they finish, in order.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Result<InFrame, FrameError>>, FrameTooLarge> {
        self.pending.extend_from_slice(data);
        let mut frames = Vec::new();
        let mut start = 0;
        // Resume one byte early: a "\r" may end the previous push and its "\n" start this one.
        let mut from = self.scanned.saturating_sub(1);
        while let Some(pos) = find_crlf(&self.pending[from..]) {
            let end = from + pos;
            let line = &self.pending[start..end];
            // Blank lines (a stray CRLF between frames) carry no frame.
            if !line.iter().all(u8::is_ascii_whitespace) {
                frames.push(parse_frame(line));
            }
            start = end + 2;
            from = start;
        }
        self.pending.drain(..start);
        if self.pending.is_empty() {
            // Nothing left over (the usual case): an idle connection keeps no buffer.
            self.pending = Vec::new();
        }
        self.scanned = self.pending.len();
        if self.pending.len() > self.max_pending {
            self.pending = Vec::new();
            self.scanned = 0;
            return Err(FrameTooLarge(self.max_pending));
        }
        Ok(frames)
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

const fn err(id: Option<i64>, msg: &'static str) -> FrameError {
    FrameError { id, msg }
}

/// Parses one line into a frame, with the original server's error texts and checking order.
pub fn parse_frame(line: &[u8]) -> Result<InFrame, FrameError> {
    let value: Value = serde_json::from_slice(line).map_err(|_| err(None, "Invalid json"))?;
    let Value::Array(items) = value else {
        return Err(err(None, "Invalid frame (not a list)"));
    };
    let id = items.first().and_then(Value::as_i64);
    let [id_value, name, args]: [Value; 3] = items
        .try_into()
        .map_err(|_| err(id, "Invalid frame length"))?;
    let Some(id) = id_value.as_i64() else {
        return Err(err(None, "Invalid frame id (must be int)"));
    };
    let Value::String(name) = name else {
        return Err(err(Some(id), "Invalid frame name (must be string)"));
    };
    let Value::Object(args) = args else {
        return Err(err(
            Some(id),
            "Invalid frame keyword arguments (must be dictionary)",
        ));
    };
    Ok(InFrame { id, name, args })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<InFrame, FrameError> {
        parse_frame(line.as_bytes())
    }

    #[test]
    fn split_and_joined_frames() {
        let mut d = FrameDecoder::new(1024);
        assert!(d.push(b"[1, \"CONNECT\", {}]\r\n[2, \"SUB").unwrap().len() == 1);
        let rest = d.push(b"SCRIBE\", {\"channel_name\": \"a\"}]\r\n").unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].as_ref().unwrap().name, "SUBSCRIBE");
    }

    #[test]
    fn error_texts() {
        assert_eq!(one("nope").unwrap_err().msg, "Invalid json");
        assert_eq!(one("{}").unwrap_err().msg, "Invalid frame (not a list)");
        assert_eq!(
            one("[1, \"A\"]").unwrap_err(),
            err(Some(1), "Invalid frame length")
        );
        assert_eq!(
            one("[\"x\", \"A\", {}]").unwrap_err(),
            err(None, "Invalid frame id (must be int)")
        );
        assert_eq!(
            one("[3, 4, {}]").unwrap_err(),
            err(Some(3), "Invalid frame name (must be string)")
        );
        assert_eq!(
            one("[3, \"A\", []]").unwrap_err(),
            err(
                Some(3),
                "Invalid frame keyword arguments (must be dictionary)"
            )
        );
    }

    /// Arbitrary bytes, in arbitrary chunks, never panic; valid frames survive any split.
    #[test]
    fn random_input_and_random_splits() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"[]{}\",:0123456789-.eE \r\n\\u\xc3\xa9\xff\x00truefalsenull";
        for _ in 0..2000 {
            let len = rng.random_range(0..64);
            let data: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let mut d = FrameDecoder::new(256);
            for chunk in data.chunks(rng.random_range(1..8)) {
                let _ = d.push(chunk);
            }
        }
        let text =
            "[1, \"PUBLISH\", {\"channel_name\": \"a\", \"payload\": \"\\\"h\u{e9}\\\"\"}]\r\n"
                .repeat(3);
        for _ in 0..200 {
            let mut d = FrameDecoder::new(1024);
            let mut frames = Vec::new();
            let bytes = text.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let j = (i + rng.random_range(1..10)).min(bytes.len());
                frames.extend(d.push(&bytes[i..j]).unwrap());
                i = j;
            }
            assert_eq!(frames.len(), 3);
            assert!(frames
                .iter()
                .all(|f| f.as_ref().unwrap().args["payload"] == "\"h\u{e9}\""));
        }
    }

    #[test]
    fn oversized_pending_refused() {
        let mut d = FrameDecoder::new(8);
        assert_eq!(d.push(b"0123456789").unwrap_err(), FrameTooLarge(8));
    }
}
