//! The hub: channels, users and connections, and every rule of §2.4–§2.5 of the spec.
//!
//! This is the in-memory engine. State is split so that no global lock is taken per message:
//! channels live in [`SHARDS`] independently locked maps (a publication locks only its channel's
//! shard, then each subscriber's user lock for a few pointer moves); the user and connection maps
//! are touched only on connect/disconnect. Webhooks are awaited with no lock held, so a slow web
//! application delays only the actions that wait for it.

mod actions;
mod channel;
mod history;
mod manage;
mod options;
mod polling;
mod user;

pub use channel::Channel;
pub use history::{now_stamp, raw};
pub use options::{ChannelOptions, OptionError, UserOptions, CHANNEL_OPTION_KEYS};
pub use user::{Conn, User, UserState};

use crate::protocol::{args, OutFrame};
use crate::webhook::{Decision, Hook, HookCall, WebhookClient};
use indexmap::IndexMap;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Number of channel shards. A power of two well above the core count keeps two publications on
/// different channels from contending.
const SHARDS: usize = 32;

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
    #[error(transparent)]
    Option(#[from] OptionError),
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

/// One lock's worth of channels.
type Shard = Mutex<HashMap<Arc<str>, Channel>>;

/// Lock order, to stay deadlock-free: a channel shard, then `presence_watch` or `users`, then one
/// user's state, then an outbox. Never two shards, never two users' states at once, and no lock
/// is held across an `.await`.
pub struct Hub {
    shards: Box<[Shard]>,
    hasher: RandomState,
    users: Mutex<HashMap<Arc<str>, Arc<User>>>,
    /// Connected connections by id, in connection order (`/web/get_server_info`).
    conns: Mutex<IndexMap<Arc<str>, Arc<Conn>>>,
    /// Server presence (§9.3): user name → channels that track whether that user is online.
    presence_watch: Mutex<HashMap<Arc<str>, Vec<Arc<str>>>>,
    /// Channel names being created through the create_channel webhook, each with the async lock
    /// that lines up concurrent creators (see `ensure_channel`).
    creating: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
    webhooks: WebhookClient,
    /// Parent of every poller's token: cancelled at shutdown.
    shutdown: CancellationToken,
    /// Bytes of history each channel keeps at most (`--history-max-bytes`).
    history_max_bytes: usize,
}

impl Hub {
    pub fn new(
        webhooks: WebhookClient,
        shutdown: CancellationToken,
        history_max_bytes: usize,
    ) -> Arc<Hub> {
        Arc::new(Hub {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            users: Mutex::new(HashMap::new()),
            conns: Mutex::new(IndexMap::new()),
            presence_watch: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashMap::new()),
            webhooks,
            shutdown,
            history_max_bytes,
        })
    }

    pub fn webhooks(&self) -> &WebhookClient {
        &self.webhooks
    }

    fn shard(&self, channel: &str) -> &Shard {
        let i = self.hasher.hash_one(channel) as usize % SHARDS;
        &self.shards[i]
    }

    /// Runs `f` on a channel under its shard lock. `None` if the channel does not exist.
    pub fn with_channel<R>(&self, name: &str, f: impl FnOnce(&mut Channel) -> R) -> Option<R> {
        self.shard(name).lock().get_mut(name).map(f)
    }

    pub fn channel_exists(&self, name: &str) -> bool {
        self.shard(name).lock().contains_key(name)
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.lock().get(name).cloned()
    }

    pub fn channel_names(&self) -> Vec<Value> {
        let mut names = Vec::new();
        for shard in self.shards.iter() {
            names.extend(shard.lock().keys().map(|k| Value::from(&**k)));
        }
        names
    }

    pub fn connection_ids(&self) -> Vec<Value> {
        self.conns
            .lock()
            .keys()
            .map(|k| Value::from(&**k))
            .collect()
    }

    /// Calls a webhook on behalf of `origin`. For hooks that act for a connection (connect,
    /// subscribe, unsubscribe, publish, message), a `Set-Cookie` in the reply is relayed to that
    /// connection as SET_COOKIE before anything else the action produces.
    async fn hook(
        &self,
        hook: Hook,
        form: Vec<(&'static str, String)>,
        origin: &Origin,
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
        };
        let decision = self.webhooks.call(call).await;
        if acts_for_connection {
            if let (Some(cookie), Some(conn)) = (&decision.set_cookie, &origin.conn) {
                conn.send(&OutFrame::new(
                    "SET_COOKIE",
                    &args([("cookie", json!(cookie))]),
                ));
            }
        }
        decision
    }

    /// Default options for a new channel, with this hub's history byte bound (set before any
    /// preset `history` is applied, so that it is pruned by the configured bound).
    pub(crate) fn new_channel_options(&self) -> ChannelOptions {
        let mut options = ChannelOptions::default();
        options.history.set_max_bytes(self.history_max_bytes);
        options
    }

    /// Refuses options whose `polling.url` is not on an allowed host: a poller publishes what it
    /// fetches, so it must not reach into hosts the operator did not list.
    pub(crate) fn vet_options(
        &self,
        opts: &serde_json::Map<String, Value>,
    ) -> Result<(), HubError> {
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

    /// Sets a server-presence flag on every channel that watches `user` (§9.3).
    fn server_presence(&self, user: &str, online: bool) {
        let channels = match self.presence_watch.lock().get(user) {
            Some(chs) => chs.clone(),
            None => return,
        };
        for channel in channels {
            self.with_channel(&channel, |ch| {
                if ch.options.state.get(user) != Some(&Value::Bool(online)) {
                    ch.options
                        .state
                        .insert(user.to_owned(), Value::Bool(online));
                    let mut updates = serde_json::Map::new();
                    updates.insert(user.to_owned(), Value::Bool(online));
                    ch.broadcast_state(updates, Vec::new());
                }
            });
        }
    }

    /// Inserts a new channel (unless one appeared meanwhile), registering server presence and
    /// starting its poller. Returns false if the channel already existed.
    fn insert_channel(self: &Arc<Self>, name: &str, mut options: ChannelOptions) -> bool {
        let name: Arc<str> = Arc::from(name);
        let watch: Vec<String> = if options.server_presenceful {
            options.server_user_presence.clone()
        } else {
            Vec::new()
        };
        let polling = options.polling.is_active();
        {
            let mut shard = self.shard(&name).lock();
            if shard.contains_key(&name) {
                return false;
            }
            // Server presence: register the watch before reading who is online, both under the
            // shard lock, so a user arriving or leaving meanwhile is applied after the insert.
            if !watch.is_empty() {
                let mut pw = self.presence_watch.lock();
                for u in &watch {
                    pw.entry(Arc::from(u.as_str()))
                        .or_default()
                        .push(name.clone());
                }
                drop(pw);
                let users = self.users.lock();
                for u in &watch {
                    let online = users.contains_key(u.as_str());
                    options.state.insert(u.clone(), Value::Bool(online));
                }
            }
            shard.insert(name.clone(), Channel::new(name.clone(), options, watch));
        }
        if polling {
            self.restart_poller(&name);
        }
        tracing::debug!("created channel {name}");
        true
    }

    /// Removes a channel if `pred` holds for it, checked under the same lock.
    fn take_channel(&self, name: &str, pred: impl FnOnce(&Channel) -> bool) -> Option<Channel> {
        let mut shard = self.shard(name).lock();
        if pred(shard.get(name)?) {
            shard.remove(name)
        } else {
            None
        }
    }

    /// Stops what a removed channel left running: its poller and server-presence registrations.
    fn forget_channel(&self, ch: Channel) {
        if let Some(token) = &ch.poller {
            token.cancel();
        }
        if !ch.watched.is_empty() {
            let mut pw = self.presence_watch.lock();
            for u in &ch.watched {
                if let Some(list) = pw.get_mut(u.as_str()) {
                    list.retain(|c| **c != *ch.name);
                    if list.is_empty() {
                        pw.remove(u.as_str());
                    }
                }
            }
        }
        tracing::debug!("destroyed channel {}", ch.name);
    }
}
