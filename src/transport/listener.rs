//! The listeners' sockets: every accepted connection is wrapped so that a peer cannot hold a
//! socket (a file descriptor, and whatever its task references) by doing nothing:
//! - a write the peer does not take for [`WRITE_STALL`] fails, whatever is written (a WebSocket
//!   frame, a CSP comet reply, a Web API answer);
//! - the first request's headers must be complete within `--header-timeout` of the accept
//!   (a slowloris sending a byte now and then, a socket that sends nothing; the TLS handshake
//!   included; later requests' headers are bounded by hyper's own timer, see `http`);
//! - after that, a connection on which nothing arrives for `--idle-timeout` is closed (an idle
//!   keep-alive, a dead peer; live WebSocket clients answer the server's pings, see
//!   `websocket`).
//!
//! With `--tls-cert`, the bytes are TLS over the TCP stream (`Wire`): the bounds then apply to
//! the decrypted bytes, so the headers' deadline also covers the handshake.
//!
//! It works at the byte level, below HTTP and WebSocket alike, so it bounds every protocol the
//! listener speaks, upgraded connections included. The one exception is a hixie-75 connection
//! once its client has connected: that protocol has no ping, and a python-hookboxclient
//! listening on a quiet channel is idle but alive. TCP keepalive, on every accepted socket,
//! finds the peers of those that are gone.

use super::quota::Slot;
use parking_lot::Mutex;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

/// A peer that accepts no bytes for this long is treated as gone.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// The read bounds of every accepted connection (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// The first request's headers must be complete this long after the accept.
    pub header: Duration,
    /// Longest a connection may send nothing, once its first request's headers are in.
    pub idle: Duration,
}

/// Lets a handler change how its connection is bounded once it is no plain HTTP connection any
/// more. Shared by the connection's [`TimedStream`] and its [`PeerAddr`].
#[derive(Debug, Clone, Default)]
pub struct IdleSwitch(Arc<SwitchState>);

#[derive(Debug, Default)]
struct SwitchState {
    exempt: AtomicBool,
    /// The connection's place among its address's plain HTTP connections (see `http`).
    http_slot: Mutex<Option<Slot>>,
}

impl IdleSwitch {
    /// From now on, this connection may stay silent (TCP keepalive still finds a dead peer):
    /// a connected hixie-75 client, an SSE stream. It also leaves the plain HTTP count.
    pub fn exempt(&self) {
        self.0.exempt.store(true, Ordering::Relaxed);
        self.leave_http();
    }

    /// The connection is a WebSocket or a stream now, counted by the transports' own quota.
    pub fn leave_http(&self) {
        self.0.http_slot.lock().take();
    }

    pub(super) fn hold_http_slot(&self, slot: Slot) {
        *self.0.http_slot.lock() = Some(slot);
    }

    fn is_exempt(&self) -> bool {
        self.0.exempt.load(Ordering::Relaxed)
    }
}

/// A TCP listener whose connections are [`TimedStream`]s.
pub struct TimedListener {
    pub listener: TcpListener,
    pub deadlines: Deadlines,
    /// TLS on every connection (`--tls-cert`), or plain TCP.
    pub tls: Option<TlsAcceptor>,
}

/// The peer address of a connection, as the handlers extract it (`ConnectInfo<PeerAddr>`), with
/// the connection's [`IdleSwitch`].
#[derive(Debug, Clone)]
pub struct PeerAddr(pub SocketAddr, pub IdleSwitch);

impl TimedListener {
    /// The next connection (accept errors are waited out, as axum does).
    pub async fn accept(&mut self) -> (TimedStream, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        // Keepalive probes after half the idle bound of silence, three more a sixth apart: a
        // vanished peer's socket fails within about the idle bound even where nothing else
        // would notice (a connected hixie-75 client).
        let idle = self.deadlines.idle;
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle / 2)
            .with_interval((idle / 6).max(Duration::from_secs(1)))
            .with_retries(3);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let wire = match &self.tls {
            None => Wire::Plain(stream),
            Some(acceptor) => Wire::Tls(Box::new(TlsWire::Handshake(acceptor.accept(stream)))),
        };
        (TimedStream::new(wire, self.deadlines), addr)
    }
}

/// A TCP stream whose writes fail after [`WRITE_STALL`] without progress, and whose reads fail
/// when the peer is too slow with its first request's headers or sends nothing for too long.
/// The write timer exists only while a write is blocked; the read timer while a read waits
/// (boxed: an idle connection carries one pointer and one timer entry).
pub struct TimedStream {
    inner: Wire,
    stall: Option<Pin<Box<Sleep>>>,
    read_timer: Option<Pin<Box<Sleep>>>,
    /// The bounds in milliseconds (small: every connection carries them).
    header_ms: u32,
    idle_ms: u32,
    idle: IdleSwitch,
    /// Until the first request's headers are complete: their deadline, and the last three bytes
    /// read (to find a `\r\n\r\n` split across reads).
    head: Option<(Instant, [u8; 3])>,
}

/// A bound in milliseconds; the configuration caps them at an hour.
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl TimedStream {
    /// The connection's switch, for its [`PeerAddr`].
    pub fn switch(&self) -> IdleSwitch {
        self.idle.clone()
    }

    fn new(inner: Wire, deadlines: Deadlines) -> TimedStream {
        TimedStream {
            inner,
            stall: None,
            read_timer: None,
            header_ms: millis(deadlines.header),
            idle_ms: millis(deadlines.idle),
            idle: IdleSwitch::default(),
            head: Some((Instant::now() + deadlines.header, [0; 3])),
        }
    }

    /// Looks for the end of the first request's headers in newly read bytes.
    fn scan_head(&mut self, new: &[u8]) {
        let Some((_, tail)) = &mut self.head else {
            return;
        };
        let mut window = *tail;
        for &b in new {
            if window == *b"\r\n\r" && b == b'\n' {
                self.head = None;
                return;
            }
            window = [window[1], window[2], b];
        }
        *tail = window;
    }

    /// Runs the read timer while a read waits: until the headers' deadline at first (progress
    /// does not move it: a slowloris sends a byte now and then), then `idle` after the last
    /// bytes read.
    fn watch_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let head = self.head.map(|(deadline, _)| deadline);
        if head.is_none() && self.idle.is_exempt() {
            self.read_timer = None;
            return Poll::Pending;
        }
        let idle = Duration::from_millis(self.idle_ms.into());
        let timer = self.read_timer.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(
                head.unwrap_or_else(|| Instant::now() + idle),
            ))
        });
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                let (kind, what) = if self.head.is_some() {
                    let s = f64::from(self.header_ms) / 1000.0;
                    (
                        "header",
                        format!("no complete request headers within {s} s"),
                    )
                } else {
                    let s = f64::from(self.idle_ms) / 1000.0;
                    ("idle", format!("nothing received for {s} s"))
                };
                crate::metrics::timed_out(kind);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
            }
        }
    }

    /// After the inner write made progress (`Ready`) the timer is dropped; while it is blocked
    /// (`Pending`) the timer runs, and its expiry turns the write into an error.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timer = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "peer accepted no bytes for 30 s",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending => self.watch_read(cx),
            Poll::Ready(r) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    if self.head.is_some() {
                        self.scan_head(new);
                    }
                    // The headers' deadline stays until they are complete; an idle timer
                    // starts again at the next wait.
                    if self.head.is_none() {
                        self.read_timer = None;
                    }
                }
                Poll::Ready(r)
            }
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

/// The bytes under a [`TimedStream`]. The TLS state is boxed: it is large, and most deployments
/// terminate TLS in front of hookbox, so plain connections should not carry its size.
enum Wire {
    Plain(TcpStream),
    Tls(Box<TlsWire>),
}

enum TlsWire {
    /// Driven by the connection's first reads and writes (in its own task: the accept loop
    /// never waits for a handshake).
    Handshake(tokio_rustls::Accept<TcpStream>),
    Ready(tokio_rustls::server::TlsStream<TcpStream>),
    /// The handshake failed; the connection only reports that.
    Failed,
}

impl TlsWire {
    /// The established stream, driving the handshake first if it is still under way.
    fn ready(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&mut tokio_rustls::server::TlsStream<TcpStream>>> {
        if let TlsWire::Handshake(accept) = self {
            match Pin::new(accept).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(stream)) => *self = TlsWire::Ready(stream),
                Poll::Ready(Err(e)) => {
                    *self = TlsWire::Failed;
                    tracing::debug!("TLS handshake failed: {e}");
                    return Poll::Ready(Err(e));
                }
            }
        }
        match self {
            TlsWire::Ready(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "TLS handshake failed",
            ))),
        }
    }
}

/// Runs `$op` on the plain stream, or on the TLS stream once its handshake is done.
macro_rules! on_wire {
    ($wire:expr, $cx:expr, |$s:ident| $op:expr) => {
        match $wire {
            Wire::Plain($s) => $op,
            Wire::Tls(tls) => match tls.ready($cx) {
                Poll::Ready(Ok($s)) => $op,
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    };
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        on_wire!(self.get_mut(), cx, |s| Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_wire!(self.get_mut(), cx, |s| Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_wire!(self.get_mut(), cx, |s| Pin::new(s)
            .poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Wire::Plain(s) => s.is_write_vectored(),
            // hyper asks once, before the handshake is done; rustls takes vectored writes.
            Wire::Tls(_) => true,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wire = self.get_mut();
        if wire.before_tls() {
            return Poll::Ready(Ok(()));
        }
        on_wire!(wire, cx, |s| Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wire = self.get_mut();
        if wire.before_tls() {
            return Poll::Ready(Ok(()));
        }
        on_wire!(wire, cx, |s| Pin::new(s).poll_shutdown(cx))
    }
}

impl Wire {
    /// A TLS connection whose handshake has not completed (or failed): nothing of ours has
    /// been written, so there is nothing to flush, and closing must not wait for the
    /// handshake (a peer that never finishes it would hold the socket until the write stall).
    fn before_tls(&self) -> bool {
        matches!(self, Wire::Tls(t) if !matches!(**t, TlsWire::Ready(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection carries one: a regression here is memory on every idle connection.
    /// The bound is today's size; raise it only with a measurement (docs/BENCHMARKS.md, A).
    #[test]
    fn a_timed_stream_stays_small() {
        let size = std::mem::size_of::<TimedStream>();
        println!("TimedStream: {size} bytes");
        assert!(size <= 96, "TimedStream is {size} bytes");
    }
}
