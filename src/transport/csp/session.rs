//! CSP sessions: the server side of one Comet Session Protocol client.
//!
//! Each session owns an RTJP [`Session`] driven by one task (so the client's frames are handled in
//! order, as on a WebSocket). Outgoing frames become numbered packets that stay queued until the
//! client acknowledges them (`a`), so a comet response lost on the way is delivered again.

use super::packets::{
    close_packet, decode_packets, encode_packet, ClientPacket, PacketError, Vars,
};
use crate::session::{CloseReason, Outbox, Session};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Inbound packets waiting for the session task. Sends beyond this wait (backpressure on the
/// client's `send` requests) rather than growing memory.
const INBOUND_QUEUE: usize = 16;

/// What the session task receives.
enum Inbound {
    Data(Vec<u8>),
    Close,
}

#[derive(Debug)]
struct State {
    vars: Vars,
    /// Sent but not yet acknowledged packets, oldest first, as JSON text.
    unacked: VecDeque<(u64, String)>,
    unacked_bytes: usize,
    next_packet: u64,
    last_client_packet: u64,
    /// Bumped by every comet request; a waiting comet returns when it is no longer the newest.
    comet_generation: u64,
    requests_in_flight: usize,
    last_activity: Instant,
    /// The server's close packet is queued.
    closing: bool,
}

pub struct CspSession {
    pub key: Arc<str>,
    outbox: Arc<Outbox>,
    inbound: mpsc::Sender<Inbound>,
    // Short critical sections only (packet bookkeeping); never held across an await.
    state: Mutex<State>,
    /// Releases a waiting comet (a newer comet arrived, or the session closed).
    wake: Notify,
    /// Serialises `send` requests of this session.
    deliver_lock: tokio::sync::Mutex<()>,
    /// Budget for unacknowledged packets, in bytes.
    max_unacked: usize,
}

impl CspSession {
    /// Whether no request is in flight and none arrived for `idle`.
    fn is_idle(&self, idle: Duration) -> bool {
        let st = self.state.lock();
        st.requests_in_flight == 0 && st.last_activity.elapsed() >= idle
    }

    /// Marks the start of a request: applies its variables and acknowledgement. The request
    /// lasts until the guard drops, also when the client goes away mid-request and the handler
    /// is dropped at an await (otherwise the session would never count as idle again).
    #[must_use = "the request ends when the guard drops"]
    pub fn begin_request(&self, get: impl Fn(&str) -> Option<String>) -> RequestGuard<'_> {
        let mut st = self.state.lock();
        st.requests_in_flight += 1;
        st.last_activity = Instant::now();
        st.vars.update(&get);
        if let Some(ack) = get("a").and_then(|a| a.parse::<u64>().ok()) {
            while st.unacked.front().is_some_and(|(id, _)| *id <= ack) {
                let (_, packet) = st.unacked.pop_front().expect("checked");
                st.unacked_bytes -= packet.len();
            }
        }
        RequestGuard(self)
    }

    fn end_request(&self) {
        let mut st = self.state.lock();
        st.requests_in_flight -= 1;
        st.last_activity = Instant::now();
    }

    pub fn vars(&self) -> Vars {
        self.state.lock().vars.clone()
    }

    /// Hands decoded client packets to the session task, in order.
    pub async fn deliver(&self, d: &str) -> Result<(), PacketError> {
        // One `send` at a time per session, so that two concurrent sends of the same packets
        // cannot both deliver them, and packet order is kept.
        let _one_at_a_time = self.deliver_lock.lock().await;
        let last = self.state.lock().last_client_packet;
        let packets = decode_packets(d, last)?;
        for (id, packet) in packets {
            let msg = match packet {
                ClientPacket::Data(d) => Inbound::Data(d),
                ClientPacket::Close => {
                    self.state.lock().last_client_packet = id;
                    self.close(CloseReason::Closed);
                    return Ok(());
                }
            };
            // The task is gone only once the session closed; later packets are moot then.
            if self.inbound.send(msg).await.is_err() {
                return Ok(());
            }
            // Recorded only once handed over: if this request is dropped while waiting, the
            // client's re-sent packet is delivered, not skipped.
            self.state.lock().last_client_packet = id;
        }
        Ok(())
    }

    /// Closes the session: queues the close packet and ends the RTJP session.
    pub fn close(&self, reason: CloseReason) {
        // Closing the outbox ends the session task even when its inbound queue is full.
        let _ = self.inbound.try_send(Inbound::Close);
        self.outbox.close(reason);
        let mut st = self.state.lock();
        self.pull(&mut st);
        if !st.closing {
            queue_close_packet(&mut st);
        }
        drop(st);
        self.wake.notify_waiters();
    }

    /// Moves frames from the outbox into numbered packets (one packet per RTJP frame).
    fn pull(&self, st: &mut State) {
        if st.closing {
            return;
        }
        let drained = self.outbox.drain();
        // Frames end in "\r\n", which never occurs inside our ASCII-escaped JSON.
        for frame in drained
            .data
            .split_inclusive(|b| *b == b'\n')
            .filter(|f| !f.is_empty())
        {
            let id = st.next_packet;
            st.next_packet += 1;
            let packet = encode_packet(id, frame);
            st.unacked_bytes += packet.len();
            st.unacked.push_back((id, packet));
        }
        // As with the outbox, one packet alone may exceed the budget.
        let overflow = st.unacked_bytes > self.max_unacked && st.unacked.len() > 1;
        if overflow || drained.close.is_some() {
            if overflow {
                // A client that never acknowledges is treated like one that never reads.
                st.unacked.clear();
                st.unacked_bytes = 0;
            }
            let _ = self.inbound.try_send(Inbound::Close);
            queue_close_packet(st);
        }
    }

    /// A comet request: returns every unacknowledged packet, waiting up to the long-poll
    /// duration (`du`, capped at `max_wait`) for one to appear.
    pub async fn comet(&self, max_wait: Duration) -> String {
        let (generation, wait) = {
            let mut st = self.state.lock();
            st.comet_generation += 1;
            let wait = Duration::from_secs_f64(st.vars.du.min(max_wait.as_secs_f64()));
            (st.comet_generation, wait)
        };
        self.wake.notify_waiters(); // an older comet returns now
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let released = self.wake.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut st = self.state.lock();
                self.pull(&mut st);
                let done = !st.unacked.is_empty()
                    || st.comet_generation != generation
                    || tokio::time::Instant::now() >= deadline;
                if done {
                    return Self::body(&st);
                }
            }
            tokio::select! {
                _ = self.outbox.ready() => {}
                _ = released => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    fn body(st: &State) -> String {
        let packets: Vec<String> = st.unacked.iter().map(|(_, p)| p.clone()).collect();
        let last = st.unacked.back().map_or(0, |(id, _)| *id);
        st.vars.comet_body(&packets, last)
    }
}

/// One request in flight on a session; see [`CspSession::begin_request`].
pub struct RequestGuard<'a>(&'a CspSession);

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// Queues the server's null packet, counted in `unacked_bytes` like every packet (acking it
/// subtracts its length).
fn queue_close_packet(st: &mut State) {
    st.closing = true;
    let id = st.next_packet;
    st.next_packet += 1;
    let packet = close_packet(id);
    st.unacked_bytes += packet.len();
    st.unacked.push_back((id, packet));
}

/// Drives the RTJP session of one CSP session until the client or the server closes it.
async fn run_session(
    mut session: Session,
    outbox: Arc<Outbox>,
    mut inbound: mpsc::Receiver<Inbound>,
    limit: usize,
) {
    loop {
        let msg = tokio::select! {
            m = inbound.recv() => m,
            _ = outbox.closed() => None,
        };
        match msg {
            Some(Inbound::Data(data)) => {
                if session.receive(&data).await.is_err() {
                    outbox.close(CloseReason::MessageTooLarge { limit });
                    break;
                }
            }
            Some(Inbound::Close) | None => break,
        }
    }
    session.close().await;
}

/// Why a handshake was refused.
#[derive(Debug, thiserror::Error)]
#[error("Too many sessions")]
pub struct TooManySessions;

/// Limits and timings of CSP sessions.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_sessions: usize,
    pub idle_timeout: Duration,
    pub outbox_bytes: usize,
    pub max_message: usize,
}

/// Every live CSP session, by key.
pub struct Registry {
    sessions: Mutex<HashMap<Arc<str>, Arc<CspSession>>>,
    limits: Limits,
}

impl Registry {
    /// Creates the registry and its reaper task, which closes idle sessions (with the usual
    /// disconnect cascade) and forgets closed ones; at `shutdown` it closes them all.
    pub fn new(limits: Limits, shutdown: CancellationToken) -> Arc<Registry> {
        let registry = Arc::new(Registry {
            sessions: Mutex::new(HashMap::new()),
            limits,
        });
        let weak = Arc::downgrade(&registry);
        // Check a few times per timeout, so a session lives at most ~1.25 × the timeout.
        let tick =
            (limits.idle_timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = shutdown.cancelled() => {
                        if let Some(r) = weak.upgrade() {
                            for s in r.sessions.lock().drain().map(|(_, s)| s) {
                                s.close(CloseReason::Shutdown);
                            }
                        }
                        return;
                    }
                }
                let Some(registry) = weak.upgrade() else {
                    return;
                };
                registry.reap();
            }
        });
        registry
    }

    fn reap(&self) {
        let idle: Vec<Arc<CspSession>> = {
            let mut sessions = self.sessions.lock();
            let keys: Vec<Arc<str>> = sessions
                .iter()
                .filter(|(_, s)| s.is_idle(self.limits.idle_timeout))
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| sessions.remove(k)).collect()
        };
        for session in idle {
            tracing::debug!("CSP session {} expired", session.key);
            session.close(CloseReason::Closed);
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<CspSession>> {
        self.sessions.lock().get(key).cloned()
    }

    /// Creates a session and its RTJP session task.
    pub fn create(
        &self,
        hub: Arc<crate::hub::Hub>,
        remote: String,
    ) -> Result<Arc<CspSession>, TooManySessions> {
        let mut sessions = self.sessions.lock();
        if sessions.len() >= self.limits.max_sessions {
            return Err(TooManySessions);
        }
        let outbox = Arc::new(Outbox::new(self.limits.outbox_bytes));
        let session = Session::new(hub, remote, outbox.clone(), self.limits.max_message);
        let key = crate::session::new_connection_id();
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let csp = Arc::new(CspSession {
            key: key.clone(),
            outbox: outbox.clone(),
            inbound: tx,
            state: Mutex::new(State {
                vars: Vars::default(),
                unacked: VecDeque::new(),
                unacked_bytes: 0,
                next_packet: 1,
                last_client_packet: 0,
                comet_generation: 0,
                requests_in_flight: 0,
                last_activity: Instant::now(),
                closing: false,
            }),
            wake: Notify::new(),
            deliver_lock: tokio::sync::Mutex::new(()),
            max_unacked: self.limits.outbox_bytes,
        });
        sessions.insert(key, csp.clone());
        tokio::spawn(run_session(session, outbox, rx, self.limits.max_message));
        Ok(csp)
    }
}
