//! RTJP, the "real-time JSON protocol" HookBox speaks over every transport.
//!
//! A frame is `[id, name, args]` followed by `\r\n`. This module is pure (no I/O): the decoder turns
//! inbound bytes into frames or per-frame errors, and [`OutFrame`] encodes a server frame's args
//! once so that it can be shared by every recipient and every transport. Frame ids are per
//! connection, so a frame is stored without its id; the connection's outbox numbers it when the
//! transport writes it.

mod client;
mod decode;
mod frame;
mod json;

pub use client::{
    ArgError, ClientFrame, FrameKind, Position, ResumeArg, MAX_EPOCH_LEN, MAX_TICKET_LEN,
};
pub use decode::{parse_frame, FrameDecoder, FrameError, FrameTooLarge, InFrame};
pub use frame::{args, About, OutFrame, Placed, ServerFrame};
pub use json::{to_ascii_string, write_ascii};
