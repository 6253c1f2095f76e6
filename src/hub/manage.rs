//! What the web application does through the Web API besides publishing: channel creation and
//! destruction, options, state, user options and info, kicking users.

use super::{Hub, HubError, Leave, Origin};
use crate::webhook::Hook;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Unsubscribe webhooks of `/web/destroy_channel` in flight at once.
const DESTROY_UNSUBSCRIBES_AT_ONCE: usize = 16;
impl Hub {
    /// `/web/create_channel`. With `send_hook`, the create_channel webhook may veto, and the
    /// options it returns override the given ones.
    pub async fn create_channel(
        self: &Arc<Self>,
        name: &str,
        given: &Map<String, Value>,
        send_hook: bool,
    ) -> Result<(), HubError> {
        if self.engine.channel_exists(name).await? {
            return Err(HubError::ChannelExists(name.to_owned()));
        }
        if name.len() > super::MAX_CHANNEL_NAME {
            return Err(HubError::ChannelNameTooLong);
        }
        // Checked before the webhook is asked, as the original did.
        self.vet_options(given)?;
        crate::engine::ChannelSettings::default().update(given)?;
        let mut from_hook = Map::new();
        if send_hook {
            let form = vec![("channel_name", name.to_owned())];
            from_hook = self
                .ask(Hook::CreateChannel, form, &Origin::default())
                .await?
                .options;
        }
        if self.insert_channel(name, given, &from_hook).await? {
            Ok(())
        } else {
            Err(HubError::ChannelExists(name.to_owned()))
        }
    }

    /// `/web/destroy_channel`: every subscriber gets its UNSUBSCRIBE (no presence broadcast),
    /// then the channel is deleted. With `send_hook`, the destroy_channel webhook may veto, and
    /// an unsubscribe webhook is called for each subscriber.
    pub async fn destroy_channel(
        self: &Arc<Self>,
        name: &str,
        send_hook: bool,
    ) -> Result<(), HubError> {
        let no_channel = || HubError::NoChannel(name.to_owned());
        if !self.engine.channel_exists(name).await? {
            return Err(no_channel());
        }
        if send_hook {
            let form = vec![("channel_name", name.to_owned())];
            self.ask(Hook::DestroyChannel, form, &Origin::default())
                .await?;
            let members = self.engine.members(name).await?.ok_or_else(no_channel)?;
            // Concurrently, a bounded number at a time: a channel of thousands must not take
            // thousands of round trips one after another, nor open thousands at once.
            let unsubscribes = futures_util::stream::iter(members).map(|user| async move {
                let cookie = self.engine.temp_cookie(&user).await?.unwrap_or_default();
                let form = vec![
                    ("channel_name", name.to_owned()),
                    ("user", user.to_string()),
                ];
                self.inform(Hook::Unsubscribe, form, &Origin::api(cookie))
                    .await;
                Ok::<_, HubError>(())
            });
            let results: Vec<_> = unsubscribes
                .buffer_unordered(DESTROY_UNSUBSCRIBES_AT_ONCE)
                .collect()
                .await;
            results.into_iter().collect::<Result<(), _>>()?;
        }
        if !self.engine.destroy_channel(name).await? {
            return Err(no_channel());
        }
        self.stopped(name);
        Ok(())
    }

    /// `/web/set_channel_options`: merges options; state changes are broadcast as a diff and a
    /// new `polling` option restarts the poller.
    pub async fn set_channel_options(
        self: &Arc<Self>,
        name: &str,
        opts: &Map<String, Value>,
    ) -> Result<(), HubError> {
        if self.update_polled_channel(name, opts).await? {
            self.restart_poller(name).await;
        }
        Ok(())
    }

    /// Applies options to a channel without touching its poller; true if `polling` was given
    /// (a poller applying its own reply goes on with the new settings by itself).
    pub(super) async fn update_polled_channel(
        &self,
        name: &str,
        opts: &Map<String, Value>,
    ) -> Result<bool, HubError> {
        self.vet_options(opts)?;
        Ok(self
            .engine
            .update_channel(name, opts)
            .await?
            .ok_or_else(|| HubError::NoChannel(name.to_owned()))??)
    }

    /// `/web/state_set_key`: a STATE_UPDATE goes out only if the value changed.
    pub async fn state_set_key(&self, name: &str, key: &str, val: Value) -> Result<(), HubError> {
        if self.engine.set_state(name, key, val).await? {
            self.observe(name, || format!("STATE_UPDATE set {key}"));
            Ok(())
        } else {
            Err(HubError::NoChannel(name.to_owned()))
        }
    }

    /// `/web/state_delete_key`: a STATE_UPDATE goes out only if the key existed.
    pub async fn state_delete_key(&self, name: &str, key: &str) -> Result<(), HubError> {
        if self.engine.delete_state(name, key).await? {
            self.observe(name, || format!("STATE_UPDATE delete {key}"));
            Ok(())
        } else {
            Err(HubError::NoChannel(name.to_owned()))
        }
    }

    /// `/web/unsubscribe` (and the console's): the web app takes a user out of a channel. The
    /// user's resume tickets may name it, so they are revoked: none of them rejoins it unasked.
    pub async fn take_out(
        self: &Arc<Self>,
        user: &str,
        origin: &Origin,
        channel: &str,
        leave: Leave,
    ) -> Result<(), HubError> {
        self.revoke_tickets(user).await?;
        self.unsubscribe(user, origin, channel, leave).await
    }

    /// `/web/set_user_options`; the user's resume tickets carry the old options, so they are
    /// revoked.
    pub async fn set_user_options(
        &self,
        name: &str,
        opts: &Map<String, Value>,
    ) -> Result<(), HubError> {
        self.revoke_tickets(name).await?;
        match self.engine.set_user_options(name, opts).await? {
            Some(applied) => Ok(applied?),
            None => Err(HubError::NoUser(name.to_owned())),
        }
    }

    pub async fn user_info(&self, name: &str) -> Result<Value, HubError> {
        self.engine
            .user_info(name)
            .await?
            .ok_or_else(|| HubError::NoUser(name.to_owned()))
    }

    pub async fn channel_info(&self, name: &str) -> Result<Value, HubError> {
        self.engine
            .channel_info(name)
            .await?
            .ok_or_else(|| HubError::NoChannel(name.to_owned()))
    }

    /// The cookie a Web API call on behalf of `name` carries (the user's remembered one).
    pub async fn user_cookie(&self, name: &str) -> Result<String, HubError> {
        self.engine
            .temp_cookie(name)
            .await?
            .ok_or_else(|| HubError::NoUser(name.to_owned()))
    }

    /// `/web/disconnect`: closes every connection of the user. Each transport then ends and the
    /// usual close handling (unsubscribes, destroy attempts, disconnect webhook) follows. The
    /// user's resume tickets are revoked first, so that none of them comes back unasked.
    pub async fn kick(&self, name: &str) -> Result<usize, HubError> {
        self.revoke_tickets(name).await?;
        self.engine
            .kick(name)
            .await?
            .ok_or_else(|| HubError::NoUser(name.to_owned()))
    }
}
