//! The connection driver every socket transport shares (RFC 6455 WebSocket, hixie-75): one task
//! per connection reads the client's messages (handled one after another), drains the outbox
//! into the socket, pings, enforces `--connect-timeout`, stops at shutdown and runs the close
//! handling. A transport brings only its framing, as a [`Wire`].
//!
//! One task rather than a reader and a writer: no second task cell and no lock splitting the
//! socket (measured: about 0.2 KB per idle WebSocket, see docs/BENCHMARKS.md). The handling of a
//! client's message may wait on webhooks for seconds, so it runs as a future of its own, polled
//! beside the socket: deliveries and pings go on meanwhile, and the client's next message is
//! read only once it is done (frames are handled in order; a client that keeps sending gets TCP
//! backpressure).

use super::quota::Slot;
use super::Shared;
use crate::metrics::OpenConnection;
use crate::net::Transport;
use crate::outbox::{CloseReason, Drained, Outbox};
use crate::protocol::FrameTooLarge;
use crate::session::{Peer, Session, Stage};
use axum::body::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Sleep;

/// What a wire read from its client.
pub(super) enum Inbound {
    /// One message: RTJP bytes (one or more frames, or part of one).
    Message(Bytes),
    /// A message over the most the wire reads: the connection closes.
    TooLarge,
    /// The client closed, or the socket failed.
    Closed,
}

/// A socket transport's framing, as the driver uses it. Each method is awaited by the driver's
/// one task; `next` must be cancel-safe (the driver drops it to write or ping).
pub(super) trait Wire: Send {
    /// The client's next message (control messages are the wire's own business).
    fn next(&mut self) -> impl Future<Output = Inbound> + Send;
    /// Writes what the outbox gave, then the close if it carries one. False once the socket
    /// takes no more: the close is written, or a write failed.
    fn write(&mut self, drained: Drained) -> impl Future<Output = bool> + Send;
    /// Sends a ping (only called with a ping interval); false if the write failed.
    fn ping(&mut self) -> impl Future<Output = bool> + Send;
    /// The client completed CONNECT.
    fn connected(&mut self) {}
    /// Ends the socket, after the last write.
    fn shut(self) -> impl Future<Output = ()> + Send;
}

/// What a message's handling gives back: the session (moved into the handling, so that the
/// task can write and ping while a webhook is awaited) and its result.
type Handled = (Session, Result<(), FrameTooLarge>);

/// A message's handling in progress: it owns the session while it runs.
type Handling = Pin<Box<dyn Future<Output = Handled> + Send>>;

/// Runs a connection on `wire` to its end, close handling included. `ping_every`: `None` for a
/// wire without pings (hixie-75).
///
/// Not an `async fn`: that keeps room for its arguments beside the locals they move into (456
/// bytes a connection, by `-Zprint-type-sizes`); an async block uses what it captures in place.
#[allow(clippy::manual_async_fn)]
pub(super) fn run<W: Wire>(
    app: Arc<Shared>,
    mut wire: W,
    transport: Transport,
    client: Peer,
    slot: Slot,
    ping_every: Option<Duration>,
) -> impl Future<Output = ()> + Send {
    async move {
        let _open = OpenConnection::new(transport);
        let limit = app.limits.max_message;
        let coalesce = app.limits.write_coalesce;
        let outbox = Arc::new(Outbox::new(app.limits.outbox_bytes));
        let session = Session::new(
            app.hub.clone(),
            transport,
            client,
            outbox.clone(),
            app.limits.session,
        );
        let progress = session.progress();
        // `None` while a message's handling holds it.
        let mut session = Some(session);
        let mut handling: Option<Handling> = None;
        let mut connect_by = Some(ConnectDeadline::new(app.limits.connect_timeout));
        // The ping timer is held inline, not boxed as `PingTimer` does: the task's state has
        // room for it below the next size its allocation would round up to (measured), so it
        // saves a 112-byte allocation per connection.
        let ping = tokio::time::sleep(ping_every.unwrap_or(Duration::from_secs(86_400)));
        tokio::pin!(ping);
        // Whether the socket can still be written: the close goes out once, and nothing after a
        // failed write.
        let mut writable = true;

        // Shutdown reaches the writing through the outbox, like every other close.
        let mut stopping = false;
        loop {
            if connect_by.is_some() && progress.stage() != Stage::Initial {
                connect_by = None;
                wire.connected();
            }
            tokio::select! {
                // The client's next message, once the previous one's handling is done.
                m = wire.next(), if handling.is_none() => {
                    let data = match m {
                        Inbound::Message(data) => data,
                        Inbound::TooLarge => {
                            tracing::info!(
                                "closed a {} connection from {}: a message too large to read (--max-message-size {limit})",
                                transport.name(),
                                session.as_ref().map_or("", |s| s.remote())
                            );
                            outbox.close(CloseReason::MessageTooLarge { limit });
                            break;
                        }
                        Inbound::Closed => break,
                    };
                    let mut s = session.take().expect("no handling in progress");
                    // A message over the limit (but within what the wire reads) is dropped with
                    // an ERROR saying why; the connection goes on.
                    if data.len() > limit {
                        s.refuse_message(data.len(), limit);
                        session = Some(s);
                        continue;
                    }
                    handling = Some(Box::pin(async move {
                        let result = s.receive(&data).await;
                        (s, result)
                    }));
                }
                result = finish(&mut handling, &mut session) => {
                    if result.is_err() {
                        outbox.close(CloseReason::MessageTooLarge { limit });
                        break;
                    }
                }
                // A ping that wins the race leaves the outbox's wake-up stored for the next turn.
                _ = outbox.ready() => {
                    gather(&outbox, coalesce).await;
                    if !wire.write(outbox.drain()).await {
                        writable = false;
                        break;
                    }
                }
                _ = &mut ping, if ping_every.is_some() => {
                    let every = ping_every.unwrap_or_default();
                    ping.as_mut().reset(tokio::time::Instant::now() + every);
                    if !wire.ping().await {
                        writable = false;
                        break;
                    }
                }
                _ = app.shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    outbox.close(CloseReason::Shutdown);
                }
                reason = ConnectDeadline::wait(&mut connect_by) => {
                    outbox.close(reason);
                    break;
                }
            }
        }
        // What is queued and the close go out (a reply to the peer's close, if it closed).
        outbox.close(CloseReason::Closed);
        if writable {
            let _ = wire.write(outbox.drain()).await;
        }
        // The socket is released before the close handling, which may wait on webhooks for a
        // while; so is a handling still in progress (its webhook may take as long).
        wire.shut().await;
        drop(slot);
        let session = match handling {
            Some(f) => f.await.0,
            None => session.expect("no handling in progress"),
        };
        tracing::debug!("connection {} closed", session.id());
        // Boxed: the close handling (webhooks, retries) is a large future, only needed at the end.
        Box::pin(session.close()).await;
    }
}

/// Resolves when the handling in progress ends (never without one), with its result; the
/// session is back in `session`. Taken back here, not in the caller, so that the connection's
/// state does not keep room for a session in transit.
async fn finish(
    handling: &mut Option<Handling>,
    session: &mut Option<Session>,
) -> Result<(), FrameTooLarge> {
    let Some(f) = handling else {
        return std::future::pending().await;
    };
    let (s, result) = f.as_mut().await;
    *handling = None;
    *session = Some(s);
    result
}

/// The deadline for a connection's CONNECT (`--connect-timeout`). Boxed, and dropped once the
/// client has connected, so that a connected idle connection carries no timer for it.
struct ConnectDeadline {
    timer: Pin<Box<Sleep>>,
    after: Duration,
}

impl ConnectDeadline {
    fn new(after: Duration) -> ConnectDeadline {
        ConnectDeadline {
            timer: Box::pin(tokio::time::sleep(after)),
            after,
        }
    }

    /// Resolves when the deadline passes (never, once dropped), with the reason to close.
    async fn wait(deadline: &mut Option<ConnectDeadline>) -> CloseReason {
        match deadline {
            Some(d) => {
                d.timer.as_mut().await;
                crate::metrics::timed_out("connect");
                CloseReason::ConnectTimeout { after: d.after }
            }
            None => std::future::pending().await,
        }
    }
}

/// A ping timer that resolves every `interval` (never without one), boxed (SSE streams).
pub(super) struct PingTimer(Option<(Pin<Box<Sleep>>, Duration)>);

impl PingTimer {
    pub(super) fn new(interval: Option<Duration>) -> PingTimer {
        PingTimer(interval.map(|i| (Box::pin(tokio::time::sleep(i)), i)))
    }

    pub(super) async fn due(&mut self) {
        match &mut self.0 {
            Some((timer, interval)) => {
                timer.as_mut().await;
                let next = tokio::time::Instant::now() + *interval;
                timer.as_mut().reset(next);
            }
            None => std::future::pending().await,
        }
    }
}

/// With `--write-coalesce-ms`, lets more frames join the first before the write: one system call
/// for several deliveries, at the cost of that much latency. A close is written at once.
pub(super) async fn gather(outbox: &Outbox, coalesce: Duration) {
    if !coalesce.is_zero() && !outbox.is_closed() {
        tokio::select! {
            _ = tokio::time::sleep(coalesce) => {}
            _ = outbox.closed() => {}
        }
    }
}
