//! hookbox: a real-time messaging server, drop-in compatible with HookBox 0.3.4a1.
//!
//! The data path, top to bottom:
//!
//! ```text
//! browser frame ─► transport/ (driver.rs: WebSocket /ws, hixie-75; csp/; sse/)
//!     ─► session/ (per connection: protocol/ decodes RTJP, typed frames)
//!     ─► hub/ (HookBox's rules) ─► webhook/ (ask the web app, cookies forwarded)
//!     ─► engine/ (channels, users, history, presence: memory/ or redis/)
//!     ─► fan-out: one encoded frame shared by every recipient ─► outbox.rs (byte-bounded)
//!     ─► the connection's task (drain everything queued, one message, one flush)
//! web app ─► api/ (/web/<method>, security_token) ─► hub ─► same path
//! net/ (Transport, address ranges) is the ground floor every layer may name.
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
