//! One client connection's state machine, independent of the transport that carries it.
//!
//! A transport feeds inbound bytes to [`Session::receive`] and writes what the session's
//! [`Outbox`] yields. Frames of one connection are handled strictly one after another (a webhook
//! in flight delays only this connection), which is what keeps each client's actions ordered.

mod outbox;

pub use outbox::{CloseReason, Drained, Outbox};

use crate::hub::{raw, Conn, Hub, HubError, Origin, User};
use crate::protocol::{args, FrameDecoder, FrameTooLarge, InFrame, OutFrame};
use serde_json::{json, Value};
use std::sync::Arc;

/// A frame the session refuses, with the text the client sees in its ERROR frame.
#[derive(Debug, thiserror::Error)]
enum FrameFault {
    #[error("{0}")]
    Bad(&'static str),
    #[error("Unknown frame type {}", cut(.0, MAX_ECHOED_NAME))]
    Unknown(String),
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

pub struct Session {
    hub: Arc<Hub>,
    id: Arc<str>,
    remote_addr: String,
    outbox: Arc<Outbox>,
    decoder: FrameDecoder,
    /// Set once CONNECT succeeded.
    connected: Option<(Arc<Conn>, Arc<User>)>,
    /// CONNECTs refused so far, and how many close the connection.
    failed_connects: u32,
    max_failed_connects: u32,
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
        remote_addr: String,
        outbox: Arc<Outbox>,
        limits: SessionLimits,
    ) -> Session {
        Session {
            hub,
            id: new_connection_id(),
            remote_addr,
            outbox,
            decoder: FrameDecoder::new(limits.max_frame),
            connected: None,
            failed_connects: 0,
            max_failed_connects: limits.max_failed_connects,
        }
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
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
                    let connect = frame.name == "CONNECT";
                    match self.handle(frame).await {
                        Ok(()) => {}
                        Err(fault) => {
                            self.error(Some(id), &fault.to_string());
                            if connect && matches!(fault, FrameFault::Hub(_)) {
                                self.connect_refused();
                            }
                        }
                    }
                }
                Err(e) => self.error(e.id, e.msg),
            }
        }
        Ok(())
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

    fn error(&self, id: Option<i64>, msg: &str) {
        self.outbox.push(&OutFrame::new(
            "ERROR",
            &args([("id", json!(id)), ("msg", json!(cut(msg, MAX_ERROR_MSG)))]),
        ));
    }

    async fn handle(&mut self, frame: InFrame) -> Result<(), FrameFault> {
        let a = &frame.args;
        if frame.name == "CONNECT" {
            return self.connect(a).await;
        }
        if !matches!(
            frame.name.as_str(),
            "SUBSCRIBE" | "UNSUBSCRIBE" | "PUBLISH" | "MESSAGE"
        ) {
            return Err(FrameFault::Unknown(frame.name));
        }
        let Some((conn, user)) = &self.connected else {
            return Err(FrameFault::Bad("Not connected"));
        };
        let origin = Origin::client(conn);
        match frame.name.as_str() {
            "SUBSCRIBE" => {
                let channel = name_arg(a.get("channel_name"), "channel_name required")?;
                // A channel destroyed between its creation and this action is created again,
                // once, rather than reporting a missing channel the client never named.
                let hub = &self.hub;
                match hub.subscribe(user, &origin, channel, true).await {
                    Err(HubError::NoChannel(_)) => {
                        hub.subscribe(user, &origin, channel, true).await?
                    }
                    other => other?,
                }
            }
            "UNSUBSCRIBE" => {
                let channel = name_arg(a.get("channel_name"), "channel_name required")?;
                self.hub
                    .unsubscribe(user, &origin, channel, true, false)
                    .await?;
            }
            "PUBLISH" => {
                let channel = name_arg(a.get("channel_name"), "channel_name required")?;
                let payload = raw(&payload_arg(a.get("payload"))?);
                let publish = || {
                    self.hub.publish(
                        Some(user),
                        Some(&user.name),
                        &origin,
                        channel,
                        &payload,
                        true,
                    )
                };
                match publish().await {
                    Err(HubError::NoChannel(_)) => publish().await?,
                    other => other?,
                }
            }
            _ => {
                let name = name_arg(a.get("name"), "name required")?;
                let payload = payload_arg(a.get("payload"))?;
                self.hub.message(user, &origin, name, payload, true).await?;
            }
        }
        Ok(())
    }

    async fn connect(&mut self, a: &serde_json::Map<String, Value>) -> Result<(), FrameFault> {
        if self.connected.is_some() {
            return Err(FrameFault::Bad("Already logged in"));
        }
        let cookie = match a.get("cookie_string") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => return Err(FrameFault::Bad("Missing cookie_string")),
            Some(_) => return Err(FrameFault::Bad("Invalid cookie_string (must be string)")),
        };
        let payload_text = match a.get("payload") {
            None | Some(Value::Null) => "null".to_owned(),
            Some(Value::String(s)) if serde_json::from_str::<Value>(s).is_ok() => s.clone(),
            Some(_) => return Err(FrameFault::Bad("Invalid json for payload")),
        };
        let conn = Arc::new(Conn {
            id: self.id.clone(),
            cookie,
            remote_addr: self.remote_addr.clone(),
            outbox: self.outbox.clone(),
        });
        let user = self.hub.connect(&conn, payload_text).await?;
        self.connected = Some((conn, user));
        Ok(())
    }

    /// The transport is gone: run the hub's close handling (a no-op before CONNECT succeeded).
    pub async fn close(self) {
        if let Some((conn, user)) = self.connected {
            self.hub.connection_closed(&user, &conn).await;
        }
    }
}

/// A required, non-empty string argument.
fn name_arg<'a>(v: Option<&'a Value>, missing: &'static str) -> Result<&'a str, FrameFault> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) | Some(Value::String(_)) => Err(FrameFault::Bad(missing)),
        Some(_) => Err(FrameFault::Bad("Invalid name (must be a non-empty string)")),
    }
}

/// A payload argument: JSON text in a string, `null` when absent.
fn payload_arg(v: Option<&Value>) -> Result<Value, FrameFault> {
    match v {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|_| FrameFault::Bad("Invalid json for payload"))
        }
        Some(_) => Err(FrameFault::Bad("Invalid json for payload")),
    }
}
