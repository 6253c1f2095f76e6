//! Every metric hookbox exports, declared here and nowhere else, in Prometheus form at `/metrics`.
//!
//! Label values come from small fixed sets (transports, frame names, hooks, outcomes): never a
//! channel or user name, so the number of series is bounded whatever clients do. Counters on
//! the delivery path are resolved once into handles (an atomic add each), and the outbox counts
//! a whole drain at once, so metrics cost nothing per recipient beyond a few adds per write.
//!
//! The recorder is process-wide (the `metrics` crate has one global recorder): every server in a
//! process shares it. The binary runs one server.

use crate::net::Transport;
use crate::protocol::{FrameKind, ServerFrame};
use metrics::{counter, gauge, histogram, Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

/// Open client connections, by `transport` (websocket, hixie, csp: with `csp`, the CSP sessions
/// alive).
pub const CONNECTIONS: &str = "hookbox_connections";
/// Users with a connection on this node.
pub const USERS: &str = "hookbox_users";
/// Channels this node knows: all of them with the memory engine, those with a member on this
/// node with the Redis engine.
pub const CHANNELS: &str = "hookbox_channels";
/// Client frames received, by `name` (the RTJP frame name; `unknown` for any other name,
/// `invalid` for what is no frame).
pub const FRAMES_IN: &str = "hookbox_frames_in_total";
/// Server frames handed to a transport, by `name`.
pub const FRAMES_OUT: &str = "hookbox_frames_out_total";
/// Frames handed to transports, all names together (a delivery is one frame to one connection).
pub const DELIVERIES: &str = "hookbox_deliveries_total";
/// Bytes of frames handed to transports.
pub const BYTES_OUT: &str = "hookbox_bytes_out_total";
/// Publications accepted (client PUBLISH, Web API publish, polled content).
pub const PUBLISHES: &str = "hookbox_publishes_total";
/// Webhook calls, by `hook` and `outcome` (ok, denied, failed, timeout).
pub const WEBHOOK_CALLS: &str = "hookbox_webhook_calls_total";
/// Informational webhooks (disconnect, destroy_channel, forced unsubscribe) tried again because
/// the web app could not be reached or answered 5xx, by `hook`.
pub const WEBHOOK_RETRIES: &str = "hookbox_webhook_retries_total";
/// Webhook call durations in seconds, by `hook`.
pub const WEBHOOK_SECONDS: &str = "hookbox_webhook_duration_seconds";
/// Connections closed because they fell more than `--outbox-bytes` behind.
pub const SLOW_CONSUMER_CLOSES: &str = "hookbox_slow_consumer_closes_total";
/// Redis commands that failed.
pub const ENGINE_ERRORS: &str = "hookbox_engine_errors_total";
/// Times the Redis pub/sub connection was lost (and reconnected).
pub const REDIS_RECONNECTS: &str = "hookbox_redis_reconnects_total";
/// Times Redis Sentinel named a new master and this node switched to it.
pub const REDIS_MASTER_SWITCHES: &str = "hookbox_redis_master_switches_total";
/// Channel events this node never received (offset gaps).
pub const ENGINE_LOST_EVENTS: &str = "hookbox_engine_lost_events_total";
/// Channels found destroyed and created again without this node seeing it.
pub const ENGINE_REPLACED_CHANNELS: &str = "hookbox_engine_replaced_channels_total";
/// Times this node found its record in Redis gone and closed its connections.
pub const ENGINE_STATE_LOSSES: &str = "hookbox_engine_state_losses_total";
/// Engine steps of close handlings retried because the engine did not answer.
pub const CLOSE_RETRIES: &str = "hookbox_close_retries_total";
/// Connections closed for doing nothing, by `kind`: `header` (request headers not complete
/// within `--header-timeout`), `idle` (nothing received for `--idle-timeout`), `connect` (no
/// CONNECT within `--connect-timeout`).
pub const TIMEOUTS: &str = "hookbox_timeouts_total";
/// Requests and frames refused by a policy, by `reason` (`origin`: not on `--allowed-origins`;
/// the others are listed in docs/operations.md).
pub const REFUSALS: &str = "hookbox_refusals_total";
/// SUBSCRIBEs that gave a position to recover from, by `result`: `recovered` (the missed
/// publications were sent) or `not_recovered` (they are gone: another epoch, history too short).
pub const RECOVERIES: &str = "hookbox_recoveries_total";
/// CONNECTs that presented a resume ticket, by `result`: `resumed` (no webhook asked),
/// `invalid` (not one of ours: forged, another key), `expired`, `other_session` (other
/// cookies), `revoked`, `unchecked` (the engine could not say whether it was revoked).
pub const RESUMES: &str = "hookbox_resumes_total";
/// Users whose last connection closed with `--leave-grace` on, by `result`: `returned` (a
/// connection of theirs attached within the grace period: no cascade) or `left`.
pub const LEAVES: &str = "hookbox_leaves_total";
/// Log lines dropped because the log writer fell behind.
pub const LOG_LINES_DROPPED: &str = "hookbox_log_lines_dropped_total";

/// Webhook call durations' histogram buckets, in seconds.
const WEBHOOK_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder, once per process; later calls return the same handle.
/// Must run before any metric is touched (handles resolved before it would be no-ops).
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(WEBHOOK_SECONDS.to_owned()),
                &WEBHOOK_BUCKETS,
            )
            .expect("the bucket list is not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed");
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS, "Open client connections, by transport");
    describe_gauge!(USERS, "Users with a connection on this node");
    describe_gauge!(CHANNELS, "Channels this node knows");
    describe_counter!(FRAMES_IN, "Client frames received, by name");
    describe_counter!(FRAMES_OUT, "Server frames handed to a transport, by name");
    describe_counter!(DELIVERIES, "Frames handed to transports");
    describe_counter!(
        BYTES_OUT,
        Unit::Bytes,
        "Bytes of frames handed to transports"
    );
    describe_counter!(PUBLISHES, "Publications accepted");
    describe_counter!(WEBHOOK_CALLS, "Webhook calls, by hook and outcome");
    describe_histogram!(
        WEBHOOK_SECONDS,
        Unit::Seconds,
        "Webhook call durations, by hook"
    );
    describe_counter!(
        SLOW_CONSUMER_CLOSES,
        "Connections closed for falling behind"
    );
    describe_counter!(ENGINE_ERRORS, "Redis commands that failed");
    describe_counter!(REDIS_RECONNECTS, "Redis pub/sub connections lost");
    describe_counter!(
        REDIS_MASTER_SWITCHES,
        "Redis masters switched to, as Sentinel named them"
    );
    describe_counter!(ENGINE_LOST_EVENTS, "Channel events never received");
    describe_counter!(ENGINE_REPLACED_CHANNELS, "Channels found replaced");
    describe_counter!(
        ENGINE_STATE_LOSSES,
        "Times this node's Redis record was gone"
    );
    describe_counter!(CLOSE_RETRIES, "Close handling steps retried");
    describe_counter!(TIMEOUTS, "Connections closed for doing nothing");
    describe_counter!(WEBHOOK_RETRIES, "Informational webhooks tried again");
    describe_counter!(REFUSALS, "Requests refused by a policy");
    describe_counter!(RECOVERIES, "Recoveries asked for, by result");
    describe_counter!(RESUMES, "Resume tickets presented, by result");
    describe_counter!(
        LEAVES,
        "Users whose grace period for leaving ended, by result"
    );
    describe_counter!(LOG_LINES_DROPPED, "Log lines dropped by the log writer");
}

/// The text exposition, with the gauges that are read rather than counted set first.
pub fn render(users: usize, channels: usize, log_lines_dropped: u64) -> String {
    let handle = install();
    gauge!(USERS).set(users as f64);
    gauge!(CHANNELS).set(channels as f64);
    counter!(LOG_LINES_DROPPED).absolute(log_lines_dropped);
    handle.render()
}

/// The current samples, `name{labels}` (as exported) → value: what the admin console's overview
/// reads.
pub fn samples() -> std::collections::HashMap<String, f64> {
    install()
        .render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Keeps the recorder's histograms compact; run every few seconds.
pub async fn upkeep() {
    let handle = install();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// One open connection, counted while it lives.
pub struct OpenConnection(Gauge);

impl OpenConnection {
    pub fn new(transport: Transport) -> OpenConnection {
        let g = gauge!(CONNECTIONS, "transport" => transport.name());
        g.increment(1.0);
        OpenConnection(g)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A client frame received: its kind, `None` for an unknown name; see [`frame_invalid`].
pub fn frame_in(kind: Option<FrameKind>) {
    let name = kind.map_or("unknown", FrameKind::name);
    counter!(FRAMES_IN, "name" => name).increment(1);
}

/// Inbound bytes that were no frame (bad JSON, wrong shape).
pub fn frame_invalid() {
    counter!(FRAMES_IN, "name" => "invalid").increment(1);
}

struct DrainCounters {
    by_name: [Counter; ServerFrame::ALL.len()],
    deliveries: Counter,
    bytes: Counter,
}

static DRAIN: LazyLock<DrainCounters> = LazyLock::new(|| DrainCounters {
    by_name: ServerFrame::ALL.map(|k| counter!(FRAMES_OUT, "name" => k.name())),
    deliveries: counter!(DELIVERIES),
    bytes: counter!(BYTES_OUT),
});

/// What one outbox drain handed to its transport: frames by kind (indexed as
/// [`ServerFrame::ALL`]) and bytes.
pub fn drained(by_kind: &[u32; ServerFrame::ALL.len()], bytes: usize) {
    let c = &*DRAIN;
    let mut total = 0u64;
    for (n, counter) in by_kind.iter().zip(&c.by_name) {
        if *n > 0 {
            counter.increment(u64::from(*n));
            total += u64::from(*n);
        }
    }
    c.deliveries.increment(total);
    c.bytes.increment(bytes as u64);
}

/// Bytes a transport that frames the drained frames itself (SSE) wrote of them.
pub fn bytes_out(bytes: usize) {
    DRAIN.bytes.increment(bytes as u64);
}

pub fn publication() {
    counter!(PUBLISHES).increment(1);
}

/// How a webhook call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `[true, …]`.
    Ok,
    /// `[false, …]`: the web app said no.
    Denied,
    /// No usable answer: unreachable, an error status, a reply that is no decision.
    Failed,
    /// No answer within `--webhook-timeout`.
    Timeout,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
        }
    }
}

/// A webhook call (`hook`: its action, or `poll`) and how long it took.
pub fn webhook_call(hook: &'static str, outcome: Outcome, took: Duration) {
    counter!(WEBHOOK_CALLS, "hook" => hook, "outcome" => outcome.name()).increment(1);
    histogram!(WEBHOOK_SECONDS, "hook" => hook).record(took.as_secs_f64());
}

pub fn webhook_retry(hook: &'static str) {
    counter!(WEBHOOK_RETRIES, "hook" => hook).increment(1);
}

pub fn slow_consumer_closed() {
    counter!(SLOW_CONSUMER_CLOSES).increment(1);
}

pub fn engine_error() {
    counter!(ENGINE_ERRORS).increment(1);
}

pub fn redis_reconnect() {
    counter!(REDIS_RECONNECTS).increment(1);
}

pub fn redis_master_switch() {
    counter!(REDIS_MASTER_SWITCHES).increment(1);
}

pub fn lost_events(n: u64) {
    counter!(ENGINE_LOST_EVENTS).increment(n);
}

pub fn replaced_channel() {
    counter!(ENGINE_REPLACED_CHANNELS).increment(1);
}

pub fn state_loss() {
    counter!(ENGINE_STATE_LOSSES).increment(1);
}

/// A connection closed by one of the read bounds (`kind`: header, idle, connect).
pub fn timed_out(kind: &'static str) {
    counter!(TIMEOUTS, "kind" => kind).increment(1);
}

/// A request refused by a policy (`reason`: origin).
pub fn refused(reason: &'static str) {
    counter!(REFUSALS, "reason" => reason).increment(1);
}

/// A SUBSCRIBE that asked to recover from a position, and whether it could.
pub fn recovery(recovered: bool) {
    let result = if recovered {
        "recovered"
    } else {
        "not_recovered"
    };
    counter!(RECOVERIES, "result" => result).increment(1);
}

/// A CONNECT that presented a resume ticket, and what came of it (see [`RESUMES`]).
pub fn resume(result: &'static str) {
    counter!(RESUMES, "result" => result).increment(1);
}

/// A user's grace period for leaving ended: `returned` or not (see [`LEAVES`]).
pub fn leave(returned: bool) {
    let result = if returned { "returned" } else { "left" };
    counter!(LEAVES, "result" => result).increment(1);
}

pub fn close_retry() {
    counter!(CLOSE_RETRIES).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [&str; 25] = [
        CONNECTIONS,
        USERS,
        CHANNELS,
        FRAMES_IN,
        FRAMES_OUT,
        DELIVERIES,
        BYTES_OUT,
        PUBLISHES,
        WEBHOOK_CALLS,
        WEBHOOK_SECONDS,
        WEBHOOK_RETRIES,
        SLOW_CONSUMER_CLOSES,
        ENGINE_ERRORS,
        REDIS_RECONNECTS,
        REDIS_MASTER_SWITCHES,
        ENGINE_LOST_EVENTS,
        ENGINE_REPLACED_CHANNELS,
        ENGINE_STATE_LOSSES,
        CLOSE_RETRIES,
        TIMEOUTS,
        REFUSALS,
        RECOVERIES,
        RESUMES,
        LEAVES,
        LOG_LINES_DROPPED,
    ];

    /// Every metric is documented, and the dashboard uses no other.
    #[test]
    fn every_metric_is_documented_and_the_dashboard_uses_only_these() {
        let docs = include_str!("../docs/operations.md");
        for name in ALL {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} is not in docs/operations.md"
            );
        }
        let dashboard = include_str!("../docs/grafana-dashboard.json");
        let mut used = 0;
        for (i, _) in dashboard.match_indices("hookbox_") {
            let rest = &dashboard[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            let base = name.strip_suffix("_bucket").unwrap_or(name);
            assert!(ALL.contains(&base), "the dashboard uses {name}");
            used += 1;
        }
        assert!(used > 10);
    }
}
