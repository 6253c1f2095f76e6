//! Workload B: broadcast fan-out. S subscribers on one channel; publishers POST at a fixed
//! total rate R for warm-up + T seconds. Each payload carries its send time (ns) and sequence
//! number. Subscribers record end-to-end latency (messages sent after the warm-up only) and
//! mark every sequence they see, so loss, gaps, duplicates and reordering are exact.
//!
//! Workload C (many small channels) is the same run with `--group N`: subscriber i joins its
//! personal channel and the group of N it belongs to; publishes alternate between the personal
//! channels and the groups, round-robin, so each reaches 1 or N subscribers (see `Route`).

use crate::clients::{connect_many, join_all, Ctx};
use crate::net::Link;
use crate::procstat::{rss_kb, rss_sum_kb, self_pid, CpuMark, MachineMark};
use crate::proto::{make_payload, message_bytes, LineBuf, Proto};
use crate::stats::{cdf_fields, hist_fields, new_hist, now_ns, Bits, Report};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Subscribers, all on one channel.
    #[arg(long, default_value_t = 1_000)]
    pub subs: usize,
    /// Messages published per second (total, over all publisher connections).
    #[arg(long, default_value_t = 1_000.0)]
    pub rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up seconds (published, delivered, not measured).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Payload size in bytes (the JSON text as published).
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Concurrent publisher HTTP connections (requests are spread round-robin).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// After the last publish, wait at most this many seconds for deliveries to arrive.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Channel name (workload C: the prefix of every channel name).
    #[arg(long, default_value = "bench")]
    pub channel: String,
    /// Workload C: subscribers per group channel (0 = workload B, one broadcast channel).
    #[arg(long, default_value_t = 0)]
    pub group: usize,
}

/// Which channel each publish goes to, and who receives it. Broadcast (workload B): one
/// channel, everyone. Small channels (workload C): even sequence numbers go to the personal
/// channels `<base>-p<i>` in turn, odd ones to the groups `<base>-g<i / group>` in turn.
#[derive(Clone, Copy, Debug)]
struct Route {
    subs: u64,
    /// 0 = broadcast.
    group: u64,
}

impl Route {
    fn groups(&self) -> u64 {
        self.subs.div_ceil(self.group.max(1))
    }

    /// The channels subscriber `i` joins (`,`-joined, as `Proto::handshake` takes them).
    fn channels_of(&self, base: &str, i: u64) -> String {
        match i.checked_div(self.group) {
            None => base.to_owned(),
            Some(g) => format!("{base}-p{i},{base}-g{g}"),
        }
    }

    fn channel_of_seq(&self, base: &str, seq: u64) -> String {
        if self.group == 0 {
            base.to_owned()
        } else if seq.is_multiple_of(2) {
            format!("{base}-p{}", (seq / 2) % self.subs)
        } else {
            format!("{base}-g{}", (seq / 2) % self.groups())
        }
    }

    fn reaches(&self, seq: u64, i: u64) -> bool {
        if self.group == 0 {
            true
        } else if seq.is_multiple_of(2) {
            (seq / 2) % self.subs == i
        } else {
            (seq / 2) % self.groups() == i / self.group
        }
    }

    /// The sequence numbers of bitmap word `w` that reach subscriber `i`.
    fn word_mask(&self, w: usize, i: u64) -> u64 {
        if self.group == 0 {
            return u64::MAX;
        }
        let lo = w as u64 * 64;
        (0..64).fold(0, |m, b| {
            if self.reaches(lo + b, i) {
                m | 1 << b
            } else {
                m
            }
        })
    }
}

/// State shared by all subscribers of one run.
struct Shared {
    proto: Proto,
    /// First measured sequence number.
    warm: u64,
    /// Bitmap size (planned sequence count).
    bits: u64,
    /// Per subscriber: acknowledged publishes that reach it; u64::MAX until publishing ended.
    targets: Vec<AtomicU64>,
    /// Subscribers that have seen `target` messages (or died).
    done: AtomicU64,
    lat: Mutex<Histogram<u64>>,
}

/// What one subscriber saw.
struct SubOut {
    idx: usize,
    recv: Bits,
    dups: u64,
    reordered: u64,
    closed: Option<String>,
}

struct SubState {
    out: SubOut,
    unique: u64,
    max_seen: Option<u64>,
    lat: Vec<u64>,
}

impl SubState {
    #[inline]
    fn on_line(&mut self, sh: &Shared, line: &[u8], now: u64) {
        let Some((t, s)) = sh.proto.data_stamp(line) else {
            return;
        };
        if self.out.recv.set(s) {
            self.out.dups += 1;
            return;
        }
        self.unique += 1;
        match self.max_seen {
            Some(m) if s < m => self.out.reordered += 1,
            _ => self.max_seen = Some(s),
        }
        if s >= sh.warm {
            self.lat.push(now.saturating_sub(t).max(1));
        }
    }

    fn flush(&mut self, sh: &Shared) {
        if !self.lat.is_empty() {
            let mut h = sh.lat.lock().unwrap();
            for &v in &self.lat {
                h.saturating_record(v);
            }
            self.lat.clear();
        }
    }
}

async fn subscriber(
    sh: Arc<Shared>,
    idx: usize,
    link: Link,
    mut lines: LineBuf,
    leftover: Vec<Vec<u8>>,
    mut stop: watch::Receiver<bool>,
    hard: Instant,
) -> SubOut {
    let mut st = SubState {
        out: SubOut {
            idx,
            recv: Bits::with_len(sh.bits),
            dups: 0,
            reordered: 0,
            closed: None,
        },
        unique: 0,
        max_seen: None,
        lat: Vec::with_capacity(64),
    };
    let now = now_ns();
    for l in &leftover {
        st.on_line(&sh, l, now);
    }
    let sleep = tokio::time::sleep_until(hard.into());
    tokio::pin!(sleep);
    let stopped = async move {
        let _ = stop.wait_for(|v| *v).await;
    };
    tokio::pin!(stopped);
    let mut signaled = false;
    let mut ws = match link {
        Link::Ws(ws) => ws,
        Link::Http(mut c) => {
            // One long poll after another, each answering what arrived since the last (CSP);
            // or the chunks of one endless response (an HTTP stream).
            loop {
                let r = tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    _ = &mut sleep => break,
                    r = c.next() => r,
                };
                let now = now_ns();
                match r {
                    Ok(data) => lines.feed(&data, |line| st.on_line(&sh, line, now)),
                    Err(e) => {
                        st.out.closed = Some(e);
                        break;
                    }
                }
                st.flush(&sh);
                if !signaled && st.unique >= sh.targets[idx].load(Relaxed) {
                    signaled = true;
                    sh.done.fetch_add(1, Relaxed);
                }
            }
            st.flush(&sh);
            if !signaled {
                sh.done.fetch_add(1, Relaxed);
            }
            return st.out;
        }
    };
    loop {
        let m = tokio::select! {
            biased;
            _ = &mut stopped => break,
            _ = &mut sleep => break,
            m = ws.next() => m,
        };
        let now = now_ns();
        match m {
            Some(Ok(m)) => match message_bytes(&m) {
                Ok(Some(data)) => lines.feed(data, |line| st.on_line(&sh, line, now)),
                Ok(None) => {}
                Err(e) => {
                    st.out.closed = Some(e);
                    break;
                }
            },
            Some(Err(e)) => {
                st.out.closed = Some(format!("read: {e}"));
                break;
            }
            None => {
                st.out.closed = Some("eof".into());
                break;
            }
        }
        st.flush(&sh);
        if !signaled && st.unique >= sh.targets[idx].load(Relaxed) {
            signaled = true;
            sh.done.fetch_add(1, Relaxed);
        }
    }
    st.flush(&sh);
    if !signaled {
        sh.done.fetch_add(1, Relaxed);
    }
    st.out
}

/// Publisher-side counters.
struct PubShared {
    acked: Vec<AtomicU64>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    http: Mutex<Histogram<u64>>,
}

async fn publisher(
    ctx: Arc<Ctx>,
    ps: Arc<PubShared>,
    client: reqwest::Client,
    (route, base): (Route, String),
    size: usize,
    mut rx: mpsc::Receiver<u64>,
) {
    while let Some(seq) = rx.recv().await {
        let payload = make_payload(now_ns(), seq, size);
        let channel = route.channel_of_seq(&base, seq);
        let (url, body) = ctx.proto.publish_request(&ctx.target, &channel, &payload);
        let t0 = Instant::now();
        let res = client
            .post(url)
            .header("content-type", ctx.proto.publish_content_type())
            .body(body)
            .send()
            .await;
        let ok = match res {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(b) if ctx.proto.publish_ok(status, &b) => Ok(()),
                    Ok(b) => Err(format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&b[..b.len().min(200)])
                    )),
                    Err(e) => Err(format!("body: {e}")),
                }
            }
            Err(e) => Err(format!("send: {e}")),
        };
        ps.http
            .lock()
            .unwrap()
            .saturating_record((t0.elapsed().as_nanos() as u64).max(1));
        match ok {
            Ok(()) => {
                if let Some(w) = ps.acked.get((seq / 64) as usize) {
                    w.fetch_or(1 << (seq % 64), Relaxed);
                }
            }
            Err(e) => {
                ps.errors.fetch_add(1, Relaxed);
                ps.first_error.lock().unwrap().get_or_insert(e);
            }
        }
    }
}

pub async fn run(ctx: Arc<Ctx>, b: Args, hook_port: u16, conc: usize) -> Result<(), String> {
    if !(b.rate > 0.0 && b.duration > 0.0 && b.warmup >= 0.0) {
        return Err("rate and duration must be > 0".into());
    }
    let app = crate::start_webapp(hook_port, false).await?;
    let pids = &ctx.server_pids;
    let total = ((b.warmup + b.duration) * b.rate).round() as u64;
    let warm = (b.warmup * b.rate).round() as u64;
    let planned = Duration::from_secs_f64(b.warmup + b.duration);
    let route = Route {
        subs: b.subs as u64,
        group: b.group as u64,
    };
    let sh = Arc::new(Shared {
        proto: ctx.proto,
        warm,
        bits: total + 1,
        targets: (0..b.subs).map(|_| AtomicU64::new(u64::MAX)).collect(),
        done: AtomicU64::new(0),
        lat: Mutex::new(new_hist()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Hard bound for every subscriber: connect phase + run + drain + slack.
    let hard = Instant::now() + Duration::from_secs(600) + planned * 2;

    let channel = b.channel.clone();
    let sh2 = sh.clone();
    let ph = connect_many(
        ctx.clone(),
        b.subs,
        conc,
        move |i| route.channels_of(&channel, i as u64),
        Duration::from_secs(600),
        move |i, ws, lines, left| {
            subscriber(sh2.clone(), i, ws, lines, left, stop_rx.clone(), hard)
        },
    )
    .await;
    eprintln!(
        "loadgen: {}: {} subscribed, {} failed in {:.2}s",
        if route.group == 0 { "B" } else { "C" },
        ph.ok,
        ph.failed,
        ph.elapsed.as_secs_f64()
    );
    crate::print_errors(&ph.errors);
    if ph.ok == 0 {
        let _ = stop_tx.send(true);
        return Err("no subscriber connected".into());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Publishers.
    let ps = Arc::new(PubShared {
        acked: (0..total.div_ceil(64) + 1)
            .map(|_| AtomicU64::new(0))
            .collect(),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        http: Mutex::new(new_hist()),
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let k = b.publishers.max(1);
    let mut txs = Vec::with_capacity(k);
    let mut pubs = Vec::with_capacity(k);
    for _ in 0..k {
        let (tx, rx) = mpsc::channel::<u64>(64);
        txs.push(tx);
        pubs.push(tokio::spawn(publisher(
            ctx.clone(),
            ps.clone(),
            client.clone(),
            (route, b.channel.clone()),
            b.payload,
            rx,
        )));
    }

    // Pacer: at each 1 ms tick, hand out every sequence number that is due. Bounded by `total`
    // and by twice the planned time (if the publishers fall behind, the run is cut short).
    let start = Instant::now();
    let cut = planned * 2 + Duration::from_secs(5);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent: u64 = 0;
    let mut mark = None;
    'pace: while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * b.rate) as u64 + 1).min(total);
        while sent < due {
            if sent == warm && mark.is_none() {
                mark = Some((
                    CpuMark::now(pids),
                    CpuMark::now(&[self_pid()]),
                    Instant::now(),
                    MachineMark::now(),
                ));
            }
            if txs[(sent % k as u64) as usize].send(sent).await.is_err() {
                break 'pace;
            }
            sent += 1;
            if start.elapsed() > cut {
                break 'pace;
            }
        }
    }
    drop(txs);
    for p in pubs {
        let _ = tokio::time::timeout(Duration::from_secs(15), p).await;
    }
    let pub_end = Instant::now();
    let (srv0, me0, t_measure, machine0) = mark.unwrap_or((
        CpuMark::now(pids),
        CpuMark::now(&[self_pid()]),
        Instant::now(),
        MachineMark::now(),
    ));

    // Drain: wait until every live subscriber has all acknowledged messages, or the drain time.
    let acked: Vec<u64> = ps.acked.iter().map(|a| a.load(Relaxed)).collect();
    for (i, t) in sh.targets.iter().enumerate() {
        let n: u64 = acked
            .iter()
            .enumerate()
            .map(|(w, a)| (a & route.word_mask(w, i as u64)).count_ones() as u64)
            .sum();
        t.store(n, Relaxed);
    }
    let drain_until = Instant::now() + Duration::from_secs_f64(b.drain);
    while sh.done.load(Relaxed) < ph.ok && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (srv_cpu, cpu_wall) = srv0.since();
    let (lg_cpu, _) = me0.since();
    let srv_sys = srv0.sys_share_pct();
    let lg_sys = me0.sys_share_pct();
    let other = machine0.other_pct(srv_cpu, lg_cpu);
    let srv_rss = rss_sum_kb(pids);
    let lg_rss = rss_kb(self_pid()).unwrap_or(0);
    let _ = stop_tx.send(true);
    let outs = join_all(ph.handles, Duration::from_secs(30)).await;

    // Exact accounting over the measured window [warm, sent).
    let in_window = |w: usize| -> u64 {
        let lo = w as u64 * 64;
        let mut m = u64::MAX;
        if lo < warm {
            m = if warm - lo >= 64 {
                0
            } else {
                u64::MAX << (warm - lo)
            };
        }
        if lo + 64 > sent {
            m &= if sent <= lo {
                0
            } else {
                u64::MAX >> (64 - (sent - lo))
            };
        }
        m
    };
    let window: Vec<u64> = (0..acked.len()).map(in_window).collect();
    let (mut deliveries, mut lost, mut gaps, mut dups, mut reordered, mut closed) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut expected = 0u64;
    let mut close_reason = None;
    for o in &outs {
        dups += o.dups;
        reordered += o.reordered;
        if let Some(c) = &o.closed {
            closed += 1;
            close_reason.get_or_insert_with(|| c.clone());
        }
        let mut prev_missing = false;
        for (w, (&a, &win)) in acked.iter().zip(&window).enumerate() {
            let m = win & route.word_mask(w, o.idx as u64);
            expected += (a & m).count_ones() as u64;
            let r = o.recv.words.get(w).copied().unwrap_or(0);
            deliveries += (r & m).count_ones() as u64;
            let missing = a & m & !r;
            lost += missing.count_ones() as u64;
            // A gap is a maximal run of missing sequence numbers.
            if missing == 0 {
                if a & m != 0 {
                    prev_missing = false;
                }
                continue;
            }
            for bit in 0..64 {
                if a & m & (1 << bit) == 0 {
                    continue;
                }
                let miss = missing & (1 << bit) != 0;
                if miss && !prev_missing {
                    gaps += 1;
                }
                prev_missing = miss;
            }
        }
    }
    // Subscribers whose task did not report count as having received nothing (as many as an
    // average subscriber that did).
    let missing_subs = ph.ok - outs.len() as u64;
    let missing_expected = (missing_subs * expected)
        .checked_div(outs.len() as u64)
        .unwrap_or(0);
    lost += missing_expected;
    expected += missing_expected;
    let measured_pub_s = pub_end.duration_since(t_measure).as_secs_f64().max(1e-3);

    let mut r = Report::default();
    r.add("workload", if route.group == 0 { "b" } else { "c" });
    r.add("subs", b.subs);
    r.add("group", b.group);
    r.add("subs_ok", ph.ok);
    r.add("subs_failed", ph.failed);
    r.add("rate_target", b.rate);
    r.add("payload_b", b.payload);
    r.add("published", sent);
    r.add("pub_errors", ps.errors.load(Relaxed));
    r.add(
        "pub_rate",
        format!("{:.0}", (sent - warm.min(sent)) as f64 / measured_pub_s),
    );
    hist_fields(&mut r, "pub_http", &ps.http.lock().unwrap());
    r.add("deliveries", deliveries);
    r.add(
        "delivered_per_s",
        format!("{:.0}", deliveries as f64 / measured_pub_s),
    );
    r.add("expected", expected);
    r.add("lost", lost);
    r.add(
        "loss_pct",
        format!("{:.4}", lost as f64 * 100.0 / expected.max(1) as f64),
    );
    r.add("gaps", gaps);
    r.add("dups", dups);
    r.add("reordered", reordered);
    r.add("closed_by_server", closed);
    hist_fields(&mut r, "lat", &sh.lat.lock().unwrap());
    cdf_fields(&mut r, "lat", &sh.lat.lock().unwrap());
    r.add(
        "srv_cpu_pct",
        format!("{:.1}", srv_cpu as f64 * 100.0 / cpu_wall as f64),
    );
    r.add(
        "srv_cpu_ns_per_delivery",
        format!("{:.0}", srv_cpu as f64 / deliveries.max(1) as f64),
    );
    r.add(
        "srv_cpu_ns_per_publish",
        format!(
            "{:.0}",
            srv_cpu as f64 / (sent - warm.min(sent)).max(1) as f64
        ),
    );
    r.add("srv_sys_share_pct", format!("{srv_sys:.0}"));
    r.add("lg_sys_share_pct", format!("{lg_sys:.0}"));
    r.add(
        "lg_cpu_pct",
        format!("{:.1}", lg_cpu as f64 * 100.0 / cpu_wall as f64),
    );
    r.add("other_cpu_pct", format!("{other:.1}"));
    r.add("window_s", format!("{:.2}", cpu_wall as f64 / 1e9));
    r.add("srv_rss_kb", srv_rss);
    r.add("lg_rss_kb", lg_rss);
    crate::hook_fields(&mut r, &app);
    if let Some(e) = ps.first_error.lock().unwrap().as_ref() {
        eprintln!("loadgen: first publish error: {e}");
    }
    if let Some(c) = close_reason {
        eprintln!("loadgen: {closed} subscribers closed early, e.g.: {c}");
    }
    r.print();
    crate::linger(&app, ph.ok, Duration::from_secs(5)).await;
    Ok(())
}
