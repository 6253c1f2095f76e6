//! The frames a client may send (spec §2.2), typed, with their arguments checked. Pure: no I/O,
//! no state, so it is unit-tested and fuzzed on its own.

use serde_json::{Map, Value};

/// A client frame whose arguments are well formed.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `cookie` is the client's cookie string; `payload` its connect payload as JSON text
    /// (`"null"` when absent), kept as text because CONNECTED echoes it verbatim.
    Connect {
        cookie: String,
        payload: String,
        /// `recovery: true`: the client wants channel positions (an `offset` on each PUBLISH,
        /// `epoch` and `offset` on its own SUBSCRIBE) so that it can recover after a reconnect.
        recovery: bool,
        /// `resume`: the client takes part in resume tickets (see `hub::resume`).
        resume: Option<ResumeArg>,
    },
    Subscribe {
        channel: String,
        /// Where the client was in the channel before it reconnected, to be sent what it missed.
        recover: Option<Position>,
    },
    Unsubscribe {
        channel: String,
    },
    Publish {
        channel: String,
        payload: Value,
    },
    /// A private message to the user named `recipient`.
    Message {
        recipient: String,
        payload: Value,
    },
    /// RESUME: a connected client asks for a fresh resume ticket.
    Resume,
}

impl ClientFrame {
    /// Which frame this is.
    pub fn kind(&self) -> FrameKind {
        match self {
            ClientFrame::Connect { .. } => FrameKind::Connect,
            ClientFrame::Subscribe { .. } => FrameKind::Subscribe,
            ClientFrame::Unsubscribe { .. } => FrameKind::Unsubscribe,
            ClientFrame::Publish { .. } => FrameKind::Publish,
            ClientFrame::Message { .. } => FrameKind::Message,
            ClientFrame::Resume => FrameKind::Resume,
        }
    }
}

/// CONNECT's `resume` argument: `true` asks for a ticket, a string presents one.
#[derive(Debug, Clone, PartialEq)]
pub enum ResumeArg {
    Ask,
    Ticket(String),
}

/// The longest ticket looked at: the server's own are under 6 KB; a longer one is treated as
/// no ticket (a plain request for one), so that nobody makes the server hash megabytes.
pub const MAX_TICKET_LEN: usize = 8192;

/// A client's place in a channel's stream: the channel's epoch (a channel destroyed and created
/// again has a new one) and the offset of the last event it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub offset: u64,
}

/// Which frame a name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Connect,
    Subscribe,
    Unsubscribe,
    Publish,
    Message,
    Resume,
}

/// Why a frame's arguments were refused; the text is the original server's ERROR `msg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgError(pub &'static str);

impl FrameKind {
    /// The frame's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Connect => "CONNECT",
            FrameKind::Subscribe => "SUBSCRIBE",
            FrameKind::Unsubscribe => "UNSUBSCRIBE",
            FrameKind::Publish => "PUBLISH",
            FrameKind::Message => "MESSAGE",
            FrameKind::Resume => "RESUME",
        }
    }

    /// The kind of a frame named `name`, if it is one a client may send.
    pub fn of(name: &str) -> Option<FrameKind> {
        Some(match name {
            "CONNECT" => FrameKind::Connect,
            "SUBSCRIBE" => FrameKind::Subscribe,
            "UNSUBSCRIBE" => FrameKind::Unsubscribe,
            "PUBLISH" => FrameKind::Publish,
            "MESSAGE" => FrameKind::Message,
            "RESUME" => FrameKind::Resume,
            _ => return None,
        })
    }

    /// Checks the arguments of a frame of this kind.
    pub fn parse(self, args: &Map<String, Value>) -> Result<ClientFrame, ArgError> {
        let channel = || name_arg(args.get("channel_name"), "channel_name required");
        Ok(match self {
            FrameKind::Connect => {
                let cookie = match args.get("cookie_string") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => return Err(ArgError("Missing cookie_string")),
                    Some(_) => return Err(ArgError("Invalid cookie_string (must be string)")),
                };
                let payload = match args.get("payload") {
                    None | Some(Value::Null) => "null".to_owned(),
                    Some(Value::String(s)) if serde_json::from_str::<Value>(s).is_ok() => s.clone(),
                    Some(_) => return Err(ArgError("Invalid json for payload")),
                };
                let recovery = match args.get("recovery") {
                    None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                    Some(Value::Bool(true)) => true,
                    Some(_) => return Err(ArgError("Invalid recovery (must be true or false)")),
                };
                let resume = match args.get("resume") {
                    None | Some(Value::Null) | Some(Value::Bool(false)) => None,
                    Some(Value::Bool(true)) => Some(ResumeArg::Ask),
                    Some(Value::String(t)) if t.len() <= MAX_TICKET_LEN => {
                        Some(ResumeArg::Ticket(t.clone()))
                    }
                    Some(Value::String(_)) => Some(ResumeArg::Ask),
                    Some(_) => {
                        return Err(ArgError("Invalid resume (must be true or a ticket string)"))
                    }
                };
                ClientFrame::Connect {
                    cookie,
                    payload,
                    recovery,
                    resume,
                }
            }
            FrameKind::Subscribe => ClientFrame::Subscribe {
                channel: channel()?,
                recover: position_arg(args.get("recover"))?,
            },
            FrameKind::Unsubscribe => ClientFrame::Unsubscribe {
                channel: channel()?,
            },
            FrameKind::Publish => ClientFrame::Publish {
                channel: channel()?,
                payload: payload_arg(args.get("payload"))?,
            },
            FrameKind::Message => ClientFrame::Message {
                recipient: name_arg(args.get("name"), "name required")?,
                payload: payload_arg(args.get("payload"))?,
            },
            FrameKind::Resume => ClientFrame::Resume,
        })
    }
}

/// A required, non-empty string argument.
fn name_arg(v: Option<&Value>, missing: &'static str) -> Result<String, ArgError> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => Err(ArgError(missing)),
        Some(_) => Err(ArgError("Invalid name (must be a non-empty string)")),
    }
}

/// The longest epoch a client may quote (the server's are 32 characters).
pub const MAX_EPOCH_LEN: usize = 64;

/// SUBSCRIBE's `recover`: `{"epoch": string, "offset": non-negative integer}`, or absent.
fn position_arg(v: Option<&Value>) -> Result<Option<Position>, ArgError> {
    const BAD: ArgError = ArgError("Invalid recover (must be {epoch: string, offset: integer})");
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let epoch = v.get("epoch").and_then(Value::as_str).ok_or(BAD)?;
    let offset = v.get("offset").and_then(Value::as_u64).ok_or(BAD)?;
    if epoch.len() > MAX_EPOCH_LEN {
        return Err(BAD);
    }
    Ok(Some(Position {
        epoch: epoch.to_owned(),
        offset,
    }))
}

/// A payload argument: JSON text in a string, `null` when absent.
fn payload_arg(v: Option<&Value>) -> Result<Value, ArgError> {
    match v {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|_| ArgError("Invalid json for payload"))
        }
        Some(_) => Err(ArgError("Invalid json for payload")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: FrameKind, args: Value) -> Result<ClientFrame, ArgError> {
        kind.parse(args.as_object().unwrap())
    }

    #[test]
    fn arguments_and_their_errors() {
        assert_eq!(
            parse(FrameKind::Connect, json!({"cookie_string": "a=1"})),
            Ok(ClientFrame::Connect {
                cookie: "a=1".into(),
                payload: "null".into(),
                recovery: false,
                resume: None,
            })
        );
        let connect = |resume| {
            parse(
                FrameKind::Connect,
                json!({"cookie_string": "", "resume": resume}),
            )
        };
        let resume_of = |f: Result<ClientFrame, ArgError>| match f {
            Ok(ClientFrame::Connect { resume, .. }) => Ok(resume),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(resume_of(connect(json!(true))), Ok(Some(ResumeArg::Ask)));
        assert_eq!(resume_of(connect(json!(false))), Ok(None));
        assert_eq!(
            resume_of(connect(json!("t.s"))),
            Ok(Some(ResumeArg::Ticket("t.s".into())))
        );
        // Too long to be one of ours: a plain request for a ticket.
        assert_eq!(
            resume_of(connect(json!("x".repeat(MAX_TICKET_LEN + 1)))),
            Ok(Some(ResumeArg::Ask))
        );
        assert_eq!(
            resume_of(connect(json!(3))),
            Err(ArgError("Invalid resume (must be true or a ticket string)"))
        );
        assert_eq!(parse(FrameKind::Resume, json!({})), Ok(ClientFrame::Resume));
        assert_eq!(
            parse(
                FrameKind::Connect,
                json!({"cookie_string": "", "recovery": "yes"})
            ),
            Err(ArgError("Invalid recovery (must be true or false)"))
        );
        assert_eq!(
            parse(
                FrameKind::Subscribe,
                json!({"channel_name": "a", "recover": {"epoch": "e", "offset": 4}})
            ),
            Ok(ClientFrame::Subscribe {
                channel: "a".into(),
                recover: Some(Position {
                    epoch: "e".into(),
                    offset: 4
                }),
            })
        );
        for bad in [
            json!({"epoch": "e", "offset": -1}),
            json!({"epoch": 1, "offset": 1}),
            json!({"offset": 1}),
            json!({"epoch": "e".repeat(65), "offset": 1}),
            json!(true),
        ] {
            assert_eq!(
                parse(
                    FrameKind::Subscribe,
                    json!({"channel_name": "a", "recover": bad})
                ),
                Err(ArgError(
                    "Invalid recover (must be {epoch: string, offset: integer})"
                ))
            );
        }
        assert_eq!(
            parse(FrameKind::Connect, json!({})),
            Err(ArgError("Missing cookie_string"))
        );
        assert_eq!(
            parse(
                FrameKind::Connect,
                json!({"cookie_string": "", "payload": "{"})
            ),
            Err(ArgError("Invalid json for payload"))
        );
        assert_eq!(
            parse(FrameKind::Subscribe, json!({"channel_name": ""})),
            Err(ArgError("channel_name required"))
        );
        assert_eq!(
            parse(FrameKind::Unsubscribe, json!({"channel_name": 3})),
            Err(ArgError("Invalid name (must be a non-empty string)"))
        );
        assert_eq!(
            parse(
                FrameKind::Publish,
                json!({"channel_name": "a", "payload": "[1]"})
            ),
            Ok(ClientFrame::Publish {
                channel: "a".into(),
                payload: json!([1])
            })
        );
        assert_eq!(
            parse(FrameKind::Message, json!({"payload": "1"})),
            Err(ArgError("name required"))
        );
        assert_eq!(FrameKind::of("NOPE"), None);
    }

    /// Arbitrary argument maps never panic.
    #[test]
    fn random_arguments_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let keys = [
            "cookie_string",
            "payload",
            "channel_name",
            "name",
            "recovery",
            "recover",
            "x",
        ];
        let values = [
            json!(null),
            json!(""),
            json!("a"),
            json!("{\"a\""),
            json!("[1, 2]"),
            json!(7),
            json!(true),
            json!([]),
            json!({}),
            json!({"epoch": "e", "offset": 1}),
        ];
        let kinds = [
            FrameKind::Connect,
            FrameKind::Subscribe,
            FrameKind::Unsubscribe,
            FrameKind::Publish,
            FrameKind::Message,
        ];
        for _ in 0..5000 {
            let mut args = Map::new();
            for _ in 0..rng.random_range(0..4) {
                let k = keys[rng.random_range(0..keys.len())];
                args.insert(k.into(), values[rng.random_range(0..values.len())].clone());
            }
            let _ = kinds[rng.random_range(0..kinds.len())].parse(&args);
        }
    }
}
