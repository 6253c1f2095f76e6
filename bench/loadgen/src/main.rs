//! `loadgen`: the benchmark client for hookbox (and, later, its peers).
//!
//! Workloads (see bench/run.sh and docs/BENCHMARKS.md):
//! - `a`: idle footprint — N subscribers over M channels; server RSS per connection, idle CPU.
//! - `b`: broadcast fan-out — S subscribers on one channel, a publisher POSTing at a fixed rate;
//!   end-to-end latency, deliveries, loss, gaps, duplicates, server CPU per delivery.
//! - `c`: many small channels — `b` with each subscriber in a personal channel and a group.
//! - `d`: webhook-gated connects — connect + subscribe through the webhook app; connects/s, p99.
//!
//! Runs on a single-threaded tokio runtime (the loadgen is pinned to one core). Every loop is
//! bounded in count and time; every run stops by itself and prints one `RESULT k=v …` line.

mod clients;
mod csp;
mod net;
mod procstat;
mod proto;
mod stats;
mod stream;
mod webhook;
mod wl_a;
mod wl_b;
mod wl_d;
mod wl_e;
mod wl_r;

use clap::{Parser, Subcommand};
use clients::Ctx;
use net::SrcPool;
use proto::{Proto, Target};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Benchmark load generator (RTJP over WebSocket today)"
)]
struct Cli {
    /// Protocol of the server under test.
    #[arg(long, value_enum, default_value = "hookbox", global = true)]
    proto: Proto,
    /// Server host (loopback only).
    #[arg(long, default_value = "127.0.0.1", global = true)]
    host: String,
    /// Server port (publishes go here; so do subscribers unless --extra-port is given).
    #[arg(long, default_value_t = 8001, global = true)]
    port: u16,
    /// Another node of the same server: subscribers are spread round-robin over --port and
    /// every --extra-port. Repeatable.
    #[arg(long, global = true)]
    extra_port: Vec<u16>,
    /// Web API token (hookbox `-r`).
    #[arg(long, default_value = "benchtoken", global = true)]
    token: String,
    /// PID of a server process, for /proc CPU and RSS readings, summed over every
    /// --server-pid given (hookbox nodes and their redis-server); none: those fields are 0.
    #[arg(long, global = true)]
    server_pid: Vec<u32>,
    /// Port of the built-in webhook web app on 127.0.0.1 (hookbox `--cbport`); 0 = don't run it.
    #[arg(long, default_value_t = 8090, global = true)]
    webhook_port: u16,
    /// Spread client sockets over 127.0.0.2–127.0.0.9 when more connections than this are opened.
    #[arg(long, default_value_t = 20_000, global = true)]
    spread_above: usize,
    /// Handshakes (connect + login + subscribe) in flight at once.
    #[arg(long, default_value_t = 200, global = true)]
    connect_concurrency: usize,
    /// Per-connection handshake budget, seconds.
    #[arg(long, default_value_t = 30.0, global = true)]
    handshake_timeout: f64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Idle footprint: N subscribers over M channels.
    A(wl_a::Args),
    /// Broadcast fan-out: S subscribers on one channel, publisher at a fixed rate.
    B(wl_b::Args),
    /// Many small channels: each subscriber in a personal channel and a group (--group,
    /// default 10); publishes alternate between them.
    C(wl_b::Args),
    /// Webhook-gated connects.
    D(wl_d::Args),
    /// Reconnect storm: every subscriber drops at once and comes back.
    E(wl_e::Args),
    /// Rolling restart (hookbox, two nodes on Redis): the first node stops, everyone comes
    /// back on the second.
    R(wl_r::Args),
}

fn main() {
    let cli = Cli::parse();
    let nofile = procstat::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(run(cli, nofile));
    // Don't wait for stragglers: every task is bounded, but exit promptly.
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

async fn run(cli: Cli, nofile: u64) -> i32 {
    let mut dsts = Vec::new();
    for port in std::iter::once(cli.port).chain(cli.extra_port.iter().copied()) {
        let dst: SocketAddr = match (cli.host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.find(|a| a.is_ipv4()))
        {
            Some(a) => a,
            None => {
                eprintln!("loadgen: cannot resolve {}:{port}", cli.host);
                return 2;
            }
        };
        if !dst.ip().is_loopback() {
            eprintln!("loadgen: refusing non-loopback target {dst}");
            return 2;
        }
        dsts.push(dst);
    }
    let conns = match &cli.cmd {
        Cmd::A(a) => a.subs,
        Cmd::B(b) | Cmd::C(b) => b.subs,
        Cmd::D(d) => d.connects,
        Cmd::E(e) => e.subs,
        Cmd::R(r) => r.subs,
    };
    let src = SrcPool::new(conns, cli.spread_above);
    eprintln!(
        "loadgen: proto={:?} server={dsts:?} pids={:?} nofile={nofile} sources={}",
        cli.proto,
        cli.server_pid,
        src.describe()
    );
    if (conns as u64) + 500 > nofile {
        eprintln!("loadgen: warning: {conns} connections but open-files limit {nofile}");
    }
    let ctx = std::sync::Arc::new(Ctx {
        proto: cli.proto,
        target: Target {
            host: cli.host.clone(),
            port: cli.port,
            token: cli.token.clone(),
            gated: matches!(cli.cmd, Cmd::D(_)),
        },
        dsts,
        src,
        server_pids: cli.server_pid,
        handshake_timeout: Duration::from_secs_f64(cli.handshake_timeout),
        // Long polls hold a connection each: no pool limit, none kept idle beyond a poll.
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .build()
            .expect("an HTTP client"),
        tickets: matches!(&cli.cmd, Cmd::E(e) if e.tickets),
    });
    let res = match cli.cmd {
        Cmd::A(a) => wl_a::run(ctx, a, cli.webhook_port, cli.connect_concurrency).await,
        Cmd::B(b) => wl_b::run(ctx, b, cli.webhook_port, cli.connect_concurrency).await,
        Cmd::C(mut c) => {
            if c.group == 0 {
                c.group = 10;
            }
            wl_b::run(ctx, c, cli.webhook_port, cli.connect_concurrency).await
        }
        Cmd::D(d) => wl_d::run(ctx, d, cli.webhook_port).await,
        Cmd::E(e) => wl_e::run(ctx, e, cli.webhook_port, cli.connect_concurrency).await,
        Cmd::R(r) => wl_r::run(ctx, r, cli.webhook_port, cli.connect_concurrency).await,
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("loadgen: {e}");
            1
        }
    }
}

/// Starts the webhook app unless the port is 0.
pub async fn start_webapp(port: u16, moderated: bool) -> Result<Option<webhook::WebApp>, String> {
    if port == 0 {
        Ok(None)
    } else {
        webhook::WebApp::start(port, moderated).await.map(Some)
    }
}

/// Webhook counters as result fields.
pub fn hook_fields(r: &mut stats::Report, app: &Option<webhook::WebApp>) {
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(app) = app {
        let s = &app.stats;
        r.add("hooks_connect", s.connect.load(Relaxed));
        r.add("hooks_create_channel", s.create_channel.load(Relaxed));
        r.add("hooks_subscribe", s.subscribe.load(Relaxed));
        r.add(
            "hooks_other",
            s.total()
                - s.connect.load(Relaxed)
                - s.create_channel.load(Relaxed)
                - s.subscribe.load(Relaxed),
        );
        r.add("hooks_grip", s.grip.load(Relaxed));
    }
}

/// Print connect-phase errors (to stderr), at most a few kinds.
pub fn print_errors(errors: &std::collections::BTreeMap<String, u64>) {
    for (e, n) in errors.iter().take(8) {
        eprintln!("loadgen:   {n} × {e}");
    }
}

/// After closing our sockets, give the server a moment to run its close webhooks against the
/// still-running web app, so its shutdown is clean. Bounded.
pub async fn linger(app: &Option<webhook::WebApp>, expect_disconnects: u64, max: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(app) = app {
        let t0 = std::time::Instant::now();
        while app.stats.disconnect.load(Relaxed) < expect_disconnects && t0.elapsed() < max {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        app.stop();
    }
}
