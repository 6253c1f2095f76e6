//! TLS on the listeners (`--tls-cert`, `--tls-key`), reached by real clients: reqwest (rustls)
//! for https, and tokio-tungstenite over a rustls client stream for wss, both trusting only the
//! test's self-signed certificate. A plain-HTTP request to the TLS port gets no HTTP answer, and
//! a bad certificate file stops the server at startup with the reason.

use crate::common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use hookbox::app::App;
use hookbox::config::{Config, TlsFiles};
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for 127.0.0.1, written to files; returns them with the PEM.
fn certificate(dir: &std::path::Path) -> (TlsFiles, String) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let pem = key.cert.pem();
    std::fs::write(&files.cert, &pem).unwrap();
    std::fs::write(&files.key, key.key_pair.serialize_pem()).unwrap();
    (files, pem)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hookbox-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn https_and_wss_reach_a_tls_listener() {
    let dir = temp_dir("ok");
    let (files, pem) = certificate(&dir);
    let s = Server::start_with(|c| c.tls = Some(files)).await;
    s.web
        .channel_options(serde_json::json!({"moderated": false}));
    let port = s.addr.port();

    // A client that opens a socket and never starts its handshake holds up nobody else.
    let stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();

    // https: a static file and the Web API.
    let _ = http_client();
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let resp = https
        .get(format!("https://127.0.0.1:{port}/static/hookbox.js"))
        .send()
        .await
        .expect("https request");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("hookbox"));

    // wss: a real WebSocket client over rustls, CONNECT and a publication through the Web API.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(key_der(&pem)))
        .expect("the test certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://127.0.0.1:{port}/ws"), tls)
        .await
        .expect("WebSocket over TLS");
    ws.send(Message::text(frame(
        1,
        "CONNECT",
        serde_json::json!({"cookie_string": "user=ann"}),
    )))
    .await
    .unwrap();
    let text = next_text(&mut ws).await;
    assert!(text.contains("\"CONNECTED\""), "{text}");
    ws.send(Message::text(frame(
        2,
        "SUBSCRIBE",
        serde_json::json!({"channel_name": "secure"}),
    )))
    .await
    .unwrap();
    let text = next_text(&mut ws).await;
    assert!(text.contains("\"SUBSCRIBE\""), "{text}");
    let resp = https
        .post(format!("https://127.0.0.1:{port}/web/publish"))
        .form(&[
            ("security_token", "secret"),
            ("channel_name", "secure"),
            ("payload", "42"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "[true, {}]");
    let text = next_text(&mut ws).await;
    assert!(
        text.contains("\"PUBLISH\"") && text.contains("42"),
        "{text}"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = http_client()
        .get(format!("http://127.0.0.1:{port}/static/hookbox.js"))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    drop(stalled);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_handshake_that_never_comes_is_closed_at_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let dir = temp_dir("slow");
    let (files, _) = certificate(&dir);
    let s = Server::start_with(|c| {
        c.tls = Some(files);
        c.header_timeout = std::time::Duration::from_millis(200);
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(GUARD, tcp.read(&mut buf))
        .await
        .expect("hang guard: the server kept the socket");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Over hookbox's own TLS, the console's session cookie is `Secure`, whatever the headers say.
#[tokio::test]
async fn the_console_cookie_is_secure_over_tls() {
    let dir = temp_dir("admin");
    let (files, pem) = certificate(&dir);
    let s = Server::start_with(|c| {
        c.tls = Some(files);
        c.admin_password = Some("pw".to_owned());
    })
    .await;
    let _ = http_client();
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let resp = https
        .post(format!(
            "https://127.0.0.1:{}/admin/api/login",
            s.addr.port()
        ))
        .header("X-Hookbox-Admin", "1")
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"password": "pw"}).to_string())
        .send()
        .await
        .expect("https request");
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The DER bytes of the first certificate of `pem`.
fn key_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("hang guard")
            .expect("open")
            .expect("message");
        if let Message::Text(t) = msg {
            return t.to_string();
        }
    }
}

#[tokio::test]
async fn a_bad_certificate_or_a_missing_key_stops_the_server_at_startup() {
    let dir = temp_dir("bad");
    let (mut files, _) = certificate(&dir);
    std::fs::write(&files.cert, "not a certificate").unwrap();
    let web = WebApp::start().await;
    let mut config = test_config(&web);
    config.tls = Some(files.clone());
    let err = App::bind(config, Default::default())
        .await
        .err()
        .expect("a startup error");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot read the TLS certificate {}",
            files.cert.display()
        )),
        "{err}"
    );
    // A key that does not go with the certificate.
    let (other, _) = certificate(&temp_dir("other"));
    files = TlsFiles {
        cert: other.cert,
        key: files.key,
    };
    let mut config = test_config(&web);
    config.tls = Some(files);
    let err = App::bind(config, Default::default())
        .await
        .err()
        .expect("a startup error");
    assert!(
        err.to_string().contains("does not go with the key"),
        "{err}"
    );

    let only = Config::from_args(["hookbox", "--tls-cert", "c.pem"]).unwrap_err();
    assert!(only.to_string().contains("needs --tls-key too"), "{only}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_startup_line_of_a_tls_server_says_https_and_the_demo_stays_plain_http() {
    let dir = temp_dir("binary");
    let (files, _) = certificate(&dir);
    let (cert, key) = (files.cert.to_str().unwrap(), files.key.to_str().unwrap());
    let demo_port = free_port().to_string();
    let run = common::binary::Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--demo",
            "--demo-port",
            &demo_port,
        ],
        &[],
    );
    let line = run.next_line();
    assert!(
        line.ends_with(&format!(
            "Listening to hookbox on https://127.0.0.1:{}",
            port_of(&line)
        )),
        "{line}"
    );
    let demo = loop {
        let line = run.next_line();
        if line.contains("Demo chat: open") {
            break line;
        }
    };
    assert!(
        demo.contains(&format!("open http://127.0.0.1:{demo_port}/")),
        "{demo}"
    );
    let page = http_client()
        .get(format!("http://127.0.0.1:{demo_port}/"))
        .send()
        .await
        .expect("the demo over plain HTTP");
    assert_eq!(page.status().as_u16(), 200);
    run.stop("TERM").await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The port at the end of a startup line.
fn port_of(line: &str) -> &str {
    line.rsplit(':').next().unwrap()
}
