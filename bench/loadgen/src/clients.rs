//! Opening many subscribers with bounded concurrency, and keeping them open.

use crate::net::{ws_connect, HttpLink, Link, SrcPool};
use crate::proto::{message_bytes, Handshake, LineBuf, Proto, Target};
use crate::stats::new_hist;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

/// What every workload needs to reach the server under test.
pub struct Ctx {
    pub proto: Proto,
    pub target: Target,
    /// The nodes subscribers connect to, round-robin by subscriber number (the first one
    /// also takes the publishes).
    pub dsts: Vec<SocketAddr>,
    pub src: SrcPool,
    /// The server's processes (hookbox nodes, redis-server) whose CPU and RSS are summed.
    pub server_pids: Vec<u32>,
    /// Per-connection budget for TCP connect + upgrade + login + subscribe.
    pub handshake_timeout: Duration,
    /// For CSP subscribers: one pooled HTTP client (a keep-alive connection per long poll).
    pub http: reqwest::Client,
    /// hookbox: subscribers ask for resume tickets (CONNECT `resume: true`).
    pub tickets: bool,
}

/// Open one socket, log in as `user` (presenting `ticket`, if any), subscribe to `channel`.
pub async fn open_and_subscribe(
    ctx: &Ctx,
    i: usize,
    user: u64,
    channel: &str,
    ticket: Option<&str>,
) -> Result<(Link, LineBuf, Handshake), String> {
    let deadline = Instant::now() + ctx.handshake_timeout;
    let dst = ctx.dsts[i % ctx.dsts.len()];
    let target = Target {
        port: dst.port(),
        ..ctx.target.clone()
    };
    let url = ctx.proto.ws_url(&target, channel);
    let t0 = Instant::now();
    let mut ws = match ctx.proto {
        Proto::Csp => Link::Http(HttpLink::Csp(
            crate::csp::CspLink::open(ctx.http.clone(), url, deadline).await?,
        )),
        Proto::Pushpin => Link::Http(HttpLink::Stream(
            crate::stream::StreamLink::open(ctx.http.clone(), url, deadline).await?,
        )),
        _ => Link::Ws(ws_connect(&url, dst, ctx.src.pick(i), deadline).await?),
    };
    let open_ns = t0.elapsed().as_nanos() as u64;
    let mut lines = ctx.proto.lines();
    let mut hs = ctx
        .proto
        .handshake(
            &mut ws,
            &mut lines,
            user,
            channel,
            (ctx.tickets, ticket),
            deadline,
        )
        .await?;
    hs.open_ns = open_ns;
    Ok((ws, lines, hs))
}

/// Result of the connect phase.
pub struct Phase<T> {
    pub ok: u64,
    pub failed: u64,
    /// Error text → count.
    pub errors: BTreeMap<String, u64>,
    pub open: Histogram<u64>,
    pub login: Histogram<u64>,
    pub subscribe: Histogram<u64>,
    /// open + login + subscribe.
    pub total: Histogram<u64>,
    /// From the first spawn to the last answer.
    pub elapsed: Duration,
    pub handles: Vec<JoinHandle<Option<T>>>,
}

/// Opens `n` subscribers (user `i`, channel `channel_of(i)`), at most `conc` handshakes in
/// flight. After its handshake each runs `body(i, link, lines, leftover)` until that returns; the
/// task's result is `None` if the handshake failed. Returns once every handshake has ended or
/// `phase_timeout` has passed.
pub async fn connect_many<T, F, Fut>(
    ctx: Arc<Ctx>,
    n: usize,
    conc: usize,
    channel_of: impl Fn(usize) -> String,
    phase_timeout: Duration,
    body: F,
) -> Phase<T>
where
    T: Send + 'static,
    F: Fn(usize, Link, LineBuf, Vec<Vec<u8>>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let sem = Arc::new(Semaphore::new(conc.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<Handshake, String>>();
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let ctx = ctx.clone();
        let sem = sem.clone();
        let tx = tx.clone();
        let channel = channel_of(i);
        let body = body.clone();
        handles.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await.ok()?;
            let r = open_and_subscribe(&ctx, i, i as u64, &channel, None).await;
            drop(permit);
            match r {
                Ok((ws, lines, mut hs)) => {
                    let leftover = std::mem::take(&mut hs.leftover);
                    let _ = tx.send(Ok(hs));
                    Some(body(i, ws, lines, leftover).await)
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    None
                }
            }
        }));
    }
    drop(tx);
    let mut ph = Phase {
        ok: 0,
        failed: 0,
        errors: BTreeMap::new(),
        open: new_hist(),
        login: new_hist(),
        subscribe: new_hist(),
        total: new_hist(),
        elapsed: Duration::ZERO,
        handles,
    };
    let deadline = tokio::time::Instant::now() + phase_timeout;
    let mut last = t0;
    while (ph.ok + ph.failed) < n as u64 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(hs))) => {
                ph.ok += 1;
                ph.open.saturating_record(hs.open_ns.max(1));
                ph.login.saturating_record(hs.login_ns.max(1));
                ph.subscribe.saturating_record(hs.subscribe_ns.max(1));
                ph.total
                    .saturating_record((hs.open_ns + hs.login_ns + hs.subscribe_ns).max(1));
            }
            Ok(Some(Err(e))) => {
                ph.failed += 1;
                let key: String = e.chars().take(80).collect();
                *ph.errors.entry(key).or_default() += 1;
            }
            Ok(None) => break,
            Err(_) => {
                let missing = n as u64 - ph.ok - ph.failed;
                ph.failed += missing;
                *ph.errors.entry("connect phase timeout".into()).or_default() += missing;
                break;
            }
        }
        last = Instant::now();
    }
    ph.elapsed = last - t0;
    ph
}

/// How a held connection ended.
#[derive(Debug, Default)]
pub struct HoldEnd {
    /// Data messages received while idle.
    pub messages: u64,
    /// Set if the server closed the connection (with the close code, if any).
    pub closed: Option<String>,
}

/// Keep a connection open and read it (so control frames are answered) until `stop` or `hard`.
pub async fn hold(link: Link, mut stop: watch::Receiver<bool>, hard: Instant) -> HoldEnd {
    let mut end = HoldEnd::default();
    let mut ws = match link {
        Link::Ws(ws) => ws,
        Link::Http(mut c) => {
            // A CSP client is idle in a long poll, re-issued as each one ends; a stream waits.
            let sleep = tokio::time::sleep_until(hard.into());
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|v| *v) => break,
                    _ = &mut sleep => break,
                    r = c.next() => match r {
                        Ok(data) if !data.is_empty() => end.messages += 1,
                        Ok(_) => {}
                        Err(e) => { end.closed = Some(e); break; }
                    }
                }
            }
            return end;
        }
    };
    let sleep = tokio::time::sleep_until(hard.into());
    tokio::pin!(sleep);
    let stopped = async move {
        let _ = stop.wait_for(|v| *v).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            _ = &mut sleep => break,
            m = ws.next() => match m {
                Some(Ok(m)) => match message_bytes(&m) {
                    Ok(Some(_)) => end.messages += 1,
                    Ok(None) => {}
                    Err(e) => { end.closed = Some(e); break; }
                },
                Some(Err(e)) => { end.closed = Some(format!("read: {e}")); break; }
                None => { end.closed = Some("eof".into()); break; }
            }
        }
    }
    end
}

/// Wait for tasks to end, at most `limit`; returns their results (aborted ones are skipped).
pub async fn join_all<T>(handles: Vec<JoinHandle<Option<T>>>, limit: Duration) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(deadline, h).await {
            Ok(Ok(Some(t))) => out.push(t),
            Ok(_) => {}
            Err(_) => abort.abort(),
        }
    }
    out
}
