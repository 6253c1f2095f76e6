//! Workload E: reconnect storm. N subscribers connect and subscribe to one channel; then all
//! drop their connections at once and come back, subscriber i after i × spread / N seconds (so
//! the returns are spread evenly over `spread`), each logging in as the same user again and
//! re-subscribing. Reports how long until every subscriber is back, the reconnect handshakes'
//! latency, and the webhook calls the storm cost per reconnect.

use crate::clients::{connect_many, join_all, open_and_subscribe, Ctx};
use crate::net::Link;
use crate::procstat::{rss_sum_kb, self_pid, CpuMark};
use crate::proto::next_ticket;
use crate::stats::{hist_fields, new_hist, Report};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Subscribers, all on one channel.
    #[arg(long, default_value_t = 5_000)]
    pub subs: usize,
    /// Seconds over which the subscribers come back.
    #[arg(long, default_value_t = 1.0)]
    pub spread: f64,
    /// Channel name.
    #[arg(long, default_value = "storm")]
    pub channel: String,
    /// hookbox: the web app's connect reply opts in to resume tickets (`resume_ttl`), and each
    /// subscriber comes back with its ticket.
    #[arg(long)]
    pub tickets: bool,
}

/// How one subscriber's return went: its handshake, when it was back (since the drop), and
/// whether its ticket let it in unasked.
type Back = Result<(u64, Duration, bool), String>;

/// A subscribed connection, with what it read past its subscription.
struct Held {
    link: Link,
    lines: crate::proto::LineBuf,
    left: Vec<Vec<u8>>,
}

pub async fn run(ctx: Arc<Ctx>, e: Args, hook_port: u16, conc: usize) -> Result<(), String> {
    if e.tickets {
        let _ = crate::webhook::CONNECT_EXTRA.set(", \"resume_ttl\": 300".to_owned());
    }
    let app = crate::start_webapp(hook_port, false).await?;
    let pids = ctx.server_pids.clone();
    let (drop_tx, drop_rx) = watch::channel(None::<Instant>);
    let n = e.subs.max(1);
    let spread = Duration::from_secs_f64(e.spread.max(0.0));
    let channel = e.channel.clone();
    let ctx2 = ctx.clone();
    let ph = connect_many(
        ctx.clone(),
        n,
        conc,
        move |_| channel.clone(),
        Duration::from_secs(600),
        move |i, link, lines, left| {
            let (ctx, mut drop_rx, channel) = (ctx2.clone(), drop_rx.clone(), e.channel.clone());
            async move {
                let held = Held { link, lines, left };
                storm_one(&ctx, i, held, &mut drop_rx, &channel, spread, n).await
            }
        },
    )
    .await;
    eprintln!(
        "loadgen: E: {} subscribed, {} failed in {:.2}s",
        ph.ok,
        ph.failed,
        ph.elapsed.as_secs_f64()
    );
    crate::print_errors(&ph.errors);
    // Settle, then the storm.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hooks_before = app.as_ref().map_or(0, |a| a.stats.total());
    let connects_before = app.as_ref().map_or(0, |a| a.stats.connect.load(Relaxed));
    let srv = CpuMark::now(&pids);
    let me = CpuMark::now(&[self_pid()]);
    let dropped = Instant::now();
    let _ = drop_tx.send(Some(dropped));
    let results: Vec<Back> = join_all(ph.handles, Duration::from_secs(120)).await;
    let (srv_cpu, _) = srv.since();
    let (lg_cpu, _) = me.since();
    let mut back = new_hist();
    let mut handshake = new_hist();
    let mut last = Duration::ZERO;
    let mut failed = 0u64;
    let mut errors = std::collections::BTreeMap::new();
    for r in &results {
        match r {
            Ok((hs_ns, at, _)) => {
                back.saturating_record(at.as_nanos().max(1) as u64);
                handshake.saturating_record((*hs_ns).max(1));
                last = last.max(*at);
            }
            Err(e) => {
                failed += 1;
                *errors
                    .entry(e.chars().take(80).collect::<String>())
                    .or_insert(0u64) += 1;
            }
        }
    }
    crate::print_errors(&errors);
    let returned = results.len() as u64 - failed;
    let hooks = app.as_ref().map_or(0, |a| a.stats.total()) - hooks_before;
    let connects = app.as_ref().map_or(0, |a| a.stats.connect.load(Relaxed)) - connects_before;
    let mut r = Report::default();
    r.add("workload", "e");
    r.add("subs", n);
    r.add("subs_ok", ph.ok);
    r.add("spread_s", format!("{:.2}", spread.as_secs_f64()));
    r.add("returned", returned);
    r.add("return_failed", failed + (n as u64 - results.len() as u64));
    r.add("all_back_ms", format!("{:.0}", last.as_secs_f64() * 1000.0));
    hist_fields(&mut r, "back", &back);
    hist_fields(&mut r, "reconnect", &handshake);
    r.add(
        "hooks_per_reconnect",
        format!("{:.2}", hooks as f64 / returned.max(1) as f64),
    );
    r.add("hooks_connect_storm", connects);
    r.add("tickets", e.tickets);
    r.add(
        "resumed",
        results
            .iter()
            .filter(|r| matches!(r, Ok((_, _, true))))
            .count(),
    );
    r.add(
        "srv_cpu_us_per_reconnect",
        format!("{:.1}", srv_cpu as f64 / 1000.0 / returned.max(1) as f64),
    );
    r.add(
        "lg_cpu_us_per_reconnect",
        format!("{:.1}", lg_cpu as f64 / 1000.0 / returned.max(1) as f64),
    );
    r.add("srv_rss_kb", rss_sum_kb(&pids));
    r.print();
    crate::linger(&app, returned, Duration::from_secs(5)).await;
    Ok(())
}

/// One subscriber: waits for the drop, closes its connection, comes back at its turn as the
/// same user, and then closes again.
async fn storm_one(
    ctx: &Ctx,
    i: usize,
    mut held: Held,
    drop_rx: &mut watch::Receiver<Option<Instant>>,
    channel: &str,
    spread: Duration,
    n: usize,
) -> Back {
    // With tickets: the one renewed after the SUBSCRIBE names the channel.
    let ticket = if ctx.tickets {
        let deadline = Instant::now() + ctx.handshake_timeout;
        Some(next_ticket(&mut held.link, &mut held.lines, &held.left, deadline).await?)
    } else {
        None
    };
    let dropped = match drop_rx.wait_for(|t| t.is_some()).await {
        Ok(t) => t.expect("checked"),
        Err(_) => return Err("never dropped".into()),
    };
    drop(held);
    let turn = spread.mul_f64(i as f64 / n as f64);
    tokio::time::sleep_until((dropped + turn).into()).await;
    let (again, _lines, hs) =
        open_and_subscribe(ctx, i, i as u64, channel, ticket.as_deref()).await?;
    let at = dropped.elapsed();
    drop(again);
    Ok((hs.open_ns + hs.login_ns + hs.subscribe_ns, at, hs.resumed))
}
