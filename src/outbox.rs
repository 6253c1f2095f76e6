//! A connection's outgoing queue: byte-bounded, never blocking the producer. It sits below both
//! the hub (which fills it) and the transports (which drain it), so neither depends on the other.
//!
//! Fan-out pushes encoded frames here synchronously while holding a channel lock, so a push must
//! never wait. Instead every outbox has a byte budget: a subscriber that falls that far behind is
//! closed with a reason rather than slowing everyone else down or growing memory without limit.
//! The transport's writer task drains everything queued at once and writes it as one message.

use crate::protocol::{OutFrame, ServerFrame};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Why an outbox stopped accepting frames; the transport reports it to the peer when closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer did not read fast enough and its queue passed the byte budget.
    Overflow { limit: usize },
    /// The web application asked for this user to be disconnected (`/web/disconnect`).
    Kicked,
    /// The server is shutting down.
    Shutdown,
    /// The peer sent a message larger than the configured limit.
    MessageTooLarge { limit: usize },
    /// The session ended (a CSP client's close, or its idle expiry).
    Closed,
    /// The web application refused this many CONNECTs on the connection.
    TooManyFailedConnects { limit: u32 },
    /// The engine could not take the connection in, or lost its state (a Redis that restarted
    /// empty, a node the others gave up for dead): the client must connect again.
    Unavailable,
    /// The connection sent no CONNECT within `--connect-timeout`.
    ConnectTimeout { after: std::time::Duration },
    /// The client's address had too many CONNECTs refused lately
    /// (`--max-failed-connects-per-ip`): it may try again in `wait_secs` (whole seconds keep
    /// this enum, in every outbox, as small as before).
    Throttled { wait_secs: u32 },
}

impl CloseReason {
    /// Human-readable reason, sent in WebSocket close frames.
    pub fn text(&self) -> String {
        match self {
            CloseReason::Overflow { limit } => {
                format!("outbox overflow: client fell more than {limit} bytes behind")
            }
            CloseReason::Kicked => "disconnected by the web application".to_owned(),
            CloseReason::Shutdown => "server shutting down".to_owned(),
            CloseReason::MessageTooLarge { limit } => format!("message larger than {limit} bytes"),
            CloseReason::Closed => "session closed".to_owned(),
            CloseReason::TooManyFailedConnects { limit } => {
                format!("{limit} refused CONNECTs on this connection")
            }
            CloseReason::Unavailable => {
                "the server's shared state is unavailable: connect again".to_owned()
            }
            CloseReason::ConnectTimeout { after } => {
                format!("no CONNECT within {} s", after.as_secs_f64())
            }
            CloseReason::Throttled { wait_secs } => {
                format!("too many refused CONNECTs from this address: try again in {wait_secs} s")
            }
        }
    }
}

/// The frames waiting for the writer, in order. The first is held inline: most drains take a
/// single frame (a delivery), which then needs no room of its own, and an idle connection keeps
/// none (a queue's kept room was 192 bytes of every idle connection). Frames that come while
/// one waits go to `more`, whose room is given back at each drain: one allocation for a write
/// of several frames.
#[derive(Debug, Default)]
struct Pending {
    /// Set whenever `more` is not empty.
    first: Option<OutFrame>,
    more: Vec<OutFrame>,
}

impl Pending {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    fn push(&mut self, frame: OutFrame) {
        if self.first.is_none() {
            self.first = Some(frame);
        } else {
            self.more.push(frame);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &OutFrame> {
        self.first.iter().chain(&self.more)
    }

    fn into_vec(self) -> Vec<OutFrame> {
        let mut all = self.more;
        if let Some(first) = self.first {
            all.insert(0, first);
        }
        all
    }
}

#[derive(Debug, Default)]
struct Inner {
    queue: Pending,
    bytes: usize,
    /// Bytes the transport still holds after draining them (CSP keeps packets until they are
    /// acknowledged). They count against the same budget as the queue.
    held: usize,
    next_id: u64,
    closed: Option<CloseReason>,
    /// The client asked for channel positions (CONNECT `recovery`): PUBLISH frames are written
    /// with their offsets.
    positions: bool,
}

impl Inner {
    fn used(&self) -> usize {
        self.bytes + self.held
    }
}

/// A point in an outbox's stream of frames: every frame pushed before it, once the writer has
/// taken it, is [`Outbox::taken`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(u64);

/// What a drain produced: frames to write (already numbered) and whether to close afterwards.
#[derive(Debug, Default)]
pub struct Drained {
    pub data: Vec<u8>,
    pub frames: usize,
    pub close: Option<CloseReason>,
}

/// What a drain of frames produced: the frames in order, whether the connection is shown
/// offsets, and whether to close afterwards.
#[derive(Debug, Default)]
pub struct DrainedFrames {
    pub frames: Vec<OutFrame>,
    pub positions: bool,
    pub close: Option<CloseReason>,
}

/// What `Outbox::take` took.
struct Taken {
    queue: Pending,
    first_id: u64,
    /// What the queue counted against the budget: about what RTJP writes of it.
    bytes: usize,
    positions: bool,
    close: Option<CloseReason>,
}

#[derive(Debug)]
pub struct Outbox {
    // A plain mutex: every critical section is a few pointer moves, and it is never held across
    // an await point.
    inner: Mutex<Inner>,
    notify: Notify,
    /// Wakes every task waiting in `closed` when the outbox closes, without consuming the
    /// writer's wake-ups. Inline (a cancellation token was one more allocation per connection).
    closed_signal: Notify,
    limit: usize,
}

impl Outbox {
    pub fn new(limit: usize) -> Outbox {
        Outbox {
            inner: Mutex::new(Inner {
                next_id: 1,
                ..Inner::default()
            }),
            notify: Notify::new(),
            closed_signal: Notify::new(),
            limit,
        }
    }

    /// Queues a frame. Returns false if the outbox is closed (the frame is dropped) — including
    /// when this push is the one that passed the byte budget. Every frame counts, a client's
    /// own (its SUBSCRIBE with history, a recovery's replay) included: those are sized to fit
    /// the room left (see `engine::frames`), and a client that asks for more of them than it
    /// reads is closed like any other that falls behind.
    pub fn push(&self, frame: &OutFrame) -> bool {
        let mut inner = self.inner.lock();
        if inner.closed.is_some() {
            return false;
        }
        // A single frame larger than the budget still goes out when nothing else is pending.
        let len = frame.wire_len(inner.positions);
        if inner.used() > 0 && inner.used() + len > self.limit {
            inner.closed = Some(CloseReason::Overflow { limit: self.limit });
            inner.queue = Pending::default();
            inner.bytes = 0;
            drop(inner);
            crate::metrics::slow_consumer_closed();
            self.notify.notify_one();
            self.closed_signal.notify_waiters();
            return false;
        }
        inner.bytes += len;
        inner.queue.push(frame.clone());
        drop(inner);
        // `notify_one` stores a permit when the writer is busy, so no wake-up is lost.
        self.notify.notify_one();
        true
    }

    /// The point after the last frame queued so far.
    pub fn mark(&self) -> Mark {
        let inner = self.inner.lock();
        Mark(inner.next_id + inner.queue.len() as u64)
    }

    /// Whether the writer has taken every frame queued before `mark`.
    pub fn taken(&self, mark: Mark) -> bool {
        self.inner.lock().next_id >= mark.0
    }

    /// From now on, frames are written with their channel offsets (see [`OutFrame::offset`]).
    pub fn show_positions(&self) {
        self.inner.lock().positions = true;
    }

    pub fn shows_positions(&self) -> bool {
        self.inner.lock().positions
    }

    /// Bytes that can still be queued before the budget is reached.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.inner.lock().used())
    }

    /// Records how many bytes the transport holds after draining (see `Inner::held`).
    pub fn set_held(&self, bytes: usize) {
        self.inner.lock().held = bytes;
    }

    /// Stops accepting frames; the writer flushes what is queued, then closes with `reason`.
    /// The first reason wins.
    pub fn close(&self, reason: CloseReason) {
        let mut inner = self.inner.lock();
        if inner.closed.is_none() {
            inner.closed = Some(reason);
        }
        drop(inner);
        self.notify.notify_one();
        self.closed_signal.notify_waiters();
    }

    /// Resolves once the outbox is closed, for whatever reason.
    pub async fn closed(&self) {
        let closing = self.closed_signal.notified();
        tokio::pin!(closing);
        // Registered before the check: a close between the two still wakes it.
        closing.as_mut().enable();
        if !self.is_closed() {
            closing.await;
        }
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed.is_some()
    }

    /// Whether the web application closed it (`/web/disconnect`).
    pub fn kicked(&self) -> bool {
        matches!(self.inner.lock().closed, Some(CloseReason::Kicked))
    }

    /// Takes everything queued (out of the lock: the writing is the transport's).
    fn take(&self) -> Taken {
        let mut inner = self.inner.lock();
        let queue = std::mem::take(&mut inner.queue);
        let first_id = inner.next_id;
        inner.next_id += queue.len() as u64;
        Taken {
            queue,
            first_id,
            bytes: std::mem::take(&mut inner.bytes),
            positions: inner.positions,
            close: inner.closed.clone(),
        }
    }

    /// Takes everything queued, written as RTJP frames numbered in order. Empty when nothing is
    /// pending. What it hands over is counted (frames by name, bytes), once per drain.
    pub fn drain(&self) -> Drained {
        let taken = self.take();
        let mut out = Drained {
            data: Vec::new(),
            frames: taken.queue.len(),
            close: taken.close,
        };
        if out.frames == 0 {
            return out;
        }
        let mut by_kind = [0u32; ServerFrame::ALL.len()];
        out.data.reserve_exact(taken.bytes);
        for (id, frame) in (taken.first_id..).zip(taken.queue.iter()) {
            frame.write_rtjp(id, taken.positions, &mut out.data);
            by_kind[frame.kind().index()] += 1;
        }
        crate::metrics::drained(&by_kind, out.data.len());
        out
    }

    /// Takes everything queued as frames, for a transport that frames them itself (SSE). They
    /// are counted by name; the transport counts the bytes it writes.
    pub fn drain_frames(&self) -> DrainedFrames {
        let taken = self.take();
        let mut by_kind = [0u32; ServerFrame::ALL.len()];
        let frames: Vec<OutFrame> = taken.queue.into_vec();
        for frame in &frames {
            by_kind[frame.kind().index()] += 1;
        }
        if !frames.is_empty() {
            crate::metrics::drained(&by_kind, 0);
        }
        DrainedFrames {
            frames,
            positions: taken.positions,
            close: taken.close,
        }
    }

    /// Waits until frames are queued or the outbox is closed.
    pub async fn ready(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::args;
    use serde_json::json;

    #[test]
    fn numbers_frames_in_order_across_drains() {
        let ob = Outbox::new(1 << 20);
        let f = OutFrame::new("X", &args([("a", json!(1))]));
        ob.push(&f);
        ob.push(&f);
        let d = ob.drain();
        assert_eq!(d.frames, 2);
        assert!(String::from_utf8(d.data).unwrap().starts_with("[1, \"X\""));
        ob.push(&f);
        assert!(String::from_utf8(ob.drain().data)
            .unwrap()
            .starts_with("[3, \"X\""));
    }

    #[test]
    fn the_inline_first_frame_and_those_after_it_drain_in_order() {
        let ob = Outbox::new(1 << 20);
        let frame = |n: &'static str| OutFrame::new(n, &args([("a", json!(1))]));
        for name in ["A", "B", "C"] {
            ob.push(&frame(name));
        }
        let text = String::from_utf8(ob.drain().data).unwrap();
        let names: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(names.len(), 3, "{text}");
        for (i, (line, name)) in names.iter().zip(["A", "B", "C"]).enumerate() {
            assert!(
                line.starts_with(&format!("[{}, \"{name}\"", i + 1)),
                "{text}"
            );
        }
        ob.push(&frame("D"));
        assert_eq!(ob.mark(), Mark(5));
        assert!(String::from_utf8(ob.drain().data)
            .unwrap()
            .starts_with("[4, \"D\""));
    }

    #[test]
    fn one_frame_larger_than_the_budget_still_goes_out_alone() {
        let big = OutFrame::new("X", &args([("a", json!("x".repeat(1000)))]));
        let ob = Outbox::new(250);
        assert!(ob.push(&big));
        assert!(!ob.push(&big), "a second one overflows");
        assert_eq!(ob.drain().close, Some(CloseReason::Overflow { limit: 250 }));
    }

    #[test]
    fn marks_tell_when_frames_were_taken() {
        let ob = Outbox::new(1 << 20);
        let f = OutFrame::new("X", &args([("a", json!(1))]));
        let start = ob.mark();
        assert!(ob.taken(start), "nothing queued before it");
        ob.push(&f);
        ob.push(&f);
        let after = ob.mark();
        assert!(!ob.taken(after));
        ob.drain();
        assert!(ob.taken(after));
        ob.push(&f);
        assert!(ob.taken(after) && !ob.taken(ob.mark()));
    }

    #[test]
    fn overflow_closes() {
        let f = OutFrame::new("X", &args([("a", json!("x".repeat(100)))]));
        let ob = Outbox::new(250);
        assert!(ob.push(&f));
        assert!(ob.push(&f) || ob.is_closed());
        assert!(!ob.push(&f));
        assert_eq!(ob.drain().close, Some(CloseReason::Overflow { limit: 250 }));
    }
}
