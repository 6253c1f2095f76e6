//! hookbox's integration tests, in one binary: the crate and the harness in `common` compile and
//! link once (one binary per test file used to cost a link and ~200 MB of disk each). Each area
//! is a folder; run one with a filter, e.g. `cargo test --test it security::`.
//!
//! Every test runs real parts over loopback: a real hookbox (in-process, or the binary as a
//! child process), a real HTTP web app that records its webhooks, real WebSocket, CSP, SSE and
//! HTTP clients, a real `redis-server` for the Redis engine (`HOOKBOX_TEST_ENGINE`).

mod common;

mod channels;
mod cluster;
mod engine;
mod ops;
mod security;
mod transports;
mod web_api;
mod webhooks;
