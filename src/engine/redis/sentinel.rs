//! Redis Sentinel (`--redis-sentinel NAME`, with `--redis-url` listing the Sentinels).
//!
//! At startup every Sentinel is asked; the master most of them name (that says it is the master:
//! `ROLE`) is taken, and the next one if it does not. Then every second this node asks
//! again; when the Sentinels name another master (a failover), the node connects to it, sends
//! its commands there, rewinds the channels the new master has behind what this node delivered
//! (events the old master never replicated), subscribes a new pub/sub connection to every
//! channel the old one had, and puts it in place of the old one. While no master answers,
//! commands fail as when Redis is away (the hub's errors and retries); nothing is accepted that
//! is not written. Events published on the new master before this node subscribed there never
//! reach it: the resynchronisation that follows (the one after a dropped pub/sub connection)
//! counts them lost (`hookbox_engine_lost_events_total`), as when Redis goes away.
//!
//! The credentials and database of the first `--redis-url` are the master's; the Sentinels are
//! asked without credentials.

use super::link::{self, Dispatcher, Link};
use super::{unavailable, Inner, Members};
use crate::engine::delivery::Snapshot;
use crate::engine::EngineError;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use url::Url;

/// How often the Sentinels are asked for the master.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// Channels whose snapshots a switch reads at once (see `switch`).
const SNAPSHOTS_AT_ONCE: usize = 64;
/// How long one Sentinel may take to connect and to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The Sentinels of one master.
pub(super) struct Sentinels {
    /// Each Sentinel, without credentials or database (as errors name it).
    sentinels: Vec<Url>,
    /// What the Sentinels ask for (`requirepass`), if anything: `--redis-sentinel-password`.
    password: Option<String>,
    /// The first URL as given: the master's URL is this with the master's host and port.
    template: Url,
    name: String,
}

impl Sentinels {
    pub fn new(
        urls: &[String],
        name: &str,
        password: Option<&str>,
    ) -> Result<Sentinels, EngineError> {
        let invalid = |u: &str| EngineError::Unavailable(format!("{u}: not a Sentinel's URL"));
        let mut sentinels = Vec::with_capacity(urls.len());
        for u in urls {
            let mut url = Url::parse(u).map_err(|_| invalid(u))?;
            if url.host_str().is_none() {
                return Err(invalid(u));
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_path("");
            sentinels.push(url);
        }
        let template = urls
            .first()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| EngineError::Unavailable("no Sentinel given".into()))?;
        Ok(Sentinels {
            sentinels,
            password: password.map(str::to_owned),
            template,
            name: name.to_owned(),
        })
    }

    /// The masters the Sentinels name (every Sentinel is asked, at once), the one most of them
    /// name first; equal counts keep the Sentinels' order. An error if none names one.
    pub async fn named(&self) -> Result<Vec<String>, EngineError> {
        let asked = self.sentinels.iter().map(|s| self.ask(s));
        let answers = futures_util::future::join_all(asked).await;
        let mut votes: Vec<(String, usize)> = Vec::new();
        let mut why = String::from("no Sentinel given");
        for (sentinel, answer) in self.sentinels.iter().zip(answers) {
            match answer {
                Ok(Some((host, port))) => {
                    let url = self.master_url(&host, port);
                    match votes.iter_mut().find(|(u, _)| *u == url) {
                        Some((_, n)) => *n += 1,
                        None => votes.push((url, 1)),
                    }
                }
                Ok(None) => why = format!("{sentinel} knows no master named {}", self.name),
                Err(e) => why = format!("{sentinel}: {e}"),
            }
        }
        if votes.is_empty() {
            return Err(EngineError::Unavailable(format!(
                "no Sentinel named the master {}: {why}",
                self.name
            )));
        }
        // A stable sort: equal counts stay in the Sentinels' order.
        votes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        Ok(votes.into_iter().map(|(url, _)| url).collect())
    }

    /// At startup: the first master named (see [`Sentinels::named`]) that may be taken for the
    /// master (see [`confirm_master`]).
    pub async fn master(&self) -> Result<String, EngineError> {
        let mut refused = None;
        for url in self.named().await? {
            let checked = match link::manager(&url, None).await {
                Ok(mut conn) => confirm_master(&mut conn, &url).await,
                Err(e) => Err(e),
            };
            match checked {
                Ok(()) => return Ok(url),
                Err(e) => refused = Some(e),
            }
        }
        Err(refused.unwrap_or_else(|| EngineError::Unavailable("no master named".into())))
    }

    /// `SENTINEL get-master-addr-by-name` on one Sentinel, on a connection of its own (so a
    /// Sentinel that restarted is simply asked again).
    async fn ask(&self, sentinel: &Url) -> Result<Option<(String, u16)>, String> {
        use redis::IntoConnectionInfo;
        let mut info = sentinel
            .as_str()
            .into_connection_info()
            .map_err(|e| e.to_string())?;
        if let Some(password) = &self.password {
            // Set as given: through the URL, a `%41` in it would be decoded to `A`.
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let asked = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.name)
                .query_async::<Option<(String, u16)>>(&mut conn)
                .await
        };
        match tokio::time::timeout(ANSWER_WITHIN, asked).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {ANSWER_WITHIN:?}")),
        }
    }

    fn master_url(&self, host: &str, port: u16) -> String {
        let mut url = self.template.clone();
        // The host is an address Sentinel reported; one it cannot set (none) leaves the
        // template's, which then fails to connect and is reported like any unreachable Redis.
        // An IPv6 address goes in brackets.
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let _ = url.set_host(Some(&host));
        let _ = url.set_port(Some(port));
        url.to_string()
    }
}

/// Follows failovers until shutdown (or until the engine is gone): asks the Sentinels every
/// `ASK_EVERY`, and switches to the master they name when it is not `current`.
pub(super) fn follow(
    inner: Weak<Inner>,
    sentinels: Sentinels,
    mut current: String,
    dispatch: Dispatcher,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ASK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether the last question went unanswered: logged once, not every second.
        let mut failing = false;
        // The last master named that could not be switched to (see below).
        let mut refused: Option<String> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            // The engine is gone (its start failed after this task began): nothing to follow.
            if inner.strong_count() == 0 {
                return;
            }
            let named = match sentinels.named().await {
                Ok(named) => {
                    failing = false;
                    named
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("{e}");
                    }
                    failing = true;
                    continue;
                }
            };
            if named.first() == Some(&current) {
                refused = None;
                continue;
            }
            let Some(inner) = inner.upgrade() else { return };
            for master in named {
                // The rest are named by no more Sentinels than the master in use.
                if master == current {
                    break;
                }
                // A master refused is tried again each second, but logged once.
                let quiet = refused.as_deref() == Some(master.as_str());
                if !quiet {
                    tracing::warn!(
                        "Redis Sentinel names a new master for {}: {} (was {}); switching to it",
                        sentinels.name,
                        address(&master),
                        address(&current)
                    );
                }
                match switch(&inner, &master, &dispatch).await {
                    Ok(()) => {
                        crate::metrics::redis_master_switch();
                        current = master;
                        refused = None;
                        break;
                    }
                    Err(e) => {
                        if !quiet {
                            tracing::warn!("switching to the new Redis master failed: {e}");
                        }
                        refused = Some(master);
                    }
                }
            }
        }
    });
}

/// Puts connections to `master` in place of the old ones.
async fn switch(inner: &Inner, master: &str, dispatch: &Dispatcher) -> Result<(), EngineError> {
    let (Link::Followed(cmd), Link::Followed(pubsub)) = (&inner.cmd, &inner.pubsub) else {
        return Ok(());
    };
    let mut new_cmd = link::manager(master, None).await?;
    // A Sentinel that lags (or was cut off) may still name a master that is now a replica:
    // the server itself must say it is the master.
    confirm_master(&mut new_cmd, master).await?;
    cmd.replace(new_cmd);
    // Before any event of the new master arrives: a channel the promoted replica has behind
    // what this node delivered goes back (`LocalIndex::rewind`), or its next events would be
    // taken as delivered.
    // The snapshots are read SNAPSHOTS_AT_ONCE at a time (pipelined on the one connection): a
    // node with many channels switches in a few round trips' time per batch, not one per channel.
    let mut channels = inner.index.channels().into_iter();
    let mut reading = FuturesUnordered::new();
    loop {
        while reading.len() < SNAPSHOTS_AT_ONCE {
            let Some(channel) = channels.next() else {
                break;
            };
            reading.push(snapshot_of(inner, channel));
        }
        let Some((channel, snap)) = reading.next().await else {
            break;
        };
        if let Some(snap) = snap? {
            inner.index.rewind(&channel, &snap);
        }
    }
    // The subscription set's lock is held throughout, so that no subscribe or unsubscribe
    // crosses the switch: the new connection gets every channel the old one had.
    let subscribed = inner.subscribed.lock().await;
    let mut new_pubsub = link::manager(master, Some(dispatch.clone())).await?;
    for chan in subscribed.iter() {
        new_pubsub.subscribe(chan).await.map_err(unavailable)?;
    }
    pubsub.replace(new_pubsub);
    drop(subscribed);
    // What was published meanwhile never came: the heartbeat's next beat resynchronises every
    // channel this node delivers, as after a dropped pub/sub connection.
    inner.pubsub_lost.store(true, Ordering::Relaxed);
    Ok(())
}

/// Whether the server at `url` may be taken for the master: it says it is (`ROLE`), or it
/// cannot say (an ACL without `+role`, a renamed command: the Sentinels' word then stands, with
/// a warning). An error if it says it is not (a Sentinel that lags behind a failover may still
/// name an old master that came back as a replica), or does not answer.
async fn confirm_master(
    conn: &mut impl redis::aio::ConnectionLike,
    url: &str,
) -> Result<(), EngineError> {
    let role = redis::cmd("ROLE").query_async::<redis::Value>(conn).await;
    match role {
        Ok(redis::Value::Array(items)) if matches!(items.first(), Some(redis::Value::BulkString(b)) if b.as_slice() == b"master") => {
            Ok(())
        }
        Ok(_) => Err(EngineError::Unavailable(format!(
            "the Redis Sentinel names {} as the master, but it is not one (yet)",
            address(url)
        ))),
        // A refusal by the server itself (NOPERM, unknown command) has a code.
        Err(e) if e.code().is_some() => {
            tracing::warn!(
                "cannot ask {} whether it is the master ({e}): taking the Sentinels' word",
                address(url)
            );
            Ok(())
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// A channel's snapshot on the master, with the channel's name.
async fn snapshot_of(
    inner: &Inner,
    channel: String,
) -> (String, Result<Option<Snapshot>, EngineError>) {
    let snap = inner.snapshot(&channel, Members::ForPresence).await;
    (channel, snap)
}

/// `host:port` of a Redis URL, for the log (never its credentials).
fn address(url: &str) -> String {
    Url::parse(url)
        .ok()
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or(""),
                u.port().unwrap_or(6379)
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_gets_the_first_urls_credentials_and_the_sentinels_their_own() {
        let s = Sentinels::new(
            &[
                "redis://u:secret@127.0.0.1:26379/2".into(),
                "redis://127.0.0.2:26379".into(),
            ],
            "m",
            Some("sentinels"),
        )
        .unwrap();
        // Errors name a Sentinel without any password.
        assert_eq!(s.sentinels[0].as_str(), "redis://127.0.0.1:26379");
        assert_eq!(
            s.master_url("10.0.0.5", 6380),
            "redis://u:secret@10.0.0.5:6380/2"
        );
        // An IPv6 master, as Sentinel reports it (without brackets).
        assert_eq!(s.master_url("::1", 6380), "redis://u:secret@[::1]:6380/2");
        assert_eq!(s.password.as_deref(), Some("sentinels"));
        assert!(Sentinels::new(&["not a url".into()], "m", None).is_err());
    }
}
