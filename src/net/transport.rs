//! The ways a connection reaches hookbox.

/// How a connection reaches hookbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Hixie,
    Csp,
    /// Server-sent events (`GET /sse`): the client only listens.
    Sse,
}

impl Transport {
    /// Every transport, in the order the admin console shows them.
    pub const ALL: [Transport; 4] = [
        Transport::WebSocket,
        Transport::Hixie,
        Transport::Csp,
        Transport::Sse,
    ];

    /// As metrics, logs and the admin console name it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Hixie => "hixie",
            Transport::Csp => "csp",
            Transport::Sse => "sse",
        }
    }

    pub fn from_name(name: &str) -> Option<Transport> {
        Some(match name {
            "websocket" => Transport::WebSocket,
            "hixie" => Transport::Hixie,
            "csp" => Transport::Csp,
            "sse" => Transport::Sse,
            _ => return None,
        })
    }
}
