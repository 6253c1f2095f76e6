//! One client connection's state machine, independent of the transport that carries it.
//!
//! A transport feeds inbound bytes to [`Session::receive`] and writes what the session's
//! [`Outbox`] yields. Frames of one connection are handled strictly one after another (a webhook
//! in flight delays only this connection), which is what keeps each client's actions ordered.

use crate::hub::limits::{whole_seconds, Bucket, Rate};
use crate::hub::{raw, Conn, Hooks, Hub, HubError, Leave, Origin, Publish, Resumable};
use crate::net::Transport;
use crate::outbox::{CloseReason, Mark, Outbox};
use crate::protocol::{
    args, About, ArgError, ClientFrame, FrameDecoder, FrameKind, FrameTooLarge, InFrame, OutFrame,
    ResumeArg,
};
use serde_json::json;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A frame the session refuses, with the text the client sees in its ERROR frame.
#[derive(Debug, thiserror::Error)]
enum FrameFault {
    #[error("{0}")]
    Bad(&'static str),
    #[error(transparent)]
    Arg(#[from] ArgError),
    #[error("Unknown frame type {}", cut(.0, MAX_ECHOED_NAME))]
    Unknown(String),
    #[error("Publishing too fast (at most {} per second {per})", .rate.per_second)]
    TooFast { rate: Rate, per: &'static str },
    #[error("Subscribing too fast (at most {} per second {per})", .rate.per_second)]
    SubscribingTooFast { rate: Rate, per: &'static str },
    #[error("Channel {} is still recovering: wait for its answer", cut(.0, MAX_ECHOED_NAME))]
    StillRecovering(String),
    #[error("Resume tickets are not enabled for this connection")]
    NoResume,
    #[error("Too many refused CONNECTs from your address: try again in {} s", whole_seconds(*.0))]
    ConnectThrottled(Duration),
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// Most characters of a client's frame name echoed back in an ERROR frame.
const MAX_ECHOED_NAME: usize = 64;
/// Most characters of any ERROR frame's `msg` (webhook error texts included): a client must not
/// be able to make the server queue large frames for it before it has even connected.
const MAX_ERROR_MSG: usize = 1000;

/// `text` cut to at most `max` characters, marked with `…` when cut.
fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    }
}

/// How far a session got, readable by its transport while the session task owns the session.
#[derive(Debug, Default)]
pub struct Progress(AtomicU8);

/// See [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No CONNECT yet, or only refused ones.
    Initial,
    /// A CONNECT is being checked by the web app.
    Connecting,
    /// CONNECT succeeded.
    Connected,
}

impl Progress {
    pub fn stage(&self) -> Stage {
        match self.0.load(Ordering::Relaxed) {
            0 => Stage::Initial,
            1 => Stage::Connecting,
            _ => Stage::Connected,
        }
    }

    fn set(&self, stage: Stage) {
        self.0.store(stage as u8, Ordering::Relaxed);
    }
}

pub struct Session {
    hub: Arc<Hub>,
    id: Arc<str>,
    transport: Transport,
    /// Boxed: every connection carries it, and it only ever gets copied into its `Conn`.
    peer: Box<Peer>,
    outbox: Arc<Outbox>,
    decoder: FrameDecoder,
    /// Set once CONNECT succeeded.
    connected: Option<(Arc<Conn>, Arc<str>)>,
    progress: Arc<Progress>,
    /// CONNECTs refused so far, and how many close the connection.
    failed_connects: u32,
    max_failed_connects: u32,
    /// This connection's rate buckets and recoveries in flight (the session handles one frame
    /// at a time, so they need no lock). Made at the first frame that needs them: most
    /// connections only subscribe once and listen, and every connection carries this field.
    spending: Option<Box<Spending>>,
    /// This connection's part in resume tickets, when the web app gave it one (boxed: most
    /// connections have none).
    resume: Option<Box<Resumable>>,
}

/// What a connection spends of its own allowances (see `Session::spending`).
#[derive(Debug, Default)]
struct Spending {
    /// PUBLISH and MESSAGE frames.
    publish: Option<Bucket>,
    /// SUBSCRIBE and UNSUBSCRIBE frames.
    subscribe: Option<Bucket>,
    /// Channels whose recovery answer is still in the outbox, each with the mark after its last
    /// frame: a channel is recovered once at a time, so that repeated `recover`s cannot pile
    /// copies of a history into a queue that nobody reads.
    recovering: Vec<(Box<str>, Mark)>,
}

/// Which kind of frame a rate bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spend {
    Publish,
    Subscribe,
}

/// Who is at the other end of a connection, as its transport saw it.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The client's address (see `transport::client_address`).
    pub address: String,
    /// The browser's own `Cookie` header of the request that opened the connection, when the
    /// page's origin may hand its session to the web app (`transport::Limits::forwarded_cookie`):
    /// HttpOnly cookies included, which the page's script cannot put in `cookie_string`.
    pub cookie: Option<String>,
}

impl Peer {
    /// A peer whose requests' cookies are not forwarded.
    pub fn at(address: String) -> Peer {
        Peer {
            address,
            cookie: None,
        }
    }
}

/// The cookies a connect webhook gets: the CONNECT's `cookie_string` (what the page hands over,
/// as the original forwarded it), then those of the browser's own header (`forwarded`) it does
/// not name: an HttpOnly session cookie the page's script cannot see. A cookie the page names
/// itself is the page's (a token it passes as a cookie, an app on another host of the same
/// name).
pub fn merge_cookies(forwarded: Option<&str>, given: &str) -> String {
    let Some(forwarded) = forwarded.filter(|f| !f.trim().is_empty()) else {
        return given.to_owned();
    };
    let name = |pair: &str| pair.split('=').next().unwrap_or("").trim().to_owned();
    let pairs = |text: &str| {
        text.split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect::<Vec<String>>()
    };
    let mut cookie = pairs(given);
    let named: std::collections::HashSet<String> = cookie.iter().map(|p| name(p)).collect();
    cookie.extend(
        pairs(forwarded)
            .into_iter()
            .filter(|p| !named.contains(&name(p))),
    );
    cookie.join("; ")
}

/// Per-connection bounds a transport passes to every session.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Bytes buffered for one unfinished frame.
    pub max_frame: usize,
    /// Refused CONNECTs after which the connection is closed.
    pub max_failed_connects: u32,
}

/// A fresh connection id: 128 random bits as 32 lowercase hex characters (uuid4-like).
pub fn new_connection_id() -> Arc<str> {
    let bits: u128 = rand::random();
    Arc::from(format!("{bits:032x}"))
}

impl Session {
    /// `limits.max_frame` bounds the bytes buffered for one unfinished frame.
    pub fn new(
        hub: Arc<Hub>,
        transport: Transport,
        peer: Peer,
        outbox: Arc<Outbox>,
        limits: SessionLimits,
    ) -> Session {
        Session {
            hub,
            id: new_connection_id(),
            transport,
            peer: Box::new(peer),
            outbox,
            decoder: FrameDecoder::new(limits.max_frame),
            connected: None,
            progress: Arc::default(),
            failed_connects: 0,
            max_failed_connects: limits.max_failed_connects,
            spending: None,
            resume: None,
        }
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The client's address, as the transport gave it.
    pub fn remote(&self) -> &str {
        &self.peer.address
    }

    /// How far this session got, shared with its transport.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Handles inbound bytes: every complete frame in them, in order, until the connection is
    /// closed (frames after a close are dropped).
    pub async fn receive(&mut self, data: &[u8]) -> Result<(), FrameTooLarge> {
        for frame in self.decoder.push(data)? {
            if self.outbox.is_closed() {
                break;
            }
            match frame {
                Ok(frame) => {
                    let id = frame.id;
                    let kind = FrameKind::of(&frame.name);
                    crate::metrics::frame_in(kind);
                    let result = self.handle(frame, kind).await;
                    self.settle(id, kind, result);
                }
                Err(e) => {
                    crate::metrics::frame_invalid();
                    self.error(e.id, e.msg)
                }
            }
        }
        Ok(())
    }

    /// Handles a frame its transport made rather than read (SSE's CONNECT and SUBSCRIBEs, from
    /// the request), already typed: it is handled as a decoded frame with id `id` would be,
    /// errors included.
    pub async fn take(&mut self, id: i64, frame: ClientFrame) {
        let kind = frame.kind();
        crate::metrics::frame_in(Some(kind));
        let result = match self.check_stage(kind) {
            Ok(()) => self.perform(frame).await,
            Err(fault) => Err(fault),
        };
        self.settle(id, Some(kind), result);
    }

    /// What a frame's failure does: an ERROR for frame `id`, and for some a close.
    fn settle(&mut self, id: i64, kind: Option<FrameKind>, result: Result<(), FrameFault>) {
        let Err(fault) = result else {
            return;
        };
        let connect = kind == Some(FrameKind::Connect);
        let retry_after = match &fault {
            FrameFault::Hub(HubError::Busy { retry_after, .. }) => Some(*retry_after),
            _ => None,
        };
        self.error_with(Some(id), &fault.to_string(), retry_after);
        match fault {
            // The engine could not take the connection in: the client must start again (and
            // the web app did not refuse it).
            FrameFault::Hub(HubError::Engine(_)) if connect => {
                self.outbox.close(CloseReason::Unavailable);
            }
            FrameFault::ConnectThrottled(wait) => {
                let secs = whole_seconds(wait).min(u32::MAX.into());
                self.outbox.close(CloseReason::Throttled {
                    wait_secs: secs as u32,
                });
            }
            // Busy: the web app was not asked; the client comes back later.
            FrameFault::Hub(HubError::Busy { .. }) => {}
            FrameFault::Hub(_) if connect => self.connect_refused(),
            _ => {}
        }
    }

    /// A client message larger than `--max-message-size` (`limit`), dropped whole by its
    /// transport: the client hears why in an ERROR (it is not closed), and the operator in the
    /// log.
    pub fn refuse_message(&self, len: usize, limit: usize) {
        crate::metrics::refused("message_size");
        tracing::info!(
            "dropped a {len}-byte message from {} (--max-message-size is {limit})",
            self.peer.address
        );
        self.error(
            None,
            &format!("Message too large: {len} bytes (at most {limit}); it was not handled"),
        );
    }

    /// Counts a CONNECT the web app refused; enough of them close the connection, so that one
    /// socket cannot make the web app check an unbounded stream of guessed cookies.
    fn connect_refused(&mut self) {
        self.failed_connects += 1;
        if self.failed_connects >= self.max_failed_connects {
            self.outbox.close(CloseReason::TooManyFailedConnects {
                limit: self.max_failed_connects,
            });
        }
    }

    /// The client's address, as the transport gave it.
    fn address(&self) -> Option<IpAddr> {
        self.peer.address.parse().ok()
    }

    fn error(&self, id: Option<i64>, msg: &str) {
        self.error_with(id, msg, None);
    }

    /// An ERROR frame; `retry_after` (seconds) when the server was too busy to act now.
    fn error_with(&self, id: Option<i64>, msg: &str, retry_after: Option<u32>) {
        let msg = cut(msg, MAX_ERROR_MSG);
        let mut error = args([("id", json!(id)), ("msg", json!(msg))]);
        if let Some(secs) = retry_after {
            error.insert("retry_after".to_owned(), json!(secs));
        }
        let about = About::Error {
            answers: id,
            msg: (*msg).into(),
        };
        self.outbox.push(&OutFrame::with("ERROR", &error, about));
    }

    async fn handle(&mut self, frame: InFrame, kind: Option<FrameKind>) -> Result<(), FrameFault> {
        let Some(kind) = kind else {
            return Err(FrameFault::Unknown(frame.name));
        };
        // The state comes before the arguments: a client that is not connected hears that
        // first, as from the original.
        self.check_stage(kind)?;
        let typed = kind.parse(&frame.args)?;
        self.perform(typed).await
    }

    /// Whether a frame of `kind` may come now: CONNECT only before, the others only after.
    fn check_stage(&self, kind: FrameKind) -> Result<(), FrameFault> {
        match (kind, &self.connected) {
            (FrameKind::Connect, Some(_)) => Err(FrameFault::Bad("Already logged in")),
            (FrameKind::Connect, None) => Ok(()),
            (_, None) => Err(FrameFault::Bad("Not connected")),
            (_, Some(_)) => Ok(()),
        }
    }

    /// Acts on a frame whose stage was checked.
    async fn perform(&mut self, frame: ClientFrame) -> Result<(), FrameFault> {
        match frame {
            ClientFrame::Connect {
                cookie,
                payload,
                recovery,
                resume,
            } => {
                let admitted = match self.address() {
                    Some(address) => Some(
                        self.hub
                            .reserve_connect(address)
                            .await
                            .map_err(FrameFault::ConnectThrottled)?,
                    ),
                    None => None,
                };
                if recovery {
                    self.outbox.show_positions();
                }
                let result = self.connect(cookie, payload, resume).await;
                // Only the web app's refusals keep their token.
                let refused = matches!(&result, Err(FrameFault::Hub(e))
                    if !matches!(e, HubError::Engine(_) | HubError::Busy { .. }));
                if let Some(admitted) = admitted {
                    admitted.settle(refused);
                }
                result
            }
            other => {
                match other {
                    ClientFrame::Publish { .. } | ClientFrame::Message { .. } => {
                        self.check_rate(Spend::Publish)?
                    }
                    ClientFrame::Subscribe { .. }
                    | ClientFrame::Unsubscribe { .. }
                    | ClientFrame::Resume => self.check_rate(Spend::Subscribe)?,
                    ClientFrame::Connect { .. } => {}
                }
                self.act(other).await
            }
        }
    }

    /// Takes a token from this connection's bucket for `spend`, then from its user's, before
    /// any webhook is asked: a flooding client costs neither the web app nor the subscribers.
    fn check_rate(&mut self, spend: Spend) -> Result<(), FrameFault> {
        let (_, user) = self.connected.as_ref().expect("checked by the caller");
        let limits = *self.hub.limits();
        let (rate, user_rate, kind) = match spend {
            Spend::Publish => (
                limits.connection_publish,
                limits.user_publish,
                "publish_rate",
            ),
            Spend::Subscribe => (
                limits.connection_subscribe,
                limits.user_subscribe,
                "subscribe_rate",
            ),
        };
        let too_fast = |rate, per| match spend {
            Spend::Publish => FrameFault::TooFast { rate, per },
            Spend::Subscribe => FrameFault::SubscribingTooFast { rate, per },
        };
        let now = std::time::Instant::now();
        let spending = self.spending.get_or_insert_with(Box::default);
        let bucket = match spend {
            Spend::Publish => &mut spending.publish,
            Spend::Subscribe => &mut spending.subscribe,
        }
        .get_or_insert_with(|| Bucket::full(rate, now));
        if !bucket.take(rate, now) {
            crate::metrics::refused(kind);
            return Err(too_fast(rate, "per connection"));
        }
        let user_allows = match spend {
            Spend::Publish => self.hub.allow_publish(user),
            Spend::Subscribe => self.hub.allow_subscribe(user),
        };
        if !user_allows {
            // Not sent: the connection's token was not spent.
            bucket.refund(rate);
            return Err(too_fast(user_rate, "per user"));
        }
        Ok(())
    }

    /// Refuses a recovery of `channel` while this connection's previous one is still queued.
    fn check_recovering(&mut self, channel: &str) -> Result<(), FrameFault> {
        let Some(spending) = &mut self.spending else {
            return Ok(());
        };
        let outbox = &self.outbox;
        spending.recovering.retain(|(_, mark)| !outbox.taken(*mark));
        if spending.recovering.iter().any(|(c, _)| &**c == channel) {
            crate::metrics::refused("recovery_in_flight");
            return Err(FrameFault::StillRecovering(channel.to_owned()));
        }
        Ok(())
    }

    /// SUBSCRIBE, UNSUBSCRIBE, PUBLISH, MESSAGE and RESUME of a connected client.
    async fn act(&mut self, frame: ClientFrame) -> Result<(), FrameFault> {
        if frame == ClientFrame::Resume {
            return self.renew_ticket().await;
        }
        let recovering = match &frame {
            ClientFrame::Subscribe {
                channel,
                recover: Some(_),
            } => {
                self.check_recovering(channel)?;
                Some(channel.clone())
            }
            _ => None,
        };
        // A channel a connection holding a ticket joins or leaves changes its ticket.
        let membership = match (&frame, &self.resume) {
            (ClientFrame::Subscribe { channel, .. }, Some(_)) => Some((channel.clone(), true)),
            (ClientFrame::Unsubscribe { channel }, Some(_)) => Some((channel.clone(), false)),
            _ => None,
        };
        let hooks = match &membership {
            Some((channel, true)) => self.subscribe_hooks(channel).await,
            _ => Hooks::Ask,
        };
        self.act_on(frame, hooks).await?;
        if let Some((channel, joined)) = membership {
            self.ticket_follows(&channel, joined).await;
        }
        if let Some(channel) = recovering {
            // Answered: its frames are queued up to here.
            let mark = self.outbox.mark();
            let spending = self.spending.get_or_insert_with(Box::default);
            spending.recovering.push((channel.into_boxed_str(), mark));
        }
        Ok(())
    }

    /// Whether a SUBSCRIBE asks its webhook: not for a channel of the ticket this connection
    /// resumed with, the first time it joins it again, while that ticket is not revoked.
    async fn subscribe_hooks(&mut self, channel: &str) -> Hooks {
        let (Some(r), Some((_, user))) = (&mut self.resume, &self.connected) else {
            return Hooks::Ask;
        };
        if !r.take_pending(channel) {
            return Hooks::Ask;
        }
        if self.hub.resumed_ticket_holds(user, r).await {
            Hooks::Skip
        } else {
            r.drop_pending();
            Hooks::Ask
        }
    }

    /// After a SUBSCRIBE (`joined`) or UNSUBSCRIBE of `channel` that succeeded: a connection
    /// holding a ticket gets a fresh one when its channels changed.
    async fn ticket_follows(&mut self, channel: &str, joined: bool) {
        let (Some(r), Some((_, user))) = (&mut self.resume, &self.connected) else {
            return;
        };
        let changed = if joined {
            r.approve(channel)
        } else {
            r.forget(channel)
        };
        if changed {
            if let Some(frame) = self.hub.ticket_frame(user, r).await {
                self.outbox.push(&frame);
            }
        }
    }

    /// RESUME: a fresh ticket. The resumed ticket's channels not joined again by now are left
    /// out of it.
    async fn renew_ticket(&mut self) -> Result<(), FrameFault> {
        let (Some(r), Some((_, user))) = (&mut self.resume, &self.connected) else {
            return Err(FrameFault::NoResume);
        };
        r.drop_pending();
        if let Some(frame) = self.hub.ticket_frame(user, r).await {
            self.outbox.push(&frame);
        }
        Ok(())
    }

    /// `subscribe_hooks`: whether a SUBSCRIBE asks its webhook.
    async fn act_on(&self, frame: ClientFrame, subscribe_hooks: Hooks) -> Result<(), FrameFault> {
        let (conn, user) = self.connected.as_ref().expect("checked by the caller");
        let origin = Origin::client(conn);
        let hub = &self.hub;
        match frame {
            ClientFrame::Subscribe { channel, recover } => {
                if recover.is_some() {
                    // A client that gives positions reads them.
                    conn.outbox.show_positions();
                }
                let recover = recover.as_ref();
                // A channel destroyed between its creation and this action is created again,
                // once, rather than reporting a missing channel the client never named.
                match hub
                    .subscribe(user, &origin, &channel, subscribe_hooks, recover)
                    .await
                {
                    Err(HubError::NoChannel(_)) => {
                        hub.subscribe(user, &origin, &channel, subscribe_hooks, recover)
                            .await?
                    }
                    other => other?,
                }
            }
            ClientFrame::Unsubscribe { channel } => {
                hub.unsubscribe(user, &origin, &channel, Leave::Asked)
                    .await?;
            }
            ClientFrame::Publish { channel, payload } => {
                let payload = raw(&payload);
                let publish = || {
                    hub.publish(Publish {
                        publisher: Some(user),
                        originator: Some(user),
                        origin: &origin,
                        channel: &channel,
                        payload: &payload,
                        hooks: Hooks::Ask,
                    })
                };
                match publish().await {
                    Err(HubError::NoChannel(_)) => publish().await?,
                    other => other?,
                }
            }
            ClientFrame::Message { recipient, payload } => {
                hub.message(user, &origin, &recipient, payload, Hooks::Ask)
                    .await?;
            }
            ClientFrame::Connect { .. } | ClientFrame::Resume => {
                unreachable!("handled by the caller")
            }
        }
        Ok(())
    }

    async fn connect(
        &mut self,
        cookie: String,
        payload_text: String,
        resume: Option<ResumeArg>,
    ) -> Result<(), FrameFault> {
        let conn = Arc::new(Conn {
            id: self.id.clone(),
            cookie: merge_cookies(self.peer.cookie.as_deref(), &cookie),
            remote_addr: self.peer.address.clone(),
            outbox: self.outbox.clone(),
            transport: self.transport,
            since_ms: chrono::Utc::now().timestamp_millis(),
        });
        self.progress.set(Stage::Connecting);
        let connected = match self.hub.connect(&conn, payload_text, resume.as_ref()).await {
            Ok(connected) => connected,
            Err(e) => {
                self.progress.set(Stage::Initial);
                return Err(e.into());
            }
        };
        self.connected = Some((conn, connected.name));
        self.resume = connected.resume;
        self.progress.set(Stage::Connected);
        Ok(())
    }

    /// The transport is gone: run the hub's close handling (a no-op before CONNECT succeeded).
    pub async fn close(self) {
        if let Some((conn, user)) = self.connected {
            self.hub.connection_closed(&user, &conn).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_cookies;

    #[test]
    fn the_pages_cookies_come_first_and_the_browsers_fill_in() {
        assert_eq!(merge_cookies(None, "a=1"), "a=1");
        assert_eq!(merge_cookies(Some("  "), "a=1"), "a=1");
        assert_eq!(
            merge_cookies(Some("sid=s3cret; a=1"), "a=1; theme=dark"),
            "a=1; theme=dark; sid=s3cret"
        );
        // A cookie the page names itself is the page's.
        assert_eq!(
            merge_cookies(Some("token=browser"), "token=page"),
            "token=page"
        );
        assert_eq!(merge_cookies(Some("sid=x"), ""), "sid=x");
    }
}
