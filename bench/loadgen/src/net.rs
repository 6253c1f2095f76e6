//! Client sockets: optional source-address spreading and the WebSocket upgrade.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout_at;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// A subscriber's connection: a WebSocket, or plain HTTP.
pub enum Link {
    Ws(Ws),
    Http(HttpLink),
}

/// A subscriber over plain HTTP: a CSP session (hookbox over long polls), or an HTTP stream
/// (Pushpin).
pub enum HttpLink {
    Csp(crate::csp::CspLink),
    Stream(crate::stream::StreamLink),
}

impl HttpLink {
    pub async fn send(&mut self, text: &str, deadline: Instant) -> Result<(), String> {
        match self {
            HttpLink::Csp(c) => c.send(text, deadline).await,
            HttpLink::Stream(_) => Err("an HTTP stream only receives".into()),
        }
    }

    /// What arrived next (may be empty: a long poll that ended with nothing).
    pub async fn next(&mut self) -> Result<Vec<u8>, String> {
        match self {
            HttpLink::Csp(c) => c.next().await,
            HttpLink::Stream(s) => s.next().await,
        }
    }
}

/// Source addresses for client sockets. Empty = let the kernel pick (127.0.0.1).
#[derive(Clone, Debug, Default)]
pub struct SrcPool {
    addrs: Vec<Ipv4Addr>,
}

impl SrcPool {
    /// Above `spread_above` connections in total, spread over 127.0.0.2–127.0.0.9 (one
    /// loopback source address gives ~28k ephemeral ports towards one server port).
    pub fn new(total_conns: usize, spread_above: usize) -> Self {
        if total_conns > spread_above {
            SrcPool {
                addrs: (2..=9).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect(),
            }
        } else {
            SrcPool::default()
        }
    }

    pub fn pick(&self, i: usize) -> Option<Ipv4Addr> {
        if self.addrs.is_empty() {
            None
        } else {
            Some(self.addrs[i % self.addrs.len()])
        }
    }

    pub fn describe(&self) -> String {
        if self.addrs.is_empty() {
            "kernel-chosen".into()
        } else {
            format!(
                "{} addrs {}..{}",
                self.addrs.len(),
                self.addrs[0],
                self.addrs[self.addrs.len() - 1]
            )
        }
    }
}

/// TCP connect (bound to `src` first, if given) and WebSocket upgrade, within `deadline`.
pub async fn ws_connect(
    url: &str,
    dst: SocketAddr,
    src: Option<Ipv4Addr>,
    deadline: Instant,
) -> Result<Ws, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if let Some(a) = src {
        sock.bind(SocketAddr::from((a, 0)))
            .map_err(|e| format!("bind {a}: {e}"))?;
    }
    let stream = match timeout_at(deadline.into(), sock.connect(dst)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect: {e}")),
        Err(_) => return Err("connect: timeout".into()),
    };
    let _ = stream.set_nodelay(true);
    // Small read buffer: thousands of mostly idle sockets in one process.
    let cfg = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    match timeout_at(
        deadline.into(),
        tokio_tungstenite::client_async_with_config(url, stream, Some(cfg)),
    )
    .await
    {
        Ok(Ok((ws, _resp))) => Ok(ws),
        Ok(Err(e)) => Err(format!("upgrade: {e}")),
        Err(_) => Err("upgrade: timeout".into()),
    }
}
