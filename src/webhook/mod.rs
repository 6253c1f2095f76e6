//! Asking the web application: HookBox's eight webhooks, and channel polling fetches.
//!
//! Every hook is a `POST` with an urlencoded form (always `action` and, if configured, `secret`;
//! a JSON object of the same fields with `--webhook-format json`), signed when there is a secret,
//! the browser's cookie string verbatim in `Cookie`, and `X-Real-IP` when a live connection is
//! behind the call. The reply must be `200` with `[success, {options}]`; every other outcome is
//! turned into a denial whose `error` option explains it (§5.2 of the spec).

mod client;
pub mod decision;
mod http1;
mod settings;
pub mod signing;
mod slots;

pub use client::{CallRecord, ClientLimits, HookCall, WebhookClient};
pub use decision::{json_truthy, Decision};
pub use settings::{Hook, WebhookFormat, WebhookSettings};
