//! The hub: HookBox's rules (§2.4–§2.5 of the spec) above the [`Engine`] that holds the state.
//!
//! Each action asks its webhooks with no lock held (a slow web application delays only the
//! actions waiting for it), then makes one engine call that decides and applies the effect
//! atomically, so that every subscriber sees the same order of frames.

mod actions;
mod admission;
mod closing;
mod leaving;
pub mod limits;
mod manage;
mod polling;
mod resume;
mod watch;

pub use crate::engine::{now_stamp, raw, Conn, User};
pub use actions::{Connected, Publish};
pub use admission::Admitted;
pub use leaving::LeaveGrace;
pub use limits::ActionLimits;
pub use resume::{Resumable, ResumeKey, MAX_RESUME_TTL};

use crate::engine::{Engine, EngineError, OptionError, Reaped};
use crate::protocol::{args, OutFrame};
use crate::webhook::{Decision, Hook, HookCall, WebhookClient};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Whether a `Set-Cookie` value has the `HttpOnly` attribute.
fn is_http_only(set_cookie: &str) -> bool {
    set_cookie
        .split(';')
        .skip(1)
        .any(|a| a.trim().eq_ignore_ascii_case("httponly"))
}

/// Retries of an informational webhook that got no decision (see `Hub::inform`).
const INFORM_RETRIES: u32 = 3;

/// Longest channel name accepted when creating a channel: names are keys kept in memory, and
/// a client could otherwise create channels with names of any size.
pub const MAX_CHANNEL_NAME: usize = 1024;

/// Errors a hub action reports to whoever asked (an ERROR frame or a `[false, {"msg"}]` body).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HubError {
    /// The web application said no (or could not be asked); the text explains why.
    #[error("{0}")]
    Denied(String),
    /// The create_channel webhook refused a new channel. `reply_msg` is the `msg` option of the
    /// web app's reply, which the 0.3.3 REST dialect reports instead of the ERROR text.
    #[error("{error}")]
    ChannelRefused {
        error: String,
        reply_msg: Option<String>,
    },
    /// No webhook slot came free in time (see `webhook::slots`): not the web app's refusal.
    #[error("{msg}")]
    Busy { msg: String, retry_after: u32 },
    #[error("Channel {0} doesn't exist")]
    NoChannel(String),
    #[error("Channel {0} already exists")]
    ChannelExists(String),
    #[error("User {0} doesn't exist")]
    NoUser(String),
    #[error("Invalid user name")]
    InvalidUserName,
    #[error("Channel name too long (at most {MAX_CHANNEL_NAME} bytes)")]
    ChannelNameTooLong,
    #[error("Too many channels for one user (at most {0})")]
    TooManyChannels(usize),
    /// A member's recovery found nothing to answer from (the member or its connection went
    /// meanwhile): the client is told, rather than waiting for an answer that never comes.
    #[error("Could not recover channel {0}: subscribe again")]
    NotRecovered(String),
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Whether an action asks its webhook (on moderated channels): client actions and Web API calls
/// with `send_hook=1` do; auto_subscribe lists and plain Web API calls do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hooks {
    Ask,
    Skip,
}

/// How an unsubscribe treats its webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// A client's UNSUBSCRIBE (or `send_hook=1`): the webhook may refuse it.
    Asked,
    /// No webhook (auto lists, plain Web API calls).
    Silent,
}

/// Who is behind an action: whose cookie and address the webhooks carry, and which connection
/// receives SET_COOKIE frames and is recorded for subscriptions.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub conn: Option<Arc<Conn>>,
    pub cookie: String,
    pub real_ip: Option<String>,
}

impl Origin {
    pub fn client(conn: &Arc<Conn>) -> Origin {
        Origin {
            conn: Some(conn.clone()),
            cookie: conn.cookie.clone(),
            real_ip: Some(conn.remote_addr.clone()),
        }
    }

    /// An action of the web application (REST) on behalf of a user, using the user's remembered
    /// cookie, with no live connection behind it.
    pub fn api(cookie: String) -> Origin {
        Origin {
            conn: None,
            cookie,
            real_ip: None,
        }
    }

    fn conn_id(&self) -> Option<&Arc<str>> {
        self.conn.as_ref().map(|c| &c.id)
    }
}

pub struct Hub {
    engine: Engine,
    webhooks: WebhookClient,
    /// Channel names being created through the create_channel webhook, each with the async lock
    /// that lines up concurrent creators (see `ensure_channel`).
    creating: actions::Creating,
    /// The pollers this node runs, by channel (see `polling`).
    pollers: Mutex<HashMap<Arc<str>, CancellationToken>>,
    /// Parent of every poller's token: cancelled at shutdown.
    shutdown: CancellationToken,
    /// The admin console's live channel views.
    watchers: watch::Watchers,
    limits: ActionLimits,
    /// Each user's publish and subscribe buckets on this node (see `allow_publish`).
    user_publishes: limits::UserRates,
    user_subscribes: limits::UserRates,
    /// Each client address's refused CONNECTs on this node, and its CONNECTs in flight (see
    /// `admission`).
    failed_connects: limits::AddressRates,
    holds: admission::Holds,
    /// Signs and checks resume tickets (see `resume`).
    resume_key: ResumeKey,
    leave_grace: LeaveGrace,
    /// The users in their grace period on this node (see `leaving`).
    departures: leaving::Departures,
}

/// What a hub is told besides its engine and webhook client.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    pub limits: ActionLimits,
    pub resume_key: ResumeKey,
    pub leave_grace: LeaveGrace,
}

impl Hub {
    pub fn new(
        engine: Engine,
        webhooks: WebhookClient,
        options: HubOptions,
        shutdown: CancellationToken,
    ) -> Arc<Hub> {
        let limits = options.limits;
        Arc::new(Hub {
            engine,
            webhooks,
            creating: actions::Creating::default(),
            pollers: Mutex::new(HashMap::new()),
            shutdown,
            watchers: watch::Watchers::default(),
            limits,
            user_publishes: limits::UserRates::new(limits.user_publish),
            user_subscribes: limits::UserRates::new(limits.user_subscribe),
            failed_connects: limits::AddressRates::new(limits.failed_connects_per_address),
            holds: admission::Holds::default(),
            resume_key: options.resume_key,
            leave_grace: options.leave_grace,
            departures: leaving::Departures::default(),
        })
    }

    /// Whether `user` may send one more PUBLISH or MESSAGE now (its bucket on this node); a
    /// refusal is counted.
    pub fn allow_publish(&self, user: &Arc<str>) -> bool {
        let allowed = self.user_publishes.take(user);
        if !allowed {
            crate::metrics::refused("user_publish_rate");
        }
        allowed
    }

    /// Whether `user` may send one more SUBSCRIBE or UNSUBSCRIBE now; a refusal is counted.
    pub fn allow_subscribe(&self, user: &Arc<str>) -> bool {
        let allowed = self.user_subscribes.take(user);
        if !allowed {
            crate::metrics::refused("user_subscribe_rate");
        }
        allowed
    }

    pub fn limits(&self) -> &ActionLimits {
        &self.limits
    }

    /// Handles what the engine finds left behind by dead nodes: their connections are closed
    /// here (with the usual webhooks), and their pollers adopted.
    pub fn start_reaping(self: &Arc<Self>) {
        let Some(mut reaped) = self.engine.take_reaped() else {
            return;
        };
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(r) = reaped.recv().await {
                let Some(hub) = hub.upgrade() else { return };
                match r {
                    Reaped::Connection(conn, user) => {
                        tokio::spawn(async move { hub.connection_closed(&user, &conn).await });
                    }
                    Reaped::Pollers => {
                        // Now, and again once the dead node's leases have lapsed.
                        hub.adopt_pollers().await;
                        let hub = Arc::downgrade(&hub);
                        tokio::spawn(async move {
                            tokio::time::sleep(polling::POLL_LEASE).await;
                            if let Some(hub) = hub.upgrade() {
                                hub.adopt_pollers().await;
                            }
                        });
                    }
                }
            }
        });
    }

    pub fn webhooks(&self) -> &WebhookClient {
        &self.webhooks
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub async fn channel_exists(&self, name: &str) -> Result<bool, HubError> {
        Ok(self.engine.channel_exists(name).await?)
    }

    pub async fn user_exists(&self, name: &str) -> Result<bool, HubError> {
        Ok(self.engine.user_exists(name).await?)
    }

    pub async fn channel_names(&self) -> Result<Vec<Value>, HubError> {
        Ok(self.engine.channel_names().await?)
    }

    pub async fn connection_ids(&self) -> Result<Vec<Value>, HubError> {
        Ok(self.engine.connection_ids().await?)
    }

    /// Calls a webhook on behalf of `origin`. For hooks that act for a connection (connect,
    /// subscribe, unsubscribe, publish, message), a `Set-Cookie` in the reply is relayed to that
    /// connection as SET_COOKIE before anything else the action produces, unless it is
    /// `HttpOnly`.
    async fn hook(
        &self,
        hook: Hook,
        form: Vec<(&'static str, String)>,
        origin: &Origin,
    ) -> Decision {
        self.hook_once(hook, form, origin, crate::webhook::signing::message_id())
            .await
    }

    /// [`Hub::hook`] with the call's `webhook-id` given (a retry keeps its id).
    async fn hook_once(
        &self,
        hook: Hook,
        form: Vec<(&'static str, String)>,
        origin: &Origin,
        id: String,
    ) -> Decision {
        let acts_for_connection = !matches!(
            hook,
            Hook::CreateChannel | Hook::DestroyChannel | Hook::Disconnect
        );
        let call = HookCall {
            hook,
            form,
            cookie: if hook == Hook::DestroyChannel {
                String::new()
            } else {
                origin.cookie.clone()
            },
            real_ip: if acts_for_connection {
                origin.real_ip.clone()
            } else {
                None
            },
            id,
        };
        let decision = self.webhooks.call(call).await;
        if acts_for_connection {
            // An HttpOnly cookie is not for the page's script, which a SET_COOKIE frame reaches
            // (a session middleware refreshing the session the webhook carried, say).
            let cookie = decision.set_cookie.as_ref().filter(|c| !is_http_only(c));
            if let (Some(cookie), Some(conn)) = (cookie, &origin.conn) {
                conn.send(&OutFrame::new(
                    "SET_COOKIE",
                    &args([("cookie", json!(cookie))]),
                ));
            }
        }
        decision
    }

    /// Calls an informational webhook (disconnect, destroy_channel, an unsubscribe nobody asked
    /// for): hookbox goes on whatever it answers, but the web app must hear of it, so a call
    /// that surely did not reach it (unreachable, a 5xx; not a denial, a bad reply or a
    /// timeout, after which it may have acted) is tried [`INFORM_RETRIES`] more times, after
    /// 0.2, 0.4, 0.8 s, each with the same `webhook-id`. Bounded: a web app down for minutes
    /// costs each close handling about a second and a few calls per hook, not a growing queue.
    async fn inform(
        &self,
        hook: Hook,
        form: Vec<(&'static str, String)>,
        origin: &Origin,
    ) -> Decision {
        let mut pause = std::time::Duration::from_millis(200);
        let mut attempt = 0;
        // One id for every try: a web app that got a call whose answer was lost can tell.
        let id = crate::webhook::signing::message_id();
        loop {
            let decision = self.hook_once(hook, form.clone(), origin, id.clone()).await;
            if !decision.retryable || attempt == INFORM_RETRIES {
                return decision;
            }
            attempt += 1;
            crate::metrics::webhook_retry(hook.action());
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }

    /// Calls a webhook whose denial refuses the action: the denial's text is the error.
    async fn ask(
        &self,
        hook: Hook,
        form: Vec<(&'static str, String)>,
        origin: &Origin,
    ) -> Result<Decision, HubError> {
        let decision = self.hook(hook, form, origin).await;
        refusal(&decision, |d| HubError::Denied(d.error_msg()))?;
        Ok(decision)
    }

    /// Refuses options whose `polling.url` is not on an allowed host: a poller publishes what it
    /// fetches, so it must not reach into hosts the operator did not list.
    pub(crate) fn vet_options(&self, opts: &Map<String, Value>) -> Result<(), HubError> {
        let url = opts
            .get("polling")
            .and_then(|p| p.get("url"))
            .and_then(Value::as_str);
        match url {
            Some(url) if !url.is_empty() && !self.webhooks.allows(url) => {
                Err(OptionError::BadValue {
                    key: "polling.url".to_owned(),
                    why: "not an http(s) URL on an allowed host (see --webhook-allow-hosts)",
                }
                .into())
            }
            _ => Ok(()),
        }
    }

    /// Creates a channel from options, `then` applied after `opts` (each validated and vetted
    /// here); false if it already existed. Starts its poller if it polls.
    async fn insert_channel(
        self: &Arc<Self>,
        name: &str,
        opts: &Map<String, Value>,
        then: &Map<String, Value>,
    ) -> Result<bool, HubError> {
        self.vet_options(opts)?;
        self.vet_options(then)?;
        let update = crate::engine::ChannelSettings::default().update_twice(opts, then)?;
        let polls = update.settings.polling.is_active();
        let created = self.engine.create_channel(name, update).await?;
        if created && polls {
            self.restart_poller(name).await;
        }
        Ok(created)
    }

    /// Removes a channel that has no subscriber, stopping its poller; true if removed.
    async fn destroy_if_empty(&self, name: &str) -> Result<bool, HubError> {
        let destroyed = self.engine.destroy_if_empty(name).await?;
        if destroyed {
            self.stopped(name);
        }
        Ok(destroyed)
    }

    /// A channel was destroyed: its poller stops, its watchers hear it.
    fn stopped(&self, name: &str) {
        self.stop_poller(name);
        self.observe(name, || "destroyed".to_owned());
    }
}

/// A webhook's denial as the error the client gets: `Busy`, with its retry hint, when the web
/// app was not asked for want of a slot (see `webhook::slots`); else what `denied` makes of it.
/// Every webhook whose denial refuses an action goes through here, so that every such refusal
/// carries the hint hookbox.js waits on.
fn refusal(
    decision: &Decision,
    denied: impl FnOnce(&Decision) -> HubError,
) -> Result<(), HubError> {
    match (decision.success, decision.retry_after) {
        (true, _) => Ok(()),
        (false, Some(retry_after)) => Err(HubError::Busy {
            msg: decision.error_msg(),
            retry_after,
        }),
        (false, None) => Err(denied(decision)),
    }
}
