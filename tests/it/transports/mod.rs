//! The transports and what bounds their sockets: WebSocket, hixie-75, CSP, SSE, framing, liveness, connection limits, origins, TLS, input limits.

mod connection_limits;
mod cookies;
mod csp_close;
mod csp_comet;
mod csp_errors;
mod csp_session;
mod framing;
mod hixie;
mod input_limits;
mod liveness;
mod origins;
mod sse;
mod tls;
mod websocket;
