//! The actions of §2.4: connect, subscribe, unsubscribe, publish, private message, and the
//! cascade when a user's last connection closes. Each action awaits its webhooks with no lock
//! held, then applies its effect under the channel's shard lock so that every subscriber sees the
//! same order of frames.

use super::channel::history_room;
use super::history::{now_stamp, raw, record, Entry};
use super::options::{want_names, UserOptions};
use super::{Conn, Hub, HubError, Origin, User};
use crate::protocol::{args, to_ascii_string, OutFrame};
use crate::webhook::{json_truthy, Decision, Hook};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

impl Hub {
    /// CONNECT: asks the `connect` webhook, then registers the connection under the user name it
    /// returned, sends CONNECTED, replays the user's subscriptions to this new connection and runs
    /// the reply's auto_subscribe / auto_unsubscribe lists — in that order.
    pub async fn connect(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        payload_text: String,
    ) -> Result<Arc<User>, HubError> {
        let origin = Origin::client(conn);
        let decision = self
            .hook(
                Hook::Connect,
                vec![
                    ("conn_id", conn.id.to_string()),
                    ("payload", payload_text.clone()),
                ],
                &origin,
            )
            .await;
        if !decision.success {
            return Err(HubError::Denied(decision.error_msg()));
        }
        let name = match decision.options.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(HubError::Denied(
                    "Unauthorized (missing name parameter in server response)".into(),
                ))
            }
        };
        let mut options = UserOptions::default();
        options.apply(&decision.options, false)?;

        // CONNECTED is queued before the connection joins its user, so that no channel frame
        // fanned out to the user's connections can overtake it.
        let payload = decision
            .options
            .get("override_payload")
            .cloned()
            .unwrap_or(Value::String(payload_text));
        conn.send(&OutFrame::new(
            "CONNECTED",
            &args([("name", json!(name)), ("payload", payload)]),
        ));

        // Other tabs of this user: the new connection hears about every channel already joined,
        // before it is attached, so that no traffic of those channels can overtake the frames.
        let replayed = match self.user(&name) {
            Some(existing) => self.replay_subscriptions(&existing, conn, &[]),
            None => Vec::new(),
        };
        self.conns.lock().insert(conn.id.clone(), conn.clone());
        let user = self.attach(&name, conn, options);
        // Channels joined by another tab in the meantime.
        self.replay_subscriptions(&user, conn, &replayed);
        self.run_auto_lists(&user, &origin, &decision).await;
        Ok(user)
    }

    /// Sends `conn` an own-SUBSCRIBE frame (without initial_data) for each channel `user` is in,
    /// except those in `skip`; returns the channels covered.
    fn replay_subscriptions(
        &self,
        user: &Arc<User>,
        conn: &Conn,
        skip: &[Arc<str>],
    ) -> Vec<Arc<str>> {
        let channels: Vec<Arc<str>> = user.state.lock().channels.keys().cloned().collect();
        for channel in channels.iter().filter(|c| !skip.contains(c)) {
            self.with_channel(channel, |ch| {
                if ch.is_subscribed(user) {
                    let room = history_room(&conn.outbox);
                    conn.outbox
                        .push_own(&ch.own_subscribe_frame(&user.name, None, room));
                }
            });
        }
        channels
    }

    /// Gets or creates user `name` and attaches `conn` to it, replacing the user's options.
    fn attach(&self, name: &str, conn: &Arc<Conn>, options: UserOptions) -> Arc<User> {
        loop {
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
            {
                let mut st = user.state.lock();
                if st.gone {
                    // Lost a race with the user's removal: take a fresh user.
                    continue;
                }
                st.options = options.clone();
                st.conns.push(conn.clone());
            }
            if created {
                self.server_presence(name, true);
            }
            return user;
        }
    }

    /// Executes a reply's `auto_subscribe` and `auto_unsubscribe` lists without subscribe /
    /// unsubscribe webhooks (channels are still created through create_channel). Failures are
    /// logged: the action that carried the lists has already been decided.
    fn run_auto_lists<'a>(
        self: &'a Arc<Self>,
        user: &'a Arc<User>,
        origin: &'a Origin,
        decision: &'a Decision,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            for (key, subscribe) in [("auto_subscribe", true), ("auto_unsubscribe", false)] {
                let Some(list) = decision.options.get(key) else {
                    continue;
                };
                let names = match want_names(key, list) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!("ignoring webhook reply's {key}: {e}");
                        continue;
                    }
                };
                for channel in names {
                    let result = if subscribe {
                        self.subscribe(user, origin, &channel, false).await
                    } else {
                        self.unsubscribe(user, origin, &channel, false, false).await
                    };
                    if let Err(e) = result {
                        tracing::info!("{key} of {} to {channel} failed: {e}", user.name);
                    }
                }
            }
        })
    }

    /// Creates `name` if it is unknown, asking the create_channel webhook for its options.
    /// Returns whether this call created it.
    pub async fn ensure_channel(
        self: &Arc<Self>,
        name: &str,
        origin: &Origin,
    ) -> Result<bool, HubError> {
        if self.channel_exists(name) {
            return Ok(false);
        }
        if name.len() > super::MAX_CHANNEL_NAME {
            return Err(HubError::ChannelNameTooLong);
        }
        // One creation per name at a time: when a crowd joins a new channel at once, the first
        // asks the web app and the others wait and find the channel made (or, if the first was
        // denied, ask in turn with their own cookie).
        let turn = self
            .creating
            .lock()
            .entry(Arc::from(name))
            .or_default()
            .clone();
        let result = {
            let _my_turn = turn.lock().await;
            if self.channel_exists(name) {
                Ok(false)
            } else {
                self.create_from_hook(name, origin).await.map(|()| true)
            }
        };
        let mut creating = self.creating.lock();
        // The last one out removes the entry (the map holds one reference, this call another).
        if creating.get(name).is_some_and(|t| Arc::ptr_eq(t, &turn))
            && Arc::strong_count(&turn) == 2
        {
            creating.remove(name);
        }
        result
    }

    /// Asks the create_channel webhook and creates the channel with the options it returned.
    async fn create_from_hook(
        self: &Arc<Self>,
        name: &str,
        origin: &Origin,
    ) -> Result<(), HubError> {
        let decision = self
            .hook(
                Hook::CreateChannel,
                vec![("channel_name", name.to_owned())],
                origin,
            )
            .await;
        if !decision.success {
            return Err(HubError::ChannelRefused {
                error: decision.error_msg(),
                reply_msg: decision.reply_msg(),
            });
        }
        self.vet_options(&decision.options)?;
        let mut options = self.new_channel_options();
        options.apply(&decision.options)?;
        self.insert_channel(name, options);
        Ok(())
    }

    /// SUBSCRIBE. `hooks` is false for auto lists and REST calls without `send_hook`.
    pub async fn subscribe(
        self: &Arc<Self>,
        user: &Arc<User>,
        origin: &Origin,
        channel: &str,
        hooks: bool,
    ) -> Result<(), HubError> {
        self.ensure_channel(channel, origin).await?;
        let moderated = self
            .with_channel(channel, |ch| {
                if ch.is_subscribed(user) {
                    user.state.lock().record(&ch.name, origin.conn_id());
                    None
                } else {
                    Some(ch.options.is_moderated_subscribe())
                }
            })
            .ok_or_else(|| HubError::NoChannel(channel.to_owned()))?;
        let Some(moderated) = moderated else {
            return Ok(()); // already a subscriber: no webhook, no frame
        };
        let mut initial_data = None;
        if moderated && hooks {
            let decision = self
                .hook(
                    Hook::Subscribe,
                    vec![
                        ("channel_name", channel.to_owned()),
                        ("user", user.name.to_string()),
                    ],
                    origin,
                )
                .await;
            if !decision.success {
                return Err(HubError::Denied(decision.error_msg()));
            }
            self.run_auto_lists(user, origin, &decision).await;
            initial_data = decision
                .options
                .get("initial_data")
                .filter(|v| json_truthy(v))
                .cloned();
        }
        self.with_channel(channel, |ch| {
            // One user lock at a time: holding two could deadlock against a fan-out on another
            // shard that takes them in the other order.
            {
                let mut st = user.state.lock();
                if st.gone || st.conns.is_empty() {
                    // The user's last connection closed meanwhile: its cascade owns the user.
                    return Err(HubError::NoUser(user.name.to_string()));
                }
                st.record(&ch.name, origin.conn_id());
            }
            if ch.is_subscribed(user) {
                return Ok(());
            }
            ch.subscribers.push(user.clone());
            let stamp = now_stamp();
            if ch.options.presenceful {
                let presence = ch.membership_frame("SUBSCRIBE", &user.name, &stamp);
                ch.broadcast(&presence, Some(&user.name), None);
            }
            ch.send_own_subscribe(user, initial_data.as_ref());
            if !ch.options.history_publish_only {
                let body = json!({"user": &*user.name, "datetime": stamp});
                record(&mut ch.options, Entry::new("SUBSCRIBE", &body, &stamp));
            }
            Ok(())
        })
        .ok_or_else(|| HubError::NoChannel(channel.to_owned()))?
    }

    /// UNSUBSCRIBE. With `forced` (the disconnect cascade) a denial is ignored.
    /// An unknown channel is a silent no-op: unlike the original, it is not created first.
    pub async fn unsubscribe(
        self: &Arc<Self>,
        user: &Arc<User>,
        origin: &Origin,
        channel: &str,
        hooks: bool,
        forced: bool,
    ) -> Result<(), HubError> {
        let Some(Some(moderated)) = self.with_channel(channel, |ch| {
            ch.is_subscribed(user)
                .then(|| ch.options.is_moderated_unsubscribe())
        }) else {
            // Not a subscriber (or no such channel): make sure the user's map agrees.
            user.state.lock().channels.shift_remove(channel);
            return Ok(());
        };
        if moderated && hooks {
            let decision = self
                .hook(
                    Hook::Unsubscribe,
                    vec![
                        ("channel_name", channel.to_owned()),
                        ("user", user.name.to_string()),
                    ],
                    origin,
                )
                .await;
            if !forced {
                if !decision.success {
                    return Err(HubError::Denied(decision.error_msg()));
                }
                self.run_auto_lists(user, origin, &decision).await;
            }
        }
        if self.remove_subscriber(channel, user, true) == Some(true) {
            self.try_destroy(channel).await;
        }
        Ok(())
    }

    /// Removes `user` from `channel` with its frames and history. Returns whether the channel is
    /// now empty, or `None` if the user was not subscribed (or the channel is gone).
    pub(super) fn remove_subscriber(
        &self,
        channel: &str,
        user: &Arc<User>,
        presence: bool,
    ) -> Option<bool> {
        self.with_channel(channel, |ch| {
            let pos = ch.subscribers.iter().position(|u| Arc::ptr_eq(u, user))?;
            let stamp = now_stamp();
            let frame = ch.membership_frame("UNSUBSCRIBE", &user.name, &stamp);
            if presence && ch.options.presenceful {
                ch.broadcast(&frame, Some(&user.name), None);
            }
            {
                let mut st = user.state.lock();
                st.send_all(&frame);
                st.channels.shift_remove(&*ch.name);
            }
            ch.subscribers.remove(pos);
            if !ch.options.history_publish_only {
                let body = json!({"user": &*user.name, "datetime": stamp});
                record(&mut ch.options, Entry::new("UNSUBSCRIBE", &body, &stamp));
            }
            Some(ch.subscribers.is_empty())
        })
        .flatten()
    }

    /// The destroy attempt after the last subscriber left: the channel goes only if the
    /// destroy_channel webhook agrees and nobody joined meanwhile.
    async fn try_destroy(&self, channel: &str) {
        let decision = self
            .hook(
                Hook::DestroyChannel,
                vec![("channel_name", channel.to_owned())],
                &Origin::default(),
            )
            .await;
        if !decision.success {
            return;
        }
        // Checked and removed under one lock, so nobody can join in between.
        if let Some(ch) = self.take_channel(channel, |ch| ch.subscribers.is_empty()) {
            self.forget_channel(ch);
        }
    }

    /// PUBLISH from a client (`publisher` set, channel auto-created) or from the web application.
    /// The payload arrives encoded once (see [`raw`]) and is copied into every frame as bytes.
    #[allow(clippy::too_many_arguments)]
    pub async fn publish(
        self: &Arc<Self>,
        publisher: Option<&Arc<User>>,
        originator: Option<&str>,
        origin: &Origin,
        channel: &str,
        payload: &RawValue,
        hooks: bool,
    ) -> Result<(), HubError> {
        let created = match publisher {
            Some(_) => self.ensure_channel(channel, origin).await?,
            None => false,
        };
        let result = self
            .publish_existing(publisher, originator, origin, channel, payload, hooks)
            .await;
        if created && result.is_err() {
            // A refused publish leaves no channel behind: the one it created, still empty, goes
            // through the usual destroy attempt (the original kept it forever).
            self.try_destroy(channel).await;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish_existing(
        self: &Arc<Self>,
        publisher: Option<&Arc<User>>,
        originator: Option<&str>,
        origin: &Origin,
        channel: &str,
        payload: &RawValue,
        hooks: bool,
    ) -> Result<(), HubError> {
        let (moderated, anonymous, keeps_history) = self
            .with_channel(channel, |ch| {
                (
                    ch.options.is_moderated_publish(),
                    ch.options.anonymous,
                    ch.options.history_size > 0,
                )
            })
            .ok_or_else(|| HubError::NoChannel(channel.to_owned()))?;
        let mut overridden = None;
        let mut only_to_sender = false;
        if moderated && hooks {
            let mut form = vec![
                ("channel_name", channel.to_owned()),
                ("payload", payload.get().to_owned()),
            ];
            if let (Some(name), false) = (originator, anonymous) {
                form.push(("originator", name.to_owned()));
            }
            let decision = self.hook(Hook::Publish, form, origin).await;
            if let Some(user) = publisher {
                // The original runs the reply's auto lists even when it denies the publish.
                self.run_auto_lists(user, origin, &decision).await;
            }
            if !decision.success {
                return Err(HubError::Denied(decision.error_msg()));
            }
            if let Some(p) = decision.options.get("override_payload") {
                overridden = Some(raw(p));
            }
            only_to_sender = decision
                .options
                .get("only_to_sender")
                .is_some_and(json_truthy);
        }
        let payload = overridden.as_deref().unwrap_or(payload);
        // Encode once, outside the channel lock; every recipient shares these bytes.
        let stamp = now_stamp();
        let user = (!anonymous).then(|| originator.map_or(Value::Null, Value::from));
        let body = PublishBody {
            payload,
            datetime: &stamp,
            user: user.as_ref(),
        };
        let frame = OutFrame::new(
            "PUBLISH",
            &PublishArgs {
                channel_name: channel,
                body: &body,
            },
        );
        // Encoded only for a channel that keeps history (read above; a change of
        // history_size in between only means one entry more or less).
        let entry = keeps_history.then(|| Entry::new("PUBLISH", &body, &stamp));
        let skip_conn = origin.conn_id().cloned();
        self.with_channel(channel, |ch| {
            let skip = if ch.options.reflective {
                None
            } else {
                skip_conn.as_deref()
            };
            match (only_to_sender, publisher) {
                (true, Some(user)) => user
                    .state
                    .lock()
                    .send_channel_or_all(&ch.name, &frame, skip),
                (true, None) => {}
                (false, _) => ch.broadcast(&frame, None, skip),
            }
            if let Some(entry) = entry {
                record(&mut ch.options, entry);
            }
        })
        .ok_or_else(|| HubError::NoChannel(channel.to_owned()))
    }

    /// A private MESSAGE from `sender` to user `recipient`.
    pub async fn message(
        self: &Arc<Self>,
        sender: &Arc<User>,
        origin: &Origin,
        recipient: &str,
        payload: Value,
        hooks: bool,
    ) -> Result<(), HubError> {
        let (moderated, reflective) = {
            let st = sender.state.lock();
            (st.options.moderated_message, st.options.reflective)
        };
        let mut recipient = recipient.to_owned();
        let mut payload = payload;
        if moderated && hooks {
            let exists = self.user(&recipient).is_some();
            let form = vec![
                ("sender", sender.name.to_string()),
                ("recipient", recipient.clone()),
                (
                    "recipient_exists",
                    if exists { "True" } else { "False" }.to_owned(),
                ),
                ("payload", to_ascii_string(&payload)),
            ];
            let decision = self.hook(Hook::Message, form, origin).await;
            if !decision.success {
                return Err(HubError::Denied(decision.error_msg()));
            }
            self.run_auto_lists(sender, origin, &decision).await;
            if let Some(p) = decision.options.get("override_payload") {
                payload = p.clone();
            }
            if let Some(Value::String(name)) = decision.options.get("override_recipient_name") {
                recipient = name.clone();
            }
        }
        let target = self.user(&recipient);
        if target.is_none() && !(moderated && hooks) {
            return Err(HubError::InvalidUserName);
        }
        let frame = OutFrame::new(
            "MESSAGE",
            &args([
                ("sender", json!(&*sender.name)),
                (
                    "recipient",
                    json!(if target.is_some() {
                        recipient.as_str()
                    } else {
                        "null"
                    }),
                ),
                ("payload", payload),
                ("datetime", json!(now_stamp())),
            ]),
        );
        if let Some(target) = &target {
            target.state.lock().send_all(&frame);
        }
        let same_user = target.as_ref().is_some_and(|t| Arc::ptr_eq(t, sender));
        if reflective && !same_user {
            sender.state.lock().send_all(&frame);
        }
        Ok(())
    }

    /// A connection went away: detach it, apply the per-connection / global unsubscription rules,
    /// and if it was the user's last connection run the cascade — forced unsubscribes (with
    /// destroy attempts), then removal of the user, then the disconnect webhook.
    pub async fn connection_closed(self: &Arc<Self>, user: &Arc<User>, conn: &Arc<Conn>) {
        self.conns.lock().swap_remove(&conn.id);
        let (emptied, last) = {
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
            (emptied, last)
        };
        let origin = Origin::api(conn.cookie.clone());
        for channel in emptied {
            let _ = self.unsubscribe(user, &origin, &channel, true, true).await;
        }
        if !last {
            return;
        }
        // While the user has no connection, nothing can subscribe it (see `subscribe`), so this
        // snapshot is complete. A tab that attaches meanwhile (a page reload) keeps the user and
        // its remaining subscriptions: the cascade stops there.
        let channels: Vec<Arc<str>> = user.state.lock().channels.keys().cloned().collect();
        for channel in channels {
            if !user.state.lock().conns.is_empty() {
                return;
            }
            let _ = self.unsubscribe(user, &origin, &channel, true, true).await;
        }
        {
            let mut users = self.users.lock();
            let mut st = user.state.lock();
            if !st.conns.is_empty() || st.gone {
                return; // a new tab attached, or another cascade already removed the user
            }
            st.gone = true;
            // Only this user object: a newer user of the same name must stay.
            if users.get(&user.name).is_some_and(|u| Arc::ptr_eq(u, user)) {
                users.remove(&user.name);
            }
        }
        self.server_presence(&user.name, false);
        self.hook(
            Hook::Disconnect,
            vec![("name", user.name.to_string())],
            &origin,
        )
        .await;
    }
}

impl super::UserState {
    /// `only_to_sender`: the publisher's connections for this channel if subscribed, else all.
    fn send_channel_or_all(&self, channel: &str, frame: &OutFrame, skip_conn: Option<&str>) {
        if self.channels.contains_key(channel) {
            self.send_channel(channel, frame, skip_conn);
        } else {
            for conn in self.conns.iter().filter(|c| Some(&*c.id) != skip_conn) {
                conn.send(frame);
            }
        }
    }
}

/// A PUBLISH's history entry body: `{payload, datetime, user?}`.
#[derive(Serialize)]
struct PublishBody<'a> {
    payload: &'a RawValue,
    datetime: &'a str,
    /// Absent on anonymous channels; JSON null for a Web API publish without `originator`.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a Value>,
}

/// A PUBLISH frame's args: the channel name, then the entry body's keys.
#[derive(Serialize)]
struct PublishArgs<'a> {
    channel_name: &'a str,
    #[serde(flatten)]
    body: &'a PublishBody<'a>,
}
