//! hookbox: a real-time messaging server, drop-in compatible with HookBox 0.3.4a1.
//!
//! The data path, top to bottom:
//!
//! ```text
//! browser frame ─► transport/ (WebSocket /ws) ─► protocol/ (RTJP decode) ─► session/ (per connection)
//!     ─► webhook/ (ask the web app, cookies forwarded) ─► hub/ (channels, users, history, presence)
//!     ─► fan-out: one encoded frame shared by every recipient ─► session outbox (byte-bounded)
//!     ─► transport writer (drain everything queued, one message, one flush)
//! web app ─► api/ (/web/<method>, security_token) ─► hub ─► same path
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod app;
pub mod config;
pub mod demo;
pub mod engine;
pub mod hub;
pub mod log;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod outbox;
pub mod protocol;
pub mod secret;
pub mod session;
pub mod static_files;
pub mod transport;
pub mod webhook;
