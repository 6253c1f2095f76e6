//! The webhooks' own HTTP/1.1 client for `http://` URLs, the web app on the same host or network.
//!
//! A webhook is one small POST and one small reply, and the connect path makes one or two of them
//! per client. The general client (reqwest on hyper) spent more CPU on each than the kernel did:
//! a channel hop to a connection task and back, a URL parsed three times, the redirect and pool
//! layers (`docs/BENCHMARKS.md`, "The connect path's profile"). This one writes the request and
//! reads the reply in the calling task, on a kept-alive connection taken from a small pool.
//! `https://` webhooks still go through reqwest (TLS, certificates).
//!
//! Bounds: headers ≤ 64 KiB and 64 lines, the body ≤ the caller's cap (chunked or not), the whole
//! exchange ≤ the caller's timeout; idle connections ≤ `max_idle` per host, for ≤ `idle_for`,
//! each keeping a read buffer of at most 16 KiB.

use parking_lot::Mutex;
use reqwest::header::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest reply head (status line and headers) read.
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines in a reply.
const MAX_HEADERS: usize = 64;
/// Bytes asked of the socket per read: a webhook reply fits in one.
const READ_CHUNK: usize = 8 * 1024;

/// A POST as the webhook client builds it, for either HTTP client.
pub struct Outgoing {
    pub url: reqwest::Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

/// What the webhook client reads of a reply.
pub struct Reply {
    pub status: u16,
    /// The first `Set-Cookie` header.
    pub set_cookie: Option<String>,
    pub body: Vec<u8>,
}

/// Why an exchange failed; `Stale` only before any byte of a reply arrived.
enum Failed {
    /// The connection was closed or reset before the reply began: on a kept-alive connection,
    /// the server had let it go while idle, and did not see the request.
    Stale(String),
    Other(String),
}

pub struct Http1 {
    /// Idle kept-alive connections per `host:port`, newest last. A short lock: taken to pop or
    /// push one connection, never across an await.
    idle: Mutex<HashMap<String, Vec<(Conn, Instant)>>>,
    max_idle: usize,
    idle_for: Duration,
    user_agent: &'static str,
}

impl Http1 {
    pub fn new(max_idle: usize, idle_for: Duration, user_agent: &'static str) -> Http1 {
        Http1 {
            idle: Mutex::new(HashMap::new()),
            max_idle,
            idle_for,
            user_agent,
        }
    }

    /// POSTs `req` and reads the reply, whose body may be at most `max_body` bytes. A kept-alive
    /// connection the server had closed is replaced once by a new one.
    pub async fn post(&self, req: &Outgoing, max_body: usize) -> Result<Reply, String> {
        let host = req.url.host_str().ok_or("the URL has no host")?;
        let port = req.url.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let head = self.head(req, host);
        if let Some(conn) = self.checkout(&authority) {
            match conn.exchange(&head, &req.body, max_body).await {
                Ok((reply, conn)) => {
                    if let Some(conn) = conn {
                        self.checkin(authority, conn);
                    }
                    return Ok(reply);
                }
                Err(Failed::Stale(_)) => {}
                Err(Failed::Other(e)) => return Err(e),
            }
        }
        let stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        // Small writes, each a whole request: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            stream,
            buf: Vec::new(),
        };
        match conn.exchange(&head, &req.body, max_body).await {
            Ok((reply, conn)) => {
                if let Some(conn) = conn {
                    self.checkin(authority, conn);
                }
                Ok(reply)
            }
            Err(Failed::Stale(e) | Failed::Other(e)) => Err(e),
        }
    }

    /// The request line and headers. Header values cannot hold CR or LF (`HeaderValue`), so
    /// nothing the client or the web app controls can add a header.
    fn head(&self, req: &Outgoing, host: &str) -> Vec<u8> {
        let url = &req.url;
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(b"POST ");
        head.extend_from_slice(url.path().as_bytes());
        if let Some(q) = url.query() {
            head.push(b'?');
            head.extend_from_slice(q.as_bytes());
        }
        head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        head.extend_from_slice(host.as_bytes());
        if let Some(port) = url.port() {
            head.extend_from_slice(format!(":{port}").as_bytes());
        }
        head.extend_from_slice(b"\r\nuser-agent: ");
        head.extend_from_slice(self.user_agent.as_bytes());
        head.extend_from_slice(b"\r\naccept: */*\r\ncontent-length: ");
        head.extend_from_slice(req.body.len().to_string().as_bytes());
        head.extend_from_slice(b"\r\n");
        for (name, value) in &req.headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    /// The newest idle connection to `authority` that is still open, if any. A host left with
    /// no idle connection leaves the map, which so holds only hosts with some.
    fn checkout(&self, authority: &str) -> Option<Conn> {
        let mut idle = self.idle.lock();
        let conns = idle.get_mut(authority)?;
        let mut found = None;
        while let Some((conn, since)) = conns.pop() {
            if since.elapsed() < self.idle_for && conn.still_idle() {
                found = Some(conn);
                break;
            }
        }
        if conns.is_empty() {
            idle.remove(authority);
        }
        found
    }

    fn checkin(&self, authority: String, conn: Conn) {
        let mut idle = self.idle.lock();
        let conns = idle.entry(authority).or_default();
        // Oldest first (each is pushed as it comes back, and taken from the end), so the ones
        // past `idle_for`, or beyond `max_idle`, are a run at the front: no scan of the rest.
        let now = Instant::now();
        let expired = conns.partition_point(|(_, since)| now - *since >= self.idle_for);
        let over = (conns.len() - expired + 1).saturating_sub(self.max_idle);
        conns.drain(..expired + over);
        conns.push((conn, now));
    }
}

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet used.
    buf: Vec<u8>,
}

impl Conn {
    /// Whether the server has neither closed the connection nor sent anything since the last
    /// reply (one non-blocking read, which finds nothing to read on a healthy connection).
    fn still_idle(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Sends one request and reads its reply; the connection comes back if it may be reused.
    async fn exchange(
        mut self,
        head: &[u8],
        body: &[u8],
        max_body: usize,
    ) -> Result<(Reply, Option<Conn>), Failed> {
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head);
        request.extend_from_slice(body);
        if let Err(e) = self.stream.write_all(&request).await {
            return Err(Failed::Stale(format!("sending the request: {e}")));
        }
        let parsed = loop {
            if let Some(parsed) = parse_head(&self.buf).map_err(Failed::Other)? {
                break parsed;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Failed::Other(format!(
                    "reply headers larger than {MAX_HEAD} bytes"
                )));
            }
            match self.fill().await {
                Ok(0) if self.buf.is_empty() => {
                    return Err(Failed::Stale("the connection closed before a reply".into()))
                }
                Ok(0) => return Err(Failed::Other("the reply ended in its headers".into())),
                Ok(_) => {}
                Err(e) if self.buf.is_empty() => {
                    return Err(Failed::Stale(format!("reading the reply: {e}")))
                }
                Err(e) => return Err(Failed::Other(format!("reading the reply: {e}"))),
            }
        };
        self.buf.drain(..parsed.head_len);
        let bytes = match parsed.length {
            Length::None => Vec::new(),
            Length::Exact(n) if n > max_body => return Err(Failed::Other(too_large(max_body))),
            Length::Exact(n) => self.exact(n).await?,
            Length::Chunked => self.chunked(max_body).await?,
            Length::UntilClose => self.until_close(max_body).await?,
        };
        let reply = Reply {
            status: parsed.status,
            set_cookie: parsed.set_cookie,
            body: bytes,
        };
        // Reused only when the reply ended where its framing said and nothing else came.
        let reusable =
            parsed.keep_alive && parsed.length != Length::UntilClose && self.buf.is_empty();
        // An idle connection keeps at most a small read buffer (a large reply's is let go).
        if self.buf.capacity() > 2 * READ_CHUNK {
            self.buf = Vec::new();
        }
        Ok((reply, reusable.then_some(self)))
    }

    /// Reads more bytes into `buf`; 0 at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let n = self.stream.read(&mut self.buf[len..]).await;
        self.buf.truncate(len + *n.as_ref().unwrap_or(&0));
        n
    }

    /// Makes sure `n` bytes are buffered.
    async fn want(&mut self, n: usize) -> Result<(), Failed> {
        while self.buf.len() < n {
            match self.fill().await {
                Ok(0) => return Err(Failed::Other("the reply ended early".into())),
                Ok(_) => {}
                Err(e) => return Err(Failed::Other(format!("reading the reply: {e}"))),
            }
        }
        Ok(())
    }

    async fn exact(&mut self, n: usize) -> Result<Vec<u8>, Failed> {
        self.want(n).await?;
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// A `Transfer-Encoding: chunked` body: `<hex size>[;ext]\r\n<data>\r\n`… `0\r\n`, trailers,
    /// `\r\n`.
    async fn chunked(&mut self, max_body: usize) -> Result<Vec<u8>, Failed> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| Failed::Other("a bad chunk size in the reply".into()))?;
            if size == 0 {
                // Trailers, if any, up to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > max_body {
                return Err(Failed::Other(too_large(max_body)));
            }
            self.want(size + 2).await?;
            body.extend_from_slice(&self.buf[..size]);
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(Failed::Other(
                    "a chunk of the reply without its CRLF".into(),
                ));
            }
            self.buf.drain(..size + 2);
        }
    }

    /// One CRLF-ended line (without it), of at most 4 KiB.
    async fn line(&mut self) -> Result<Vec<u8>, Failed> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..at].to_vec();
                self.buf.drain(..at + 2);
                return Ok(line);
            }
            if self.buf.len() > 4096 {
                return Err(Failed::Other(
                    "a chunk line over 4096 bytes in the reply".into(),
                ));
            }
            let have = self.buf.len();
            self.want(have + 1).await?;
        }
    }

    async fn until_close(&mut self, max_body: usize) -> Result<Vec<u8>, Failed> {
        loop {
            if self.buf.len() > max_body {
                return Err(Failed::Other(too_large(max_body)));
            }
            match self.fill().await {
                Ok(0) => return Ok(std::mem::take(&mut self.buf)),
                Ok(_) => {}
                Err(e) => return Err(Failed::Other(format!("reading the reply: {e}"))),
            }
        }
    }
}

fn too_large(max: usize) -> String {
    format!("reply larger than {max} bytes")
}

/// How a reply's body is framed.
#[derive(Debug, PartialEq)]
enum Length {
    None,
    Exact(usize),
    Chunked,
    UntilClose,
}

struct Head {
    head_len: usize,
    status: u16,
    set_cookie: Option<String>,
    length: Length,
    keep_alive: bool,
}

/// The reply's head once complete (`None`: more bytes needed). Interim 1xx replies are skipped.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut offset = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(&buf[offset..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("a malformed reply: {e}")),
        };
        let status = resp.code.unwrap_or_default();
        if (100..200).contains(&status) {
            offset += len;
            continue;
        }
        let mut head = Head {
            head_len: offset + len,
            status,
            set_cookie: None,
            length: Length::UntilClose,
            // HTTP/1.1 keeps the connection unless told not to; 1.0 only when told to.
            keep_alive: resp.version == Some(1),
        };
        for h in resp.headers.iter() {
            let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = value
                    .parse()
                    .map_err(|_| format!("a bad Content-Length in the reply: {value:?}"))?;
                if head.length != Length::Chunked {
                    head.length = Length::Exact(n);
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                if value.to_ascii_lowercase().ends_with("chunked") {
                    head.length = Length::Chunked;
                }
            } else if h.name.eq_ignore_ascii_case("connection") {
                let value = value.to_ascii_lowercase();
                if value.contains("close") {
                    head.keep_alive = false;
                } else if value.contains("keep-alive") {
                    head.keep_alive = true;
                }
            } else if h.name.eq_ignore_ascii_case("set-cookie") && head.set_cookie.is_none() {
                head.set_cookie = Some(value.to_owned());
            }
        }
        // No body after these, whatever the headers say.
        if status == 204 || status == 304 {
            head.length = Length::None;
        }
        return Ok(Some(head));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_framed_as_http_1_1_says() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n[true, {}]\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.head_len), (200, 39));
        assert_eq!(h.length, Length::Exact(12));
        assert!(h.keep_alive);

        let h = parse_head(b"HTTP/1.0 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.length, Length::UntilClose);
        assert!(!h.keep_alive);
        assert_eq!(h.set_cookie.as_deref(), Some("a=1"));

        let h = parse_head(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.length, Length::Chunked);
        assert!(!h.keep_alive);

        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")
            .unwrap()
            .is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }
}
