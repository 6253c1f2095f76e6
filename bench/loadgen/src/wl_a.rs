//! Workload A: idle footprint. N subscribers over M channels, then nothing happens.
//! Reports the server's RSS growth per connection and its CPU while idle.

use crate::clients::{connect_many, hold, join_all, Ctx};
use crate::procstat::{rss_kb, rss_sum_kb, self_pid, status_field, CpuMark, MachineMark};
use crate::stats::{hist_fields, Report};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Subscribers (one connection and one user each).
    #[arg(long, default_value_t = 10_000)]
    pub subs: usize,
    /// Channels; subscriber i joins channel i % channels.
    #[arg(long, default_value_t = 1_000)]
    pub channels: usize,
    /// Seconds to wait after the last subscribe before reading RSS.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
    /// Seconds of idle CPU measurement.
    #[arg(long, default_value_t = 10.0)]
    pub idle: f64,
    /// Channel name prefix.
    #[arg(long, default_value = "idle")]
    pub prefix: String,
}

pub async fn run(ctx: Arc<Ctx>, a: Args, hook_port: u16, conc: usize) -> Result<(), String> {
    let app = crate::start_webapp(hook_port, false).await?;
    let pids = &ctx.server_pids;
    let rss_before = rss_sum_kb(pids);
    let (stop_tx, stop_rx) = watch::channel(false);
    let hard = Instant::now() + Duration::from_secs_f64(600.0 + a.settle + a.idle);
    let channels = a.channels.max(1);
    let prefix = a.prefix.clone();
    let srv0 = CpuMark::now(pids);
    let ph = connect_many(
        ctx.clone(),
        a.subs,
        conc,
        move |i| format!("{prefix}{}", i % channels),
        Duration::from_secs(600),
        move |_, ws, _lines, _left| hold(ws, stop_rx.clone(), hard),
    )
    .await;
    let (connect_cpu, _) = srv0.since();
    eprintln!(
        "loadgen: A: {} subscribed, {} failed in {:.2}s",
        ph.ok,
        ph.failed,
        ph.elapsed.as_secs_f64()
    );
    crate::print_errors(&ph.errors);
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let rss_after = rss_sum_kb(pids);
    let srv = CpuMark::now(pids);
    let me = CpuMark::now(&[self_pid()]);
    let machine = MachineMark::now();
    tokio::time::sleep(Duration::from_secs_f64(a.idle)).await;
    let (srv_cpu, wall) = srv.since();
    let (lg_cpu, _) = me.since();
    let other = machine.other_pct(srv_cpu, lg_cpu);
    let rss_end = rss_sum_kb(pids);

    let mut r = Report::default();
    r.add("workload", "a");
    r.add("subs", a.subs);
    r.add("channels", channels);
    r.add("subs_ok", ph.ok);
    r.add("subs_failed", ph.failed);
    r.add("connect_s", format!("{:.2}", ph.elapsed.as_secs_f64()));
    r.add(
        "connects_per_s",
        format!("{:.0}", ph.ok as f64 / ph.elapsed.as_secs_f64().max(1e-9)),
    );
    r.add(
        "srv_cpu_us_per_connect",
        format!("{:.1}", connect_cpu as f64 / 1000.0 / ph.ok.max(1) as f64),
    );
    hist_fields(&mut r, "handshake", &ph.total);
    r.add("srv_rss_before_kb", rss_before);
    r.add("srv_rss_after_kb", rss_after);
    r.add("srv_rss_end_kb", rss_end);
    r.add(
        "srv_rss_per_conn_b",
        format!(
            "{:.0}",
            (rss_after as f64 - rss_before as f64) * 1024.0 / ph.ok.max(1) as f64
        ),
    );
    // The same after the idle measurement, `idle` seconds later: what the allocator has given
    // back by then (after a burst, the handshakes' transient memory).
    r.add(
        "srv_rss_end_per_conn_b",
        format!(
            "{:.0}",
            (rss_end as f64 - rss_before as f64) * 1024.0 / ph.ok.max(1) as f64
        ),
    );
    r.add(
        "srv_threads",
        pids.iter()
            .filter_map(|&p| status_field(p, "Threads"))
            .sum::<u64>(),
    );
    r.add(
        "srv_idle_cpu_pct",
        format!("{:.3}", srv_cpu as f64 * 100.0 / wall as f64),
    );
    r.add(
        "lg_idle_cpu_pct",
        format!("{:.3}", lg_cpu as f64 * 100.0 / wall as f64),
    );
    r.add("other_cpu_pct", format!("{other:.1}"));
    r.add("lg_rss_kb", rss_kb(self_pid()).unwrap_or(0));
    crate::hook_fields(&mut r, &app);

    let _ = stop_tx.send(true);
    let ends = join_all(ph.handles, Duration::from_secs(20)).await;
    let idle_msgs: u64 = ends.iter().map(|e| e.messages).sum();
    let closed = ends.iter().filter(|e| e.closed.is_some()).count();
    r.add("idle_messages", idle_msgs);
    r.add("closed_by_server", closed);
    r.print();
    crate::linger(&app, ph.ok, Duration::from_secs(5)).await;
    Ok(())
}
