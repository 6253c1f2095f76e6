//! The in-memory engine's users: attaching and detaching connections, user options and info,
//! and delivery to a user's connections.

use super::MemoryEngine;
use crate::engine::options::{OptionError, UserOptions};
use crate::engine::{Attach, Conn, ConnInfo, Detached, EngineError, User, Users};
use crate::outbox::CloseReason;
use crate::protocol::OutFrame;
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::sync::Arc;

type R<T> = Result<T, EngineError>;

impl MemoryEngine {
    fn user(&self, name: &str) -> Option<Arc<User>> {
        self.index.user(name)
    }

    /// `conn` catches up with each channel `user` is in where it has no place yet: its own
    /// SUBSCRIBE (without initial_data), then the channel's traffic.
    fn replay(&self, user: &Arc<User>, conn: &Arc<Conn>) {
        let channels: Vec<Arc<str>> = user.state.lock().channels.keys().cloned().collect();
        let conns = std::slice::from_ref(conn);
        for channel in &channels {
            self.with_channel(channel, |c| {
                if c.members.contains(&*user.name) {
                    c.catch_up(&self.index, user, conns, None, None);
                }
            });
        }
    }

    /// Those of `conns` that closed meanwhile (a detach ran between the caller's read of the
    /// user's connections and their slots) give their places up again.
    pub(super) fn drop_closed(&self, user: &Arc<User>, conns: &[Arc<Conn>]) {
        let closed: Vec<Arc<Conn>> = {
            let st = user.state.lock();
            conns
                .iter()
                .filter(|c| !st.conns.iter().any(|x| Arc::ptr_eq(x, c)))
                .cloned()
                .collect()
        };
        for conn in &closed {
            let _ = self.index.drop_connection(user, conn);
        }
    }
}

#[async_trait]
impl Users for MemoryEngine {
    async fn attach(&self, a: Attach<'_>) -> R<bool> {
        let (conn, name) = (a.conn, a.user);
        // CONNECTED is queued before the connection joins its user, so that no frame for the
        // user's connections can overtake it.
        conn.send(a.connected);
        // Other tabs of this user: the new connection hears about every channel already joined
        // before it is attached, so that no traffic of those channels can overtake the frames.
        if let Some(existing) = self.user(name) {
            self.replay(&existing, conn);
        }
        self.conns.lock().insert(conn.id.clone(), conn.clone());
        let (user, created) = loop {
            let (user, created) = {
                let mut users = self.index.users.lock();
                match users.get(name) {
                    Some(u) => (u.clone(), false),
                    None => {
                        let u = Arc::new(User::new(Arc::from(name)));
                        users.insert(u.name.clone(), u.clone());
                        (u, true)
                    }
                }
            };
            let mut st = user.state.lock();
            if st.gone {
                // Lost a race with the user's removal: take a fresh user.
                continue;
            }
            st.options = a.options.clone();
            st.conns.push(conn.clone());
            drop(st);
            break (user, created);
        };
        if created {
            self.server_presence(name, true);
        }
        // Channels joined by another tab in the meantime, or left and joined again (the leave
        // took the connection's place away before it was attached).
        self.replay(&user, conn);
        Ok(created)
    }

    async fn detach(&self, name: &str, conn: &Arc<Conn>) -> R<Detached> {
        self.conns.lock().swap_remove(&conn.id);
        let Some(user) = self.user(name) else {
            return Ok(Detached::default());
        };
        let mut st = user.state.lock();
        st.conns.retain(|c| !Arc::ptr_eq(c, conn));
        let per_conn = st.options.per_connection_subscriptions;
        let global = st.options.global_unsubscriptions;
        let mut emptied = Vec::new();
        for (channel, ids) in st.channels.iter_mut() {
            let Some(pos) = ids.iter().position(|id| *id == conn.id) else {
                continue;
            };
            if global {
                ids.clear();
            } else {
                ids.remove(pos);
            }
            if (per_conn || global) && ids.is_empty() {
                emptied.push(channel.clone());
            }
        }
        let last = st.conns.is_empty();
        if last {
            st.temp_cookie = conn.cookie.clone();
        }
        drop(st);
        // Its places in the channels go (one node: no subscription to give up).
        let _ = self.index.drop_connection(&user, conn);
        Ok(Detached { emptied, last })
    }

    async fn user_channels(&self, name: &str) -> R<Vec<Arc<str>>> {
        Ok(self
            .user(name)
            .map(|u| u.state.lock().channels.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn has_connections(&self, name: &str) -> R<bool> {
        Ok(self
            .user(name)
            .is_some_and(|u| !u.state.lock().conns.is_empty()))
    }

    async fn remove_user(&self, name: &str) -> R<bool> {
        {
            let mut users = self.index.users.lock();
            let Some(user) = users.get(name).cloned() else {
                return Ok(false);
            };
            let mut st = user.state.lock();
            if !st.conns.is_empty() || st.gone {
                return Ok(false); // a new tab attached, or another cascade removed the user
            }
            st.gone = true;
            users.remove(name);
        }
        self.server_presence(name, false);
        Ok(true)
    }

    async fn user_exists(&self, name: &str) -> R<bool> {
        Ok(self.index.users.lock().contains_key(name))
    }

    async fn user_options(&self, name: &str) -> R<Option<UserOptions>> {
        Ok(self.user(name).map(|u| u.state.lock().options.clone()))
    }

    async fn set_user_options(
        &self,
        name: &str,
        opts: &Map<String, Value>,
    ) -> R<Option<Result<(), OptionError>>> {
        Ok(self
            .user(name)
            .map(|u| u.state.lock().options.apply(opts, true)))
    }

    async fn temp_cookie(&self, name: &str) -> R<Option<String>> {
        Ok(self.user(name).map(|u| u.state.lock().temp_cookie.clone()))
    }

    async fn user_info(&self, name: &str) -> R<Option<Value>> {
        let Some(user) = self.user(name) else {
            return Ok(None);
        };
        let st = user.state.lock();
        Ok(Some(json!({
            "name": &*user.name,
            "channels": st.channels.keys().map(|c| &**c).collect::<Vec<_>>(),
            "connections": st.conns.iter().map(|c| &*c.id).collect::<Vec<_>>(),
            "options": st.options.to_json(),
        })))
    }

    async fn send_to_user(&self, name: &str, frame: &OutFrame) -> R<bool> {
        let Some(u) = self.user(name) else {
            return Ok(false);
        };
        u.state.lock().send_all(frame);
        Ok(true)
    }

    /// Closes every connection of the user. Each transport then ends and the usual close
    /// handling (unsubscribes, destroy attempts, disconnect webhook) follows.
    async fn kick(&self, name: &str) -> R<Option<usize>> {
        let Some(user) = self.user(name) else {
            return Ok(None);
        };
        let st = user.state.lock();
        for conn in &st.conns {
            conn.outbox.close(CloseReason::Kicked);
        }
        Ok(Some(st.conns.len()))
    }

    async fn user_names(&self, limit: usize) -> R<(Vec<String>, bool)> {
        let mut names: Vec<String> = self
            .index
            .users
            .lock()
            .keys()
            .map(|k| k.to_string())
            .collect();
        names.sort();
        let more = names.len() > limit;
        names.truncate(limit);
        Ok((names, more))
    }

    async fn connections_of(&self, user: &str) -> R<Option<Vec<ConnInfo>>> {
        let Some(user) = self.user(user) else {
            return Ok(None);
        };
        let st = user.state.lock();
        let conns = st.conns.iter().map(|c| ConnInfo {
            id: c.id.to_string(),
            transport: Some(c.transport.name()),
            address: c.remote_addr.clone(),
            since: c.since_ms,
            node: "local".to_owned(),
        });
        Ok(Some(conns.collect()))
    }

    async fn connection_ids(&self) -> R<Vec<Value>> {
        Ok(self
            .conns
            .lock()
            .keys()
            .map(|k| Value::from(&**k))
            .collect())
    }
}
