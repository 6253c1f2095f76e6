//! Resume tickets: a reconnect storm that costs the web application nothing.
//!
//! When a connect webhook's reply carries `resume_ttl` and the client asked (CONNECT
//! `resume: true`), CONNECTED carries a ticket: the web app's decision (user name, options,
//! override payload), a digest of the cookies it saw, the time it decided, an expiry, and the
//! channels this connection was allowed into, signed with the node's resume key (the same on
//! every node of a cluster, from `--resume-secret`). A client that reconnects within the TTL
//! presents it (CONNECT `resume: "<ticket>"`) and is connected without the connect webhook;
//! its SUBSCRIBEs to the ticket's channels skip the subscribe webhook once.
//!
//! A ticket is `base64url(body JSON) "." base64url(HMAC-SHA256)`. Anything wrong with one
//! (forged, expired, another session's cookies, revoked, too old) sends the CONNECT down the
//! normal webhook path: the user never sees a ticket error. Tickets are revoked per user by
//! time (`/web/disconnect`, `/web/set_user_options`, `/web/unsubscribe`): the engine keeps the
//! revocation time, on every node, for as long as a ticket can live.

use super::Hub;
use crate::engine::options::UserOptions;
use crate::protocol::{args, OutFrame};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The longest `resume_ttl` honoured, in seconds: a larger one is cut to it. It also bounds how
/// long revocations are kept.
pub const MAX_RESUME_TTL: u32 = 3600;
/// How long after the web app last said yes a ticket still counts, however often it was
/// renewed: at least once a day, a connection is asked about again.
const MAX_SESSION_AGE_MS: i64 = 24 * 3600 * 1000;
/// Longest encoded ticket body; channels are left out of a ticket, last first, to fit. Keeps
/// every ticket far below `protocol::MAX_TICKET_LEN`.
const MAX_BODY: usize = 4096;
/// A revocation also covers tickets issued this long after it, so that a node whose clock is a
/// little ahead cannot issue one that escapes it.
const REVOKE_MARGIN_MS: i64 = 2000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The key tickets are signed with.
#[derive(Clone)]
pub struct ResumeKey([u8; 32]);

impl std::fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeKey(..)")
    }
}

impl Default for ResumeKey {
    /// A random key (see [`ResumeKey::random`]).
    fn default() -> Self {
        ResumeKey::random()
    }
}

impl ResumeKey {
    /// The key of `--resume-secret`: every node given the same secret accepts the others'
    /// tickets.
    pub fn from_secret(secret: &str) -> ResumeKey {
        let mut hash = Sha256::new();
        hash.update(b"hookbox resume key\0");
        hash.update(secret.as_bytes());
        ResumeKey(hash.finalize().into())
    }

    /// A key of this process only: its tickets die with it.
    pub fn random() -> ResumeKey {
        ResumeKey(rand::random())
    }

    /// The MAC of `data` for one use (`domain`), so that a signature made for one use is never
    /// good for another.
    fn mac(&self, domain: &[u8], data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length works");
        mac.update(domain);
        mac.update(data);
        mac
    }

    /// A keyed digest of a connection's cookies (not the cookies: tickets are readable).
    fn cookie_digest(&self, cookie: &str) -> String {
        let tag = self.mac(b"cookie\0", cookie.as_bytes()).finalize();
        B64.encode(&tag.into_bytes()[..16])
    }

    fn seal(&self, body: &Body) -> Option<String> {
        let mut body = body.clone();
        let mut text = serde_json::to_vec(&body).ok()?;
        while text.len() > MAX_BODY {
            // Too many channels to carry: the ones left out ask their webhook after a resume.
            body.ch.pop()?;
            text = serde_json::to_vec(&body).ok()?;
        }
        let body64 = B64.encode(&text);
        let tag = self.mac(b"ticket\0", body64.as_bytes()).finalize();
        Some(format!("{body64}.{}", B64.encode(tag.into_bytes())))
    }

    /// The body of a ticket we signed (whatever its age).
    fn open(&self, ticket: &str) -> Option<Body> {
        let (body64, tag64) = ticket.split_once('.')?;
        let tag = B64.decode(tag64).ok()?;
        // Constant-time comparison.
        self.mac(b"ticket\0", body64.as_bytes())
            .verify_slice(&tag)
            .ok()?;
        serde_json::from_slice(&B64.decode(body64).ok()?).ok()
    }
}

/// What a ticket says (short keys: it travels with every CONNECT).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    /// The user name.
    u: String,
    /// The user options of the connect reply.
    o: Map<String, Value>,
    /// The reply's `override_payload`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<Value>,
    /// Digest of the cookies the connect webhook saw.
    c: String,
    /// When the connect webhook said yes (Unix ms).
    a: i64,
    /// Issued and expires (Unix ms).
    i: i64,
    x: i64,
    /// The TTL, in seconds, that renewed tickets keep.
    t: u32,
    /// Channels the connection may rejoin without their subscribe webhook.
    ch: Vec<String>,
}

/// A connection's part in resume tickets, kept by its session.
#[derive(Debug)]
pub struct Resumable {
    ttl: u32,
    cookie: String,
    payload: Option<Value>,
    authorized_ms: i64,
    /// Channels this connection was let into (a webhook said yes, or needed not be asked).
    approved: Vec<Box<str>>,
    /// Channels of the ticket it resumed with that it has not joined again yet.
    pending: Vec<Box<str>>,
    /// When the ticket it resumed with was issued: a pending channel counts only while that
    /// ticket is not revoked.
    resumed_from: i64,
}

/// A CONNECT's ticket that holds.
pub struct Opened(Body);

/// Counts a resume attempt by result.
fn counted<T>(result: &'static str, value: Option<T>) -> Option<T> {
    crate::metrics::resume(result);
    value
}

impl Hub {
    pub fn resume_key(&self) -> &ResumeKey {
        &self.resume_key
    }

    /// The ticket's body, if it holds for a connection with these `cookies`; otherwise `None`
    /// (counted by why), and the CONNECT asks the web app as usual.
    pub(super) async fn open_ticket(&self, ticket: &str, cookies: &str) -> Option<Opened> {
        let Some(body) = self.resume_key.open(ticket) else {
            return counted("invalid", None);
        };
        let now = now_ms();
        if body.x <= now || now - body.a > MAX_SESSION_AGE_MS {
            return counted("expired", None);
        }
        if body.c != self.resume_key.cookie_digest(cookies) {
            return counted("other_session", None);
        }
        match self.engine.tickets_revoked(&body.u).await {
            Ok(Some(at)) if at >= body.i => counted("revoked", None),
            Ok(_) => counted("resumed", Some(Opened(body))),
            Err(e) => {
                tracing::warn!("could not check a resume ticket's revocation: {e}");
                counted("unchecked", None)
            }
        }
    }

    /// Revokes every resume ticket of `user` issued so far, on every node.
    pub async fn revoke_tickets(&self, user: &str) -> Result<(), super::HubError> {
        let keep = Duration::from_secs(MAX_RESUME_TTL.into())
            + Duration::from_millis(2 * REVOKE_MARGIN_MS as u64);
        self.engine
            .revoke_tickets(user, now_ms() + REVOKE_MARGIN_MS, keep)
            .await?;
        Ok(())
    }

    /// Whether a resumed connection's pending channels still count.
    pub async fn resumed_ticket_holds(&self, user: &str, r: &Resumable) -> bool {
        match self.engine.tickets_revoked(user).await {
            Ok(at) => at.is_none_or(|at| at < r.resumed_from),
            Err(_) => false,
        }
    }

    /// A fresh ticket for a connection of `user`, as a RESUME frame: its channels are the ones
    /// it was let into that the user is still in (or has yet to rejoin). `None` (logged) when
    /// the engine cannot say.
    pub async fn ticket_frame(&self, user: &str, r: &Resumable) -> Option<OutFrame> {
        let found = async {
            let options = self.engine.user_options(user).await?;
            let channels = self.engine.user_channels(user).await?;
            Ok::<_, crate::engine::EngineError>((options, channels))
        };
        let (options, channels) = match found.await {
            Ok((Some(options), channels)) => (options, channels),
            Ok((None, _)) => return None,
            Err(e) => {
                tracing::warn!("no fresh resume ticket for {user}: {e}");
                return None;
            }
        };
        let kept: Vec<&str> = r
            .approved
            .iter()
            .map(|c| &**c)
            .filter(|c| r.pending.iter().any(|p| &**p == *c) || channels.iter().any(|u| &**u == *c))
            .collect();
        let ticket = self.seal_ticket(user, &options, r, &kept)?;
        Some(OutFrame::new(
            "RESUME",
            &args([("resume", json!(ticket)), ("resume_ttl", json!(r.ttl))]),
        ))
    }

    fn seal_ticket(
        &self,
        user: &str,
        options: &UserOptions,
        r: &Resumable,
        channels: &[&str],
    ) -> Option<String> {
        let now = now_ms();
        let o = match options.to_json() {
            Value::Object(o) => o,
            _ => Map::new(),
        };
        self.resume_key.seal(&Body {
            u: user.to_owned(),
            o,
            p: r.payload.clone(),
            c: r.cookie.clone(),
            a: r.authorized_ms,
            i: now,
            x: now + i64::from(r.ttl) * 1000,
            t: r.ttl,
            ch: channels.iter().map(|c| (*c).to_owned()).collect(),
        })
    }

    /// CONNECTED's arguments for a connection that takes part in tickets: `resume` and
    /// `resume_ttl` added to `connected` (nothing if no ticket could be made).
    pub(super) fn add_ticket(
        &self,
        connected: &mut Map<String, Value>,
        user: &str,
        options: &UserOptions,
        r: &Resumable,
    ) {
        let channels: Vec<&str> = r.approved.iter().map(|c| &**c).collect();
        if let Some(ticket) = self.seal_ticket(user, options, r, &channels) {
            connected.insert("resume".to_owned(), json!(ticket));
            connected.insert("resume_ttl".to_owned(), json!(r.ttl));
        }
    }
}

impl Opened {
    pub fn user(&self) -> &str {
        &self.0.u
    }

    pub fn options(&self) -> &Map<String, Value> {
        &self.0.o
    }

    pub fn payload(&self) -> Option<&Value> {
        self.0.p.as_ref()
    }

    /// The resumed connection's state: the ticket's channels may be joined again unasked.
    pub fn resumable(self) -> Resumable {
        let channels: Vec<Box<str>> = self.0.ch.into_iter().map(String::into_boxed_str).collect();
        Resumable {
            ttl: self.0.t.clamp(1, MAX_RESUME_TTL),
            cookie: self.0.c,
            payload: self.0.p,
            authorized_ms: self.0.a,
            approved: channels.clone(),
            pending: channels,
            resumed_from: self.0.i,
        }
    }
}

impl Resumable {
    /// The state of a connection the connect webhook let in, when its reply has a valid
    /// `resume_ttl` (a positive number of seconds, cut to [`MAX_RESUME_TTL`]); `approved`: the
    /// reply's auto_subscribe channels.
    pub fn from_reply(
        hub: &Hub,
        reply: &Map<String, Value>,
        cookies: &str,
        approved: Vec<String>,
    ) -> Option<Resumable> {
        let ttl = reply.get("resume_ttl")?.as_f64()?;
        if ttl.is_nan() || ttl < 1.0 {
            return None;
        }
        let ttl = ttl.min(f64::from(MAX_RESUME_TTL)) as u32;
        Some(Resumable {
            ttl,
            cookie: hub.resume_key.cookie_digest(cookies),
            payload: reply.get("override_payload").cloned(),
            authorized_ms: now_ms(),
            approved: approved.into_iter().map(String::into_boxed_str).collect(),
            pending: Vec::new(),
            resumed_from: 0,
        })
    }

    /// Whether `channel` is one of the resumed ticket's, not joined again yet (it is no longer
    /// after this call).
    pub fn take_pending(&mut self, channel: &str) -> bool {
        let before = self.pending.len();
        self.pending.retain(|c| &**c != channel);
        self.pending.len() != before
    }

    /// Forgets every pending channel (their ticket was revoked, or they were not rejoined by
    /// the first renewal).
    pub fn drop_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.approved.retain(|c| !pending.contains(c));
    }

    /// Records that the connection is in `channel` (true if it is new to the ticket).
    pub fn approve(&mut self, channel: &str) -> bool {
        if self.approved.iter().any(|c| &**c == channel) {
            return false;
        }
        self.approved.push(channel.into());
        true
    }

    /// Records that the connection left `channel` (true if the ticket had it).
    pub fn forget(&mut self, channel: &str) -> bool {
        let before = self.approved.len();
        self.approved.retain(|c| &**c != channel);
        self.take_pending(channel);
        self.approved.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Body {
        Body {
            u: "ann".into(),
            o: Map::new(),
            p: None,
            c: "c".into(),
            a: 1,
            i: 2,
            x: 3,
            t: 60,
            ch: vec!["lobby".into()],
        }
    }

    #[test]
    fn a_ticket_opens_only_with_its_key_and_unchanged() {
        let key = ResumeKey::from_secret("a secret of sixteen+");
        let ticket = key.seal(&body()).unwrap();
        assert_eq!(key.open(&ticket).unwrap().u, "ann");
        assert!(ResumeKey::from_secret("another secret!!!")
            .open(&ticket)
            .is_none());
        assert!(ResumeKey::random().open(&ticket).is_none());
        let (b, t) = ticket.split_once('.').unwrap();
        let mut forged = body();
        forged.u = "admin".into();
        let forged_body = B64.encode(serde_json::to_vec(&forged).unwrap());
        assert!(key.open(&format!("{forged_body}.{t}")).is_none());
        assert!(key.open(b).is_none());
        assert!(key.open("").is_none());
    }

    #[test]
    fn channels_that_do_not_fit_are_left_out() {
        let key = ResumeKey::random();
        let mut big = body();
        big.ch = (0..1000).map(|i| format!("channel-{i:04}")).collect();
        let ticket = key.seal(&big).unwrap();
        assert!(ticket.len() < crate::protocol::MAX_TICKET_LEN);
        let opened = key.open(&ticket).unwrap();
        assert!(!opened.ch.is_empty() && opened.ch.len() < 1000);
        assert_eq!(opened.ch[0], "channel-0000");
    }

    #[test]
    fn cookie_digests_depend_on_the_key_and_the_cookies() {
        let key = ResumeKey::random();
        assert_eq!(key.cookie_digest("sid=1"), key.cookie_digest("sid=1"));
        assert_ne!(key.cookie_digest("sid=1"), key.cookie_digest("sid=2"));
        assert_ne!(
            key.cookie_digest("sid=1"),
            ResumeKey::random().cookie_digest("sid=1")
        );
    }
}
