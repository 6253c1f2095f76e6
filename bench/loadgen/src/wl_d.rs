//! Workload D: webhook-gated connects. C clients connect, log in (connect webhook) and
//! subscribe to moderated channels (create_channel + subscribe webhooks), at most K in flight.
//! Reports accepted connects/s and CONNECT→CONNECTED latency. Connections stay open until
//! all are done, so closes (and their webhooks) do not overlap the measurement.
//!
//! Peers: Nchan authorizes each subscriber with `nchan_authorize_request` to the web app,
//! Socket.IO with a middleware that POSTs to it, Pushpin asks its origin (the web app) for
//! every connection; each opens its socket subscribed, so there is no login step.

use crate::clients::{connect_many, hold, join_all, Ctx};
use crate::procstat::{rss_sum_kb, self_pid, CpuMark, MachineMark};
use crate::stats::{hist_fields, Report};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Clients to connect (each its own user).
    #[arg(long, default_value_t = 2_000)]
    pub connects: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Moderated channels; client i subscribes to channel i % channels.
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Channel name prefix.
    #[arg(long, default_value = "gate")]
    pub prefix: String,
}

pub async fn run(ctx: Arc<Ctx>, d: Args, hook_port: u16) -> Result<(), String> {
    let app = crate::start_webapp(hook_port, true).await?;
    if app.is_none() {
        return Err("workload d needs the webhook app (--webhook-port)".into());
    }
    let pids = &ctx.server_pids;
    let (stop_tx, stop_rx) = watch::channel(false);
    let hard = Instant::now() + Duration::from_secs(900);
    let channels = d.channels.max(1);
    let prefix = d.prefix.clone();
    let srv = CpuMark::now(pids);
    let me = CpuMark::now(&[self_pid()]);
    let machine = MachineMark::now();
    let ph = connect_many(
        ctx.clone(),
        d.connects,
        d.concurrency,
        move |i| format!("{prefix}{}", i % channels),
        Duration::from_secs(600),
        move |_, ws, _lines, _left| hold(ws, stop_rx.clone(), hard),
    )
    .await;
    let (srv_cpu, wall) = srv.since();
    let (lg_cpu, _) = me.since();
    let srv_sys = srv.sys_share_pct();
    let other = machine.other_pct(srv_cpu, lg_cpu);
    eprintln!(
        "loadgen: D: {} accepted, {} failed in {:.2}s",
        ph.ok,
        ph.failed,
        ph.elapsed.as_secs_f64()
    );
    crate::print_errors(&ph.errors);
    let secs = ph.elapsed.as_secs_f64().max(1e-9);

    let mut r = Report::default();
    r.add("workload", "d");
    r.add("connects", d.connects);
    r.add("concurrency", d.concurrency);
    r.add("channels", channels);
    r.add("accepted", ph.ok);
    r.add("failed", ph.failed);
    r.add("elapsed_s", format!("{:.3}", secs));
    r.add("connects_per_s", format!("{:.0}", ph.ok as f64 / secs));
    hist_fields(&mut r, "login", &ph.login);
    hist_fields(&mut r, "subscribe", &ph.subscribe);
    hist_fields(&mut r, "open", &ph.open);
    hist_fields(&mut r, "total", &ph.total);
    r.add(
        "srv_cpu_us_per_connect",
        format!("{:.1}", srv_cpu as f64 / 1000.0 / ph.ok.max(1) as f64),
    );
    r.add("srv_sys_share_pct", format!("{srv_sys:.0}"));
    r.add(
        "srv_cpu_pct",
        format!("{:.1}", srv_cpu as f64 * 100.0 / wall as f64),
    );
    r.add(
        "lg_cpu_pct",
        format!("{:.1}", lg_cpu as f64 * 100.0 / wall as f64),
    );
    r.add("other_cpu_pct", format!("{other:.1}"));
    r.add("srv_rss_kb", rss_sum_kb(pids));
    // Every call the web app answered during the connects, per accepted connect.
    if let Some(app) = &app {
        use std::sync::atomic::Ordering::Relaxed;
        let calls = app.stats.total() + app.stats.grip.load(Relaxed);
        r.add(
            "hooks_per_connect",
            format!("{:.2}", calls as f64 / ph.ok.max(1) as f64),
        );
    }
    crate::hook_fields(&mut r, &app);
    let _ = stop_tx.send(true);
    let _ = join_all(ph.handles, Duration::from_secs(20)).await;
    r.print();
    crate::linger(&app, ph.ok, Duration::from_secs(5)).await;
    Ok(())
}
