//! The in-memory engine's users: attaching and detaching connections, user options and info,
//! and delivery to a user's connections.

use super::MemoryEngine;
use crate::engine::frames::{self, history_room};
use crate::engine::options::{OptionError, UserOptions};
use crate::engine::{Conn, ConnInfo, Detached, User};
use crate::outbox::CloseReason;
use crate::protocol::OutFrame;
use serde_json::{json, Map, Value};
use std::sync::Arc;

impl MemoryEngine {
    fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.lock().get(name).cloned()
    }

    pub fn attach(
        &self,
        conn: &Arc<Conn>,
        name: &str,
        options: UserOptions,
        connected: &OutFrame,
    ) -> bool {
        // CONNECTED is queued before the connection joins its user, so that no frame for the
        // user's connections can overtake it.
        conn.send(connected);
        // Other tabs of this user: the new connection hears about every channel already joined
        // before it is attached, so that no traffic of those channels can overtake the frames.
        let replayed = match self.user(name) {
            Some(existing) => self.replay(&existing, conn, &[]),
            None => Vec::new(),
        };
        self.conns.lock().insert(conn.id.clone(), conn.clone());
        let (user, created) = loop {
            let (user, created) = {
                let mut users = self.users.lock();
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
            st.options = options.clone();
            st.conns.push(conn.clone());
            drop(st);
            break (user, created);
        };
        if created {
            self.server_presence(name, true);
        }
        // Channels joined by another tab in the meantime.
        self.replay(&user, conn, &replayed);
        created
    }

    /// Sends `conn` an own-SUBSCRIBE frame (without initial_data) for each channel `user` is in,
    /// except those in `skip`; returns the channels covered.
    fn replay(&self, user: &Arc<User>, conn: &Conn, skip: &[Arc<str>]) -> Vec<Arc<str>> {
        let channels: Vec<Arc<str>> = user.state.lock().channels.keys().cloned().collect();
        for channel in channels.iter().filter(|c| !skip.contains(c)) {
            self.with_channel(channel, |c| {
                // This very user object: one that left and came back is a new one.
                if c.members
                    .get(&*user.name)
                    .is_some_and(|m| Arc::ptr_eq(&m.0, user))
                {
                    let view = c.view(history_room(&conn.outbox));
                    let shown = frames::Shown::to(&conn.outbox, None);
                    let frame = frames::own_subscribe(&c.name, &user.name, view, None, shown);
                    conn.outbox.push(&frame);
                }
            });
        }
        channels
    }

    pub fn detach(&self, name: &str, conn: &Arc<Conn>) -> Detached {
        self.conns.lock().swap_remove(&conn.id);
        let Some(user) = self.user(name) else {
            return Detached::default();
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
        Detached { emptied, last }
    }

    pub fn user_channels(&self, name: &str) -> Vec<Arc<str>> {
        self.user(name)
            .map(|u| u.state.lock().channels.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn has_connections(&self, name: &str) -> bool {
        self.user(name)
            .is_some_and(|u| !u.state.lock().conns.is_empty())
    }

    pub fn remove_user(&self, name: &str) -> bool {
        {
            let mut users = self.users.lock();
            let Some(user) = users.get(name).cloned() else {
                return false;
            };
            let mut st = user.state.lock();
            if !st.conns.is_empty() || st.gone {
                return false; // a new tab attached, or another cascade already removed the user
            }
            st.gone = true;
            users.remove(name);
        }
        self.server_presence(name, false);
        true
    }

    pub fn user_exists(&self, name: &str) -> bool {
        self.users.lock().contains_key(name)
    }

    pub fn user_options(&self, name: &str) -> Option<UserOptions> {
        self.user(name).map(|u| u.state.lock().options.clone())
    }

    pub fn set_user_options(
        &self,
        name: &str,
        opts: &Map<String, Value>,
    ) -> Option<Result<(), OptionError>> {
        self.user(name)
            .map(|u| u.state.lock().options.apply(opts, true))
    }

    pub fn temp_cookie(&self, name: &str) -> Option<String> {
        self.user(name).map(|u| u.state.lock().temp_cookie.clone())
    }

    pub fn user_info(&self, name: &str) -> Option<Value> {
        let user = self.user(name)?;
        let st = user.state.lock();
        Some(json!({
            "name": &*user.name,
            "channels": st.channels.keys().map(|c| &**c).collect::<Vec<_>>(),
            "connections": st.conns.iter().map(|c| &*c.id).collect::<Vec<_>>(),
            "options": st.options.to_json(),
        }))
    }

    pub fn send_to_user(&self, name: &str, frame: &OutFrame) -> bool {
        match self.user(name) {
            Some(u) => {
                u.state.lock().send_all(frame);
                true
            }
            None => false,
        }
    }

    /// Closes every connection of the user. Each transport then ends and the usual close
    /// handling (unsubscribes, destroy attempts, disconnect webhook) follows.
    pub fn kick(&self, name: &str) -> Option<usize> {
        let user = self.user(name)?;
        let st = user.state.lock();
        for conn in &st.conns {
            conn.outbox.close(CloseReason::Kicked);
        }
        Some(st.conns.len())
    }

    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    pub fn user_names(&self, limit: usize) -> (Vec<String>, bool) {
        let mut names: Vec<String> = self.users.lock().keys().map(|k| k.to_string()).collect();
        names.sort();
        let more = names.len() > limit;
        names.truncate(limit);
        (names, more)
    }

    pub fn connections_of(&self, user: &str) -> Option<Vec<ConnInfo>> {
        let user = self.users.lock().get(user).cloned()?;
        let st = user.state.lock();
        Some(
            st.conns
                .iter()
                .map(|c| ConnInfo {
                    id: c.id.to_string(),
                    transport: Some(c.transport.name()),
                    address: c.remote_addr.clone(),
                    since: c.since_ms,
                    node: "local".to_owned(),
                })
                .collect(),
        )
    }

    pub fn connection_ids(&self) -> Vec<Value> {
        self.conns
            .lock()
            .keys()
            .map(|k| Value::from(&**k))
            .collect()
    }
}
