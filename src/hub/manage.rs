//! What the web application does through the Web API besides publishing: channel creation and
//! destruction, options, state, user options, kicking users.

use super::history::now_stamp;
use super::{Hub, HubError, Origin, User};
use crate::outbox::CloseReason;
use crate::webhook::Hook;
use serde_json::{json, Map, Value};
use std::sync::Arc;

impl Hub {
    /// `/web/create_channel`. With `send_hook`, the create_channel webhook may veto, and the
    /// options it returns override the given ones.
    pub async fn create_channel(
        self: &Arc<Self>,
        name: &str,
        given: &Map<String, Value>,
        send_hook: bool,
    ) -> Result<(), HubError> {
        if self.channel_exists(name) {
            return Err(HubError::ChannelExists(name.to_owned()));
        }
        if name.len() > super::MAX_CHANNEL_NAME {
            return Err(HubError::ChannelNameTooLong);
        }
        self.vet_options(given)?;
        let mut options = self.new_channel_options();
        options.apply(given)?;
        if send_hook {
            let decision = self
                .hook(
                    Hook::CreateChannel,
                    vec![("channel_name", name.to_owned())],
                    &Origin::default(),
                )
                .await;
            if !decision.success {
                return Err(HubError::Denied(decision.error_msg()));
            }
            self.vet_options(&decision.options)?;
            options.apply(&decision.options)?;
        }
        if self.insert_channel(name, options) {
            Ok(())
        } else {
            Err(HubError::ChannelExists(name.to_owned()))
        }
    }

    /// `/web/destroy_channel`: every subscriber gets its UNSUBSCRIBE (no presence broadcast),
    /// then the channel is deleted. With `send_hook`, unsubscribe webhooks are called for each
    /// subscriber and the destroy_channel webhook may veto.
    pub async fn destroy_channel(
        self: &Arc<Self>,
        name: &str,
        send_hook: bool,
    ) -> Result<(), HubError> {
        if !self.channel_exists(name) {
            return Err(HubError::NoChannel(name.to_owned()));
        }
        if send_hook {
            let decision = self
                .hook(
                    Hook::DestroyChannel,
                    vec![("channel_name", name.to_owned())],
                    &Origin::default(),
                )
                .await;
            if !decision.success {
                return Err(HubError::Denied(decision.error_msg()));
            }
        }
        if send_hook {
            let subscribers: Vec<Arc<User>> = self
                .with_channel(name, |ch| ch.subscribers.clone())
                .ok_or_else(|| HubError::NoChannel(name.to_owned()))?;
            for user in subscribers {
                let cookie = user.state.lock().temp_cookie.clone();
                let form = vec![
                    ("channel_name", name.to_owned()),
                    ("user", user.name.to_string()),
                ];
                self.hook(Hook::Unsubscribe, form, &Origin::api(cookie))
                    .await;
            }
        }
        // Taken out under its lock: whoever subscribed until now is unsubscribed, nobody after.
        let ch = self
            .take_channel(name, |_| true)
            .ok_or_else(|| HubError::NoChannel(name.to_owned()))?;
        let stamp = now_stamp();
        for user in &ch.subscribers {
            let frame = ch.membership_frame("UNSUBSCRIBE", &user.name, &stamp);
            let mut st = user.state.lock();
            st.send_all(&frame);
            st.channels.shift_remove(&*ch.name);
        }
        self.forget_channel(ch);
        Ok(())
    }

    /// `/web/set_channel_options`: merges options; state changes are broadcast as a diff and a
    /// new `polling` option restarts the poller.
    pub fn set_channel_options(
        self: &Arc<Self>,
        name: &str,
        opts: &Map<String, Value>,
    ) -> Result<(), HubError> {
        self.vet_options(opts)?;
        let applied = self
            .with_channel(name, |ch| {
                let applied = ch.options.apply(opts)?;
                if let Some((updates, deletes)) = applied.state_diff.clone() {
                    ch.broadcast_state(updates, deletes);
                }
                Ok::<_, HubError>(applied)
            })
            .ok_or_else(|| HubError::NoChannel(name.to_owned()))??;
        if applied.polling_changed {
            self.restart_poller(name);
        }
        Ok(())
    }

    /// `/web/state_set_key`: a STATE_UPDATE goes out only if the value changed.
    pub fn state_set_key(&self, name: &str, key: &str, val: Value) -> Result<(), HubError> {
        self.with_channel(name, |ch| {
            if ch.options.state.get(key) != Some(&val) {
                ch.options.state.insert(key.to_owned(), val.clone());
                let mut updates = Map::new();
                updates.insert(key.to_owned(), val);
                ch.broadcast_state(updates, Vec::new());
            }
        })
        .ok_or_else(|| HubError::NoChannel(name.to_owned()))
    }

    /// `/web/state_delete_key`: a STATE_UPDATE goes out only if the key existed.
    pub fn state_delete_key(&self, name: &str, key: &str) -> Result<(), HubError> {
        self.with_channel(name, |ch| {
            if ch.options.state.shift_remove(key).is_some() {
                ch.broadcast_state(Map::new(), vec![key.to_owned()]);
            }
        })
        .ok_or_else(|| HubError::NoChannel(name.to_owned()))
    }

    pub fn set_user_options(&self, name: &str, opts: &Map<String, Value>) -> Result<(), HubError> {
        let user = self
            .user(name)
            .ok_or_else(|| HubError::NoUser(name.to_owned()))?;
        user.state.lock().options.apply(opts, true)?;
        Ok(())
    }

    pub fn user_info(&self, name: &str) -> Result<Value, HubError> {
        let user = self
            .user(name)
            .ok_or_else(|| HubError::NoUser(name.to_owned()))?;
        let st = user.state.lock();
        Ok(json!({
            "name": &*user.name,
            "channels": st.channels.keys().map(|c| &**c).collect::<Vec<_>>(),
            "connections": st.conns.iter().map(|c| &*c.id).collect::<Vec<_>>(),
            "options": st.options.to_json(),
        }))
    }

    pub fn channel_info(&self, name: &str) -> Result<Value, HubError> {
        self.with_channel(name, |ch| ch.info())
            .ok_or_else(|| HubError::NoChannel(name.to_owned()))
    }

    /// `/web/disconnect`: closes every connection of the user. Each transport then ends and the
    /// usual close handling (unsubscribes, destroy attempts, disconnect webhook) follows.
    pub fn kick(&self, name: &str) -> Result<usize, HubError> {
        let user = self
            .user(name)
            .ok_or_else(|| HubError::NoUser(name.to_owned()))?;
        let st = user.state.lock();
        for conn in &st.conns {
            conn.outbox.close(CloseReason::Kicked);
        }
        Ok(st.conns.len())
    }
}
