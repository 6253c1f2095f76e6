//! Optional TLS on the listeners (`--tls-cert`, `--tls-key`): rustls with the ring provider,
//! HTTP/1.1 only (WebSocket upgrades and CSP long-polls are HTTP/1.1 features).
//!
//! The handshake runs inside the connection's own task, on its first read (see
//! `listener::Wire`), never in the accept loop: one client that stalls its handshake must not
//! hold up everyone else's accept. It counts as part of the request headers, so
//! `--header-timeout` bounds it.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The certificate chain and private key files, PEM.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {msg}")]
    Cert { path: PathBuf, msg: String },
    #[error("cannot read the TLS key {path}: {msg}")]
    Key { path: PathBuf, msg: String },
    #[error("the TLS certificate {cert} does not go with the key {key}: {msg}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        msg: String,
    },
}

/// Loads the files and builds the acceptor every listener shares.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let certs = load_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: files.key.clone(),
        msg: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            msg: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |msg: String| TlsError::Cert {
        path: path.to_owned(),
        msg,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no certificate in the file".into()));
    }
    Ok(certs)
}
