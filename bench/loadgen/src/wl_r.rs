//! Workload R: a rolling restart as users see it (hookbox only, two nodes on one Redis). N
//! subscribers connect to the first node (`--port`) asking for resume tickets and channel
//! positions, and join one channel; the publisher posts numbered publications through the second
//! node (`--extra-port`) at a fixed rate; after `--before` of them the first node gets SIGTERM
//! (its pid is the first `--server-pid`). Every subscriber, closed by the node's shutdown, comes
//! back on the second node after a pause, the pauses spread evenly over `--spread` (as
//! `hookbox.js` backs off with jitter), presents its ticket, asks to recover from the last position it saw, and reads until
//! the last publication. Reports publications lost and duplicated (per subscriber, summed), the
//! time until all are back, and the web app's calls per subscriber during the restart.

use crate::net::{ws_connect, Ws};
use crate::proto::{make_payload, payload_stamp, rtjp_name, LineBuf};
use crate::stats::{hist_fields, new_hist, now_ns, Report};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout_at;
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Subscribers, all on one channel, all on the first node.
    #[arg(long, default_value_t = 10_000)]
    pub subs: usize,
    /// Publications before the first node is stopped.
    #[arg(long, default_value_t = 20)]
    pub before: u64,
    /// Publications after it (while the subscribers come back).
    #[arg(long, default_value_t = 100)]
    pub during: u64,
    /// Publications per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds within which each subscriber picks its moment to come back.
    #[arg(long, default_value_t = 1.0)]
    pub spread: f64,
    /// Channel name (created with a history of `before + during` publications, for recovery).
    #[arg(long, default_value = "feed")]
    pub channel: String,
}

/// One subscriber's restart: what it saw, and when it was back (since the stop).
struct Outcome {
    lost: u64,
    duplicated: u64,
    back: Duration,
    resumed: bool,
    recovered: bool,
    /// The connection on the second node, kept open until every subscriber is done (one that
    /// left would be the web app's disconnect to count, not the restart's).
    _open: Conn,
}

/// A subscriber's view of the channel: the publications it received (by number), its position,
/// its latest ticket.
#[derive(Default)]
struct View {
    seen: Vec<u64>,
    epoch: String,
    offset: u64,
    ticket: String,
    /// Whether the channel's publications count: not between a return's CONNECT and the answer
    /// to its recovery, which replays them (as `hookbox.js` ignores them).
    listening: bool,
    /// The latest frames' names and a few of their args, for an error.
    recent: VecDeque<String>,
}

impl View {
    /// Takes in one frame; returns its name.
    fn take(&mut self, line: &[u8]) -> Result<Option<String>, String> {
        let Some(name) = rtjp_name(line).map(str::to_owned) else {
            return Ok(None);
        };
        if self.recent.len() == 6 {
            self.recent.pop_front();
        }
        self.recent
            .push_back(String::from_utf8_lossy(&line[..line.len().min(90)]).into_owned());
        match name.as_str() {
            "PUBLISH" if !self.listening => {}
            "PUBLISH" => {
                let (_, seq) = payload_stamp(line).ok_or("PUBLISH without our payload")?;
                self.seen.push(seq);
                self.offset = args(line)?["offset"]
                    .as_u64()
                    .ok_or("PUBLISH without offset")?;
            }
            "RESUME" => {
                self.ticket = args(line)?["resume"]
                    .as_str()
                    .ok_or("RESUME without ticket")?
                    .to_owned();
            }
            "ERROR" => return Err(String::from_utf8_lossy(line).into_owned()),
            _ => {}
        }
        Ok(Some(name))
    }
}

/// The last few publications seen, for an error.
fn last_seen(view: &View) -> Vec<u64> {
    view.seen.iter().rev().take(5).rev().copied().collect()
}

fn args(line: &[u8]) -> Result<Value, String> {
    let frame: Value = serde_json::from_slice(line).map_err(|e| format!("bad frame: {e}"))?;
    Ok(frame.get(2).cloned().unwrap_or(Value::Null))
}

/// A connection, with the lines it received that no read has taken yet.
struct Conn {
    ws: Ws,
    lines: LineBuf,
    unread: VecDeque<Vec<u8>>,
}

impl Conn {
    async fn open(url: &str, dst: SocketAddr, deadline: Instant) -> Result<Conn, String> {
        Ok(Conn {
            ws: ws_connect(url, dst, None, deadline).await?,
            lines: LineBuf::default(),
            unread: VecDeque::new(),
        })
    }

    async fn send(&mut self, id: u64, name: &str, args: Value) -> Result<(), String> {
        let text = format!("{}\r\n", json!([id, name, args]));
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// Reads lines into `view` until `done` says so (by the frame's name and the line), or the
    /// socket ends (`Ok(false)`).
    async fn read_until(
        &mut self,
        view: &mut View,
        deadline: Instant,
        mut done: impl FnMut(&str, &[u8], &mut View) -> bool,
    ) -> Result<bool, String> {
        loop {
            // Lines already here first (those after the one a previous call waited for): the
            // last frames may all have come in one message.
            while let Some(line) = self.unread.pop_front() {
                if let Some(name) = view.take(&line)? {
                    if done(&name, &line, view) {
                        return Ok(true);
                    }
                }
            }
            let msg = match timeout_at(deadline.into(), self.ws.next()).await {
                Err(_) => return Err("timed out".into()),
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return Ok(false),
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
            };
            let unread = &mut self.unread;
            self.lines
                .feed(msg.as_bytes(), |line| unread.push_back(line.to_vec()));
        }
    }
}

pub async fn run(
    ctx: Arc<crate::clients::Ctx>,
    r: Args,
    hook_port: u16,
    conc: usize,
) -> Result<(), String> {
    if ctx.dsts.len() < 2 || ctx.server_pids.is_empty() {
        return Err(
            "R needs two nodes (--port, --extra-port) and the first one's --server-pid".into(),
        );
    }
    let total = r.before + r.during;
    let _ = crate::webhook::CONNECT_EXTRA.set(", \"resume_ttl\": 300".to_owned());
    let _ = crate::webhook::CHANNEL_HISTORY.set(total);
    let app = crate::start_webapp(hook_port, false)
        .await?
        .ok_or("R counts the web app's calls: it needs --webhook-port")?;
    let (first, second) = (ctx.dsts[0], ctx.dsts[1]);
    let (stop_tx, stop_rx) = watch::channel(None::<Instant>);
    let sem = Arc::new(Semaphore::new(conc.max(1)));
    let (joined_tx, mut joined_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let mut tasks = Vec::with_capacity(r.subs);
    let t0 = Instant::now();
    for i in 0..r.subs {
        let (sem, joined_tx, mut stop_rx) = (sem.clone(), joined_tx.clone(), stop_rx.clone());
        let (channel, spread) = (r.channel.clone(), r.spread);
        let handshake = ctx.handshake_timeout;
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            let joined = join(i, first, &channel, handshake).await;
            drop(permit);
            let (conn, view) = match joined {
                Ok(j) => {
                    let _ = joined_tx.send(Ok(()));
                    j
                }
                Err(e) => {
                    let _ = joined_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            restart(i, conn, view, second, &channel, total, spread, &mut stop_rx).await
        }));
    }
    drop(joined_tx);
    let mut failed_joins = 0u64;
    for _ in 0..r.subs {
        match joined_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                failed_joins += 1;
                eprintln!("loadgen: R: join failed: {e}");
            }
            None => break,
        }
    }
    eprintln!(
        "loadgen: R: {} joined in {:.2}s",
        r.subs as u64 - failed_joins,
        t0.elapsed().as_secs_f64()
    );

    // The publisher, through the second node, at the rate; the stop after `before`.
    let node2 = crate::proto::Target {
        port: second.port(),
        ..ctx.target.clone()
    };
    let interval = Duration::from_secs_f64(1.0 / r.rate.max(0.001));
    let mut tick = tokio::time::interval(interval);
    let mut calls_at_stop = 0;
    for seq in 1..=total {
        tick.tick().await;
        let payload = make_payload(now_ns(), seq, 64);
        let (url, body) = ctx.proto.publish_request(&node2, &r.channel, &payload);
        let reply = ctx
            .http
            .post(url)
            .header("content-type", ctx.proto.publish_content_type())
            .body(body)
            .send()
            .await
            .map_err(|e| format!("publish {seq}: {e}"))?;
        let status = reply.status().as_u16();
        let text = reply.bytes().await.unwrap_or_default();
        if !ctx.proto.publish_ok(status, &text) {
            return Err(format!(
                "publish {seq}: {status} {}",
                String::from_utf8_lossy(&text)
            ));
        }
        if seq == r.before {
            calls_at_stop = app.stats.total();
            let pid = ctx.server_pids[0];
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let _ = stop_tx.send(Some(Instant::now()));
        }
    }

    let mut back = new_hist();
    let (mut lost, mut duplicated, mut resumed, mut recovered, mut failed) = (0, 0, 0, 0, 0u64);
    let mut last = Duration::ZERO;
    let mut errors = std::collections::BTreeMap::new();
    let mut open = Vec::with_capacity(r.subs);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(120), t).await {
            Ok(Ok(Ok(o))) => {
                lost += o.lost;
                duplicated += o.duplicated;
                resumed += u64::from(o.resumed);
                recovered += u64::from(o.recovered);
                back.saturating_record(o.back.as_nanos().max(1) as u64);
                last = last.max(o.back);
                open.push(o);
            }
            Ok(Ok(Err(e))) => {
                failed += 1;
                *errors
                    .entry(e.chars().take(600).collect::<String>())
                    .or_insert(0u64) += 1;
            }
            _ => failed += 1,
        }
    }
    crate::print_errors(&errors);
    let calls = app.stats.total() - calls_at_stop;
    let mut rep = Report::default();
    rep.add("workload", "r");
    rep.add("subs", r.subs);
    rep.add("publications", total);
    rep.add("back", r.subs as u64 - failed);
    rep.add("failed", failed);
    rep.add("lost", lost);
    rep.add("duplicated", duplicated);
    rep.add("resumed", resumed);
    rep.add("recovered", recovered);
    rep.add("all_back_ms", format!("{:.0}", last.as_secs_f64() * 1000.0));
    hist_fields(&mut rep, "back", &back);
    rep.add("hooks_during_restart", calls);
    rep.add(
        "hooks_per_client",
        format!("{:.3}", calls as f64 / r.subs.max(1) as f64),
    );
    // The whole run's calls by kind (the joins' connect, subscribe and create_channel included).
    let st = &app.stats;
    for (kind, n) in [
        ("connect", &st.connect),
        ("create_channel", &st.create_channel),
        ("subscribe", &st.subscribe),
        ("unsubscribe", &st.unsubscribe),
        ("destroy_channel", &st.destroy_channel),
        ("disconnect", &st.disconnect),
        ("other", &st.other),
    ] {
        rep.add(
            format!("hooks_{kind}"),
            n.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    rep.print();
    drop(open);
    app.stop();
    Ok(())
}

/// Subscriber `i` connects to the first node with a ticket asked for and positions on, joins
/// the channel, and waits for the ticket that names it.
async fn join(
    i: usize,
    node: SocketAddr,
    channel: &str,
    budget: Duration,
) -> Result<(Conn, View), String> {
    let deadline = Instant::now() + budget;
    let mut conn = Conn::open(&format!("ws://{node}/ws"), node, deadline).await?;
    let mut view = View {
        listening: true,
        ..View::default()
    };
    let cookie = format!("u={i}");
    conn.send(
        1,
        "CONNECT",
        json!({"cookie_string": cookie, "recovery": true, "resume": true}),
    )
    .await?;
    conn.read_until(&mut view, deadline, |name, _, _| name == "CONNECTED")
        .await?;
    conn.send(2, "SUBSCRIBE", json!({"channel_name": channel}))
        .await?;
    let mut own = None;
    conn.read_until(&mut view, deadline, |name, line, _| {
        if name == "SUBSCRIBE" {
            own = args(line).ok();
        }
        name == "SUBSCRIBE"
    })
    .await?;
    let own = own.ok_or("no SUBSCRIBE")?;
    view.epoch = own["epoch"]
        .as_str()
        .ok_or("SUBSCRIBE without epoch")?
        .to_owned();
    view.offset = own["offset"].as_u64().ok_or("SUBSCRIBE without offset")?;
    conn.read_until(&mut view, deadline, |name, _, _| name == "RESUME")
        .await?;
    Ok((conn, view))
}

/// Reads until the first node closes the connection, comes back on the second after its
/// pause within `spread` seconds, recovers, and reads until publication `total`.
#[allow(clippy::too_many_arguments)]
async fn restart(
    i: usize,
    mut conn: Conn,
    mut view: View,
    node: SocketAddr,
    channel: &str,
    total: u64,
    spread: f64,
    stop_rx: &mut watch::Receiver<Option<Instant>>,
) -> Result<Outcome, String> {
    let far = Instant::now() + Duration::from_secs(600);
    conn.read_until(&mut view, far, |_, _, _| false)
        .await
        .map_err(|e| format!("until the stop: {e}"))?;
    // Its socket goes now: 10,000 old and new ones together would be many open files.
    drop(conn);
    let stopped = stop_rx
        .wait_for(|t| t.is_some())
        .await
        .map_err(|_| "never stopped")?
        .expect("checked");
    // A pause in [0, spread) from the subscriber's number (spread evenly, no randomness needed).
    let pause = Duration::from_secs_f64(spread * ((i as u64 * 7919) % 10_000) as f64 / 10_000.0);
    tokio::time::sleep(pause).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    view.listening = false;
    let mut conn = Conn::open(&format!("ws://{node}/ws"), node, deadline).await?;
    let cookie = format!("u={i}");
    conn.send(
        1,
        "CONNECT",
        json!({"cookie_string": cookie, "recovery": true, "resume": view.ticket}),
    )
    .await?;
    let mut resumed = false;
    conn.read_until(&mut view, deadline, |name, line, _| {
        if name == "CONNECTED" {
            resumed = args(line).is_ok_and(|a| a["resumed"] == json!(true));
        }
        name == "CONNECTED"
    })
    .await
    .map_err(|e| format!("back: CONNECT: {e}"))?;
    // Until the answer to the recovery the channel's frames are dropped: it replays them.
    let position = json!({"epoch": view.epoch, "offset": view.offset});
    conn.send(
        2,
        "SUBSCRIBE",
        json!({"channel_name": channel, "recover": position}),
    )
    .await?;
    let mut recovered = false;
    conn.read_until(&mut view, deadline, |name, line, v| {
        let answer = name == "SUBSCRIBE" && args(line).is_ok_and(|a| a.get("recovered").is_some());
        if answer {
            recovered = args(line).is_ok_and(|a| a["recovered"] == json!(true));
            v.listening = true;
        }
        answer
    })
    .await
    .map_err(|e| format!("back: SUBSCRIBE: {e}"))?;
    let back = stopped.elapsed();
    if view.seen.last() != Some(&total) {
        conn.read_until(&mut view, deadline, |_, _, v| v.seen.last() == Some(&total))
            .await
            .map_err(|e| {
                format!(
                    "back: until the last publication: {e} (saw {:?}, last frames {:?})",
                    &last_seen(&view),
                    view.recent
                )
            })?;
    }
    let mut distinct = view.seen.clone();
    distinct.sort_unstable();
    distinct.dedup();
    Ok(Outcome {
        lost: total - distinct.len() as u64,
        duplicated: (view.seen.len() - distinct.len()) as u64,
        back,
        resumed,
        recovered,
        _open: conn,
    })
}
