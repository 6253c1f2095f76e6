//! The webhooks on the wire (ours: hookbox's own HTTP/1.1 client for `http://` web apps): every
//! framing a web app may answer with (Content-Length, chunked, until close, after an interim
//! `100 Continue`), kept-alive connections reused and replaced when the web app closed them,
//! and bounded replies; and an `https://` web app (reqwest, the system's certificates). The web
//! app here is written byte by byte, so that each framing is exactly what a server may send.

use crate::common;
use common::*;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One scripted answer: its bytes, written in these pieces, and whether the web app closes the
/// connection after it.
struct Answer {
    pieces: Vec<Vec<u8>>,
    close: bool,
}

fn answer(pieces: &[&str], close: bool) -> Answer {
    Answer {
        pieces: pieces.iter().map(|p| p.as_bytes().to_vec()).collect(),
        close,
    }
}

/// A connect reply approving `name`, framed by its Content-Length.
fn approving(name: &str) -> String {
    let body = format!("[true, {{\"name\": \"{name}\"}}]");
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A web app that answers each request with the next scripted answer, on whichever
/// connection it came. It reports each request's head and the connection it came on, numbered
/// by their first request (hookbox's startup probe opens one that carries none).
struct RawApp {
    port: u16,
    requests: mpsc::UnboundedReceiver<(usize, String)>,
}

impl RawApp {
    async fn start(answers: Vec<Answer>) -> RawApp {
        RawApp::start_with(answers, None).await
    }

    /// The same web app behind TLS (`acceptor`), when given.
    async fn start_with(
        answers: Vec<Answer>,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
    ) -> RawApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answers = Arc::new(parking_lot::Mutex::new(VecDeque::from(answers)));
        let (tx, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let numbers = Arc::new(AtomicUsize::new(0));
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (numbers, answers, tx) = (numbers.clone(), answers.clone(), tx.clone());
                match acceptor.clone() {
                    None => tokio::spawn(serve(socket, numbers, answers, tx)),
                    Some(tls) => tokio::spawn(async move {
                        // hookbox's startup probe opens a connection and closes it unencrypted.
                        if let Ok(socket) = tls.accept(socket).await {
                            serve(socket, numbers, answers, tx).await;
                        }
                    }),
                };
            }
        });
        RawApp { port, requests }
    }

    /// The next request: the connection it came on (0, 1, … in accept order) and its head.
    async fn request(&mut self) -> (usize, String) {
        tokio::time::timeout(GUARD, self.requests.recv())
            .await
            .expect("a webhook request")
            .expect("the web app runs")
    }
}

async fn serve(
    mut socket: impl AsyncRead + AsyncWrite + Unpin,
    numbers: Arc<AtomicUsize>,
    answers: Arc<parking_lot::Mutex<VecDeque<Answer>>>,
    requests: mpsc::UnboundedSender<(usize, String)>,
) {
    let mut buf = Vec::new();
    let mut conn = None;
    loop {
        // One request: its head, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|n| n.trim().parse().unwrap())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + length);
        let conn = *conn.get_or_insert_with(|| numbers.fetch_add(1, Ordering::SeqCst));
        let _ = requests.send((conn, head));
        let Some(answer) = answers.lock().pop_front() else {
            return;
        };
        for piece in &answer.pieces {
            if socket.write_all(piece).await.is_err() {
                return;
            }
            let _ = socket.flush().await;
        }
        if answer.close {
            return;
        }
    }
}

/// The name a CONNECT from a new client got from the raw web app. The client stays open (in
/// `open`), so that no disconnect webhook takes the next answer.
async fn connected_name(s: &Server, open: &mut Vec<Client>, cookie: &str) -> serde_json::Value {
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": cookie})).await;
    let name = c.expect("CONNECTED").await["name"].clone();
    open.push(c);
    name
}

#[tokio::test]
async fn every_framing_of_a_reply_is_read() {
    let mut web = RawApp::start(vec![
        // Chunked, in pieces that split the chunk lines, with an extension and a trailer.
        answer(
            &[
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "6;ext=1\r\n[true,",
                "\r\n",
                "12\r\n{\"name\": \"chunky\"}\r\n1\r\n]\r\n0\r\nX-Trailer: t\r\n\r\n",
            ],
            false,
        ),
        // An interim 100 Continue, then Content-Length.
        answer(
            &[
                "HTTP/1.1 100 Continue\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\n[true, {\"name\": \"sized\"}]",
            ],
            false,
        ),
        // HTTP/1.0 with no length: the body ends when the web app closes the connection.
        answer(
            &["HTTP/1.0 200 OK\r\n\r\n[true, {\"name\": ", "\"old\"}]"],
            true,
        ),
    ])
    .await;
    let s = Server::start_with(|c| c.webhooks.cbport = web.port).await;
    let mut open = Vec::new();

    assert_eq!(connected_name(&s, &mut open, "sid=1").await, "chunky");
    let (conn, head) = web.request().await;
    assert_eq!(conn, 0);
    assert!(
        head.starts_with("POST /hookbox/connect HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\ncookie: sid=1\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/x-www-form-urlencoded\r\n"),
        "{head}"
    );

    // The same kept-alive connection carries the next call.
    assert_eq!(connected_name(&s, &mut open, "sid=2").await, "sized");
    assert_eq!(web.request().await.0, 0);

    assert_eq!(connected_name(&s, &mut open, "sid=3").await, "old");
    assert_eq!(web.request().await.0, 0);
}

/// A web app that closes a kept-alive connection between calls (as servers do after their own
/// idle timeout) costs no call: the next one goes on a new connection.
#[tokio::test]
async fn a_connection_the_web_app_closed_is_replaced() {
    let (first, second) = (approving("first"), approving("second"));
    // The first answer claims keep-alive (HTTP/1.1, no `Connection: close`), then the web app
    // closes the connection all the same.
    let mut web = RawApp::start(vec![answer(&[&first], true), answer(&[&second], false)]).await;
    let s = Server::start_with(|c| c.webhooks.cbport = web.port).await;
    let mut open = Vec::new();
    assert_eq!(connected_name(&s, &mut open, "sid=1").await, "first");
    assert_eq!(web.request().await.0, 0);
    assert_eq!(connected_name(&s, &mut open, "sid=2").await, "second");
    assert_eq!(web.request().await.0, 1);
}

/// Replies are bounded however they are framed: a chunk that would take the body past 1 MiB is
/// refused before it is read, and a malformed reply is a failure, not a hang.
#[tokio::test]
async fn oversized_and_malformed_replies_are_refused() {
    let mut web = RawApp::start(vec![
        answer(
            &["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n"],
            false,
        ),
        answer(
            &["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
            false,
        ),
        answer(&["HTTP/1.1 2x0 OK\r\n\r\n"], false),
    ])
    .await;
    let s = Server::start_with(|c| {
        c.webhooks.cbport = web.port;
        c.webhook_error_details = true;
        c.max_failed_connects = 100;
    })
    .await;
    let mut c = s.client().await;
    for expected in [
        "failure: reply larger than 1048576 bytes",
        "failure: a bad chunk size in the reply",
        "failure: a malformed reply: invalid response status",
    ] {
        c.send("CONNECT", json!({"cookie_string": "sid=1"})).await;
        c.expect_error(expected).await;
        web.request().await;
    }
}

/// An `https://` web app (`--cbhttps`) is called through reqwest with the system's certificates,
/// here the test's own, named by `SSL_CERT_FILE`.
#[tokio::test]
async fn an_https_web_app_is_called_over_tls() {
    let dir = std::env::temp_dir().join(format!("hookbox-https-hook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let files = hookbox::config::TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, key.cert.pem()).unwrap();
    std::fs::write(&files.key, key.key_pair.serialize_pem()).unwrap();
    let acceptor = hookbox::transport::tls::acceptor(&files).unwrap();
    let reply = approving("secure");
    let mut web = RawApp::start_with(vec![answer(&[&reply], false)], Some(acceptor)).await;
    let cbport = web.port.to_string();
    let server = common::binary::Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--cbhost",
            "127.0.0.1",
            "--cbport",
            &cbport,
            "--cbhttps",
        ],
        &[("SSL_CERT_FILE", files.cert.to_str().unwrap())],
    );
    let port = server.startup_port("127.0.0.1");
    let mut c = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
    c.send("CONNECT", json!({"cookie_string": "sid=tls"})).await;
    assert_eq!(c.expect("CONNECTED").await["name"], "secure");
    let (_, head) = web.request().await;
    assert!(
        head.starts_with("POST /hookbox/connect HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("cookie: sid=tls\r\n"), "{head}");
    server.stop("TERM").await;
}
