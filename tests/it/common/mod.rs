//! Test harness: a real hookbox server on loopback, a real HTTP web app that records every webhook
//! and answers scripted replies, real WebSocket clients, and a Web API client.
//!
//! Waiting is always on an event (a frame, a recorded webhook); the only timeouts are hang guards
//! that fail the test, never synchronisation.
//!
//! `use common::*` brings the web app, the server, the WebSocket client, RTJP frame helpers and the
//! shared flows; the protocol-specific helpers are opt-in: `common::csp` (the Comet Session
//! Protocol client) and `common::binary` (the real `hookbox` binary as a child process).
#![allow(dead_code)]

pub mod binary;
mod client;
pub mod cluster;
pub mod csp;
mod flows;
pub mod proxy;
pub mod redis_proc;
mod server;
pub mod sse;
mod webapp;

pub use client::*;
pub use flows::*;
pub use server::*;
pub use webapp::*;

use std::time::Duration;

/// Longest any single expected event may take before the test fails (a hang guard).
pub const GUARD: Duration = Duration::from_secs(10);

/// A plain HTTP client. reqwest is built with rustls and no default crypto provider (the server
/// installs ring when it starts), so tests that talk HTTP without an in-process server need it
/// installed too; installing twice is harmless.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
