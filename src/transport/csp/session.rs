//! CSP sessions: the server side of one Comet Session Protocol client.
//!
//! Each session owns an RTJP [`Session`] driven by one task (so the client's frames are handled in
//! order, as on a WebSocket). Outgoing frames become numbered packets that stay queued until the
//! client acknowledges them (`a`), so a comet response lost on the way is delivered again.
//!
//! Memory: a session holds its unacknowledged packets (as shared `Bytes`) and at most **one**
//! comet reply being written, which points at those same packets. A comet that arrives while a
//! reply is still being written waits like a comet with nothing to send, so a thousand comets that
//! never read cannot make a thousand copies of the backlog. Packets acknowledged while the reply
//! that carries them is still being written stay counted against the session's byte budget until
//! the write ends.

use super::packets::{
    close_packet, decode_packets, encode_packet, ClientPacket, PacketError, Vars,
};
use crate::metrics::OpenConnection;
use crate::net::address_group;
use crate::net::Transport;
use crate::outbox::{CloseReason, Outbox};
use crate::session::{Peer, Progress, Session, Stage};
use bytes::Bytes;
use futures_util::stream;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Inbound packets waiting for the session task. Sends beyond this wait (backpressure on the
/// client's `send` requests) rather than growing memory.
const INBOUND_QUEUE: usize = 16;

/// What the session task receives.
enum Inbound {
    Data(Vec<u8>),
    Close,
}

/// The comet reply being written, if any.
#[derive(Debug, Clone, Copy)]
struct Writing {
    /// Id of the last packet in the reply.
    last_id: u64,
    /// Bytes of the reply's packets that were acknowledged meanwhile: no longer in `unacked`, but
    /// still held by the reply until its write ends.
    acked_bytes: usize,
}

/// A sent, not yet acknowledged packet.
#[derive(Debug)]
struct Packet {
    id: u64,
    /// The packet as JSON text.
    bytes: Bytes,
    /// What it counts against the byte budget: the frame it carries, as on the other transports
    /// (its base64 is a third larger), so a history replay sized for the outbox fits it here too.
    counted: usize,
}

#[derive(Debug)]
struct State {
    vars: Vars,
    /// Sent but not yet acknowledged packets, oldest first.
    unacked: VecDeque<Packet>,
    /// Their `counted` sizes.
    unacked_bytes: usize,
    writing: Option<Writing>,
    next_packet: u64,
    last_client_packet: u64,
    /// Bumped by every comet request; a waiting comet returns when it is no longer the newest.
    comet_generation: u64,
    requests_in_flight: usize,
    last_activity: Instant,
    /// The server's close packet is queued.
    closing: bool,
}

impl State {
    /// Bytes this session holds: unacknowledged packets, plus acknowledged ones a reply still
    /// being written points at.
    fn held_bytes(&self) -> usize {
        self.unacked_bytes + self.writing.map_or(0, |w| w.acked_bytes)
    }
}

pub struct CspSession {
    pub key: Arc<str>,
    /// The client address it was created for (counted against the per-address quota).
    remote: IpAddr,
    created: Instant,
    /// How far the RTJP session got: a session that never completed CONNECT is cheap to evict.
    progress: Arc<Progress>,
    outbox: Arc<Outbox>,
    inbound: mpsc::Sender<Inbound>,
    // Short critical sections only (packet bookkeeping); never held across an await.
    state: Mutex<State>,
    /// Wakes waiting comets: a newer comet arrived, a reply's write ended, or the session closed.
    wake: Notify,
    /// Serialises `send` requests of this session.
    deliver_lock: tokio::sync::Mutex<()>,
}

impl CspSession {
    /// Whether no request is in flight and none arrived for `idle`.
    fn is_idle(&self, idle: Duration) -> bool {
        let st = self.state.lock();
        st.requests_in_flight == 0 && st.last_activity.elapsed() >= idle
    }

    /// Whether the client completed a CONNECT, or one is being checked by the web app. Sending
    /// packets is not enough: any web page can make its visitors post empty ones, so only a user
    /// the web app let in (or is asked about) holds a session against eviction.
    fn is_used(&self) -> bool {
        self.progress.stage() != Stage::Initial
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
            while st.unacked.front().is_some_and(|p| p.id <= ack) {
                let packet = st.unacked.pop_front().expect("checked");
                st.unacked_bytes -= packet.counted;
                if let Some(w) = st.writing.as_mut().filter(|w| packet.id <= w.last_id) {
                    w.acked_bytes += packet.counted;
                }
            }
            self.sync_held(&st);
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
            st.unacked_bytes += frame.len();
            st.unacked.push_back(Packet {
                id,
                bytes: encode_packet(id, frame),
                counted: frame.len(),
            });
        }
        // The packets count against the outbox's budget, so a client that never acknowledges is
        // treated like one that never reads: its next frame overflows the outbox.
        self.sync_held(st);
        if drained.close.is_some() {
            if matches!(drained.close, Some(CloseReason::Overflow { .. })) {
                st.unacked.clear();
                st.unacked_bytes = 0;
            }
            let _ = self.inbound.try_send(Inbound::Close);
            queue_close_packet(st);
        }
    }

    /// Tells the outbox how many bytes of packets this session holds.
    fn sync_held(&self, st: &State) {
        self.outbox.set_held(st.held_bytes());
    }

    /// A comet request: the unacknowledged packets, waiting up to the long-poll duration (`du`,
    /// capped at `max_wait`) for one to appear and for any earlier reply's write to end. A comet
    /// released by a newer one answers an empty batch.
    pub async fn comet(self: &Arc<Self>, max_wait: Duration) -> CometReply {
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
                if st.comet_generation != generation {
                    return CometReply::Empty(st.vars.empty_batch());
                }
                if !st.unacked.is_empty() && st.writing.is_none() {
                    return self.backlog_reply(&mut st);
                }
                if tokio::time::Instant::now() >= deadline {
                    return CometReply::Empty(st.vars.empty_batch());
                }
            }
            tokio::select! {
                _ = self.outbox.ready() => {}
                _ = released => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// A reply carrying every unacknowledged packet, pointing at them (no copy). It counts as
    /// being written until the HTTP layer drops its body: fully sent, or the connection gone.
    fn backlog_reply(self: &Arc<Self>, st: &mut State) -> CometReply {
        let last_id = st.unacked.back().map_or(0, |p| p.id);
        let (head, tail) = st.vars.comet_frame(st.unacked.len(), last_id);
        let mut chunks = Vec::with_capacity(st.unacked.len() * 2 + 1);
        chunks.push(Bytes::from(head));
        for (i, packet) in st.unacked.iter().enumerate() {
            if i > 0 {
                chunks.push(Bytes::from_static(b", "));
            }
            chunks.push(packet.bytes.clone());
        }
        chunks.push(Bytes::from(tail));
        st.writing = Some(Writing {
            last_id,
            acked_bytes: 0,
        });
        CometReply::Backlog {
            chunks,
            guard: WriteGuard(self.clone()),
        }
    }
}

/// What a comet request answers.
pub enum CometReply {
    Empty(String),
    /// The backlog, in pieces that share the packets' memory, and the guard whose drop marks the
    /// end of the write.
    Backlog {
        chunks: Vec<Bytes>,
        guard: WriteGuard,
    },
}

impl CometReply {
    /// The response body: the pieces as a stream that holds the guard until it is dropped.
    pub fn into_body(self) -> axum::body::Body {
        match self {
            CometReply::Empty(text) => axum::body::Body::from(text),
            CometReply::Backlog { chunks, guard } => {
                let pieces = stream::iter(chunks.into_iter().map(move |c| {
                    let _held = &guard;
                    Ok::<_, std::convert::Infallible>(c)
                }));
                axum::body::Body::from_stream(pieces)
            }
        }
    }
}

/// Marks a comet reply as being written; dropping it ends the write and wakes waiting comets.
pub struct WriteGuard(Arc<CspSession>);

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.writing = None;
        self.0.sync_held(&st);
        drop(st);
        self.0.wake.notify_waiters();
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
    let bytes = close_packet(id);
    let counted = bytes.len();
    st.unacked_bytes += counted;
    st.unacked.push_back(Packet { id, bytes, counted });
}

/// Drives the RTJP session of one CSP session until the client or the server closes it.
async fn run_session(
    mut session: Session,
    outbox: Arc<Outbox>,
    mut inbound: mpsc::Receiver<Inbound>,
    limit: usize,
) {
    // A CSP session is a connection while its RTJP session runs.
    let _open = OpenConnection::new(Transport::Csp);
    loop {
        let msg = tokio::select! {
            m = inbound.recv() => m,
            _ = outbox.closed() => None,
        };
        match msg {
            // A packet over the limit is dropped with an ERROR saying why, as on a WebSocket.
            Some(Inbound::Data(data)) if data.len() > limit => {
                session.refuse_message(data.len(), limit)
            }
            Some(Inbound::Data(data)) => {
                // Boxed: idle sessions carry only the small loop.
                if Box::pin(session.receive(&data)).await.is_err() {
                    outbox.close(CloseReason::MessageTooLarge { limit });
                    break;
                }
            }
            Some(Inbound::Close) | None => break,
        }
    }
    // Boxed: the close handling (webhooks, retries) is a large future, only needed at the end.
    Box::pin(session.close()).await;
}

/// Why a handshake was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("Too many sessions")]
    Full,
    #[error("Too many sessions from your address")]
    AddressQuota,
}

/// Limits and timings of CSP sessions.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_sessions: usize,
    pub max_per_address: usize,
    pub idle_timeout: Duration,
    /// A session that has not begun a CONNECT this long after its handshake is closed.
    pub unused_timeout: Duration,
    pub outbox_bytes: usize,
    pub session: crate::session::SessionLimits,
}

#[derive(Default)]
struct Sessions {
    by_key: HashMap<Arc<str>, Arc<CspSession>>,
    /// Live sessions per client address (see [`address_group`]), for the per-address quota.
    per_address: HashMap<IpAddr, usize>,
}

impl Sessions {
    fn insert(&mut self, s: Arc<CspSession>) {
        *self.per_address.entry(address_group(s.remote)).or_default() += 1;
        self.by_key.insert(s.key.clone(), s);
    }

    fn remove(&mut self, key: &str) -> Option<Arc<CspSession>> {
        let s = self.by_key.remove(key)?;
        let key = address_group(s.remote);
        if let Some(n) = self.per_address.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&key);
            }
        }
        Some(s)
    }

    /// The oldest session that never completed CONNECT, among those `pick` accepts.
    fn oldest_unused(&self, pick: impl Fn(&CspSession) -> bool) -> Option<Arc<str>> {
        self.by_key
            .values()
            .filter(|s| pick(s) && !s.is_used())
            .min_by_key(|s| s.created)
            .map(|s| s.key.clone())
    }
}

/// Every live CSP session, by key.
pub struct Registry {
    // One lock for the map and the per-address counts, taken per request for a lookup and per
    // handshake for an insert; never held across an await.
    sessions: Mutex<Sessions>,
    limits: Limits,
    /// Where the session tasks run, so that shutdown waits for their close handling.
    connections: TaskTracker,
}

impl Registry {
    /// Creates the registry and its reaper task, which closes idle sessions (with the usual
    /// disconnect cascade) and unused ones, and forgets closed ones; at `shutdown` it closes them
    /// all.
    pub fn new(
        connections: TaskTracker,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> Arc<Registry> {
        let registry = Arc::new(Registry {
            sessions: Mutex::new(Sessions::default()),
            limits,
            connections,
        });
        let weak = Arc::downgrade(&registry);
        // Check a few times per timeout, so a session lives at most ~1.25 × its timeout.
        let tick = (limits.idle_timeout.min(limits.unused_timeout) / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = shutdown.cancelled() => {
                        if let Some(r) = weak.upgrade() {
                            let all: Vec<_> = r.sessions.lock().by_key.drain().map(|(_, s)| s).collect();
                            for s in all {
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
        let limits = self.limits;
        let expired: Vec<Arc<CspSession>> = {
            let mut sessions = self.sessions.lock();
            let keys: Vec<Arc<str>> = sessions
                .by_key
                .values()
                .filter(|s| {
                    s.is_idle(limits.idle_timeout)
                        || (!s.is_used() && s.created.elapsed() >= limits.unused_timeout)
                })
                .map(|s| s.key.clone())
                .collect();
            keys.iter().filter_map(|k| sessions.remove(k)).collect()
        };
        for session in expired {
            tracing::debug!("CSP session {} expired", session.key);
            session.close(CloseReason::Closed);
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<CspSession>> {
        self.sessions.lock().by_key.get(key).cloned()
    }

    /// Creates a session and its RTJP session task. At a limit (the client address's quota, or
    /// the total), the oldest session that never completed CONNECT makes room; only when there
    /// is none is the handshake refused.
    /// A new session for a client at `remote`, whose handshake carried `cookie` (the
    /// browser's own, when its page may hand it over: see `Limits::forwarded_cookie`).
    pub fn create(
        &self,
        hub: Arc<crate::hub::Hub>,
        remote: IpAddr,
        cookie: Option<String>,
    ) -> Result<Arc<CspSession>, Refused> {
        let mut evicted = Vec::new();
        let mut sessions = self.sessions.lock();
        let quota = address_group(remote);
        if sessions.per_address.get(&quota).copied().unwrap_or(0) >= self.limits.max_per_address {
            let key = sessions
                .oldest_unused(|s| address_group(s.remote) == quota)
                .ok_or(Refused::AddressQuota)?;
            evicted.extend(sessions.remove(&key));
        }
        if sessions.by_key.len() >= self.limits.max_sessions {
            let key = sessions.oldest_unused(|_| true).ok_or(Refused::Full)?;
            evicted.extend(sessions.remove(&key));
        }
        // With several nodes the key names this node, so that a request for the session that
        // lands on another node is relayed here (`csp::relay`).
        let key: Arc<str> = match hub.engine().node_id() {
            Some(node) => format!("{node}-{}", crate::session::new_connection_id()),
            None => crate::session::new_connection_id().to_string(),
        }
        .into();
        let outbox = Arc::new(Outbox::new(self.limits.outbox_bytes));
        let session = Session::new(
            hub,
            Transport::Csp,
            Peer {
                address: remote.to_string(),
                cookie,
            },
            outbox.clone(),
            self.limits.session,
        );
        let progress = session.progress();
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let now = Instant::now();
        let csp = Arc::new(CspSession {
            key,
            remote,
            created: now,
            progress,
            outbox: outbox.clone(),
            inbound: tx,
            state: Mutex::new(State {
                vars: Vars::default(),
                unacked: VecDeque::new(),
                unacked_bytes: 0,
                writing: None,
                next_packet: 1,
                last_client_packet: 0,
                comet_generation: 0,
                requests_in_flight: 0,
                last_activity: now,
                closing: false,
            }),
            wake: Notify::new(),
            deliver_lock: tokio::sync::Mutex::new(()),
        });
        sessions.insert(csp.clone());
        drop(sessions);
        for old in evicted {
            tracing::debug!("CSP session {} evicted (never connected)", old.key);
            old.close(CloseReason::Closed);
        }
        self.connections.spawn(run_session(
            session,
            outbox,
            rx,
            self.limits.session.max_frame,
        ));
        Ok(csp)
    }
}
