//! The actions of §2.4: connect, subscribe, unsubscribe, publish and private message (the close
//! of a connection is in `closing`). Each action awaits its webhooks first, then makes one engine
//! call that decides and applies its effect.

use super::resume::{self, Resumable};
use super::{Conn, Hooks, Hub, HubError, Leave, Origin};
use crate::engine::frames::{self, PublishBody};
use crate::engine::options::{want_names, UserOptions};
use crate::engine::{
    now_stamp, raw, Attach, EngineError, Entry, Join, Joined, LeaseKind, Membership, Publication,
    Recipients,
};
use crate::protocol::{args, to_ascii_string, About, OutFrame, Position, ResumeArg};
use crate::webhook::{json_truthy, Decision, Hook};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A connection let in: its user name, and its part in resume tickets if it takes one.
pub struct Connected {
    pub name: Arc<str>,
    pub resume: Option<Box<Resumable>>,
}

/// A publication to make: who publishes, where, what, and whether the webhook is asked.
pub struct Publish<'a> {
    /// The publishing user, for a client's PUBLISH (the channel is then created if unknown, and
    /// the reply's auto lists run for this user); `None` for the web application.
    pub publisher: Option<&'a str>,
    /// The frame's `user`: the publisher's name, or a Web API `originator` (JSON null if none).
    pub originator: Option<&'a str>,
    pub origin: &'a Origin,
    pub channel: &'a str,
    /// Encoded once (see [`raw`]), copied into every frame as bytes.
    pub payload: &'a RawValue,
    pub hooks: Hooks,
}

impl Hub {
    /// CONNECT: asks the `connect` webhook, then registers the connection under the user name it
    /// returned, sends CONNECTED, replays the user's subscriptions to this new connection and runs
    /// the reply's auto_subscribe / auto_unsubscribe lists — in that order. A client that takes
    /// part in resume tickets (`resume`) and presents one that holds is connected as its ticket
    /// says, without the webhook (see `resume`).
    pub async fn connect(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        payload_text: String,
        resume: Option<&ResumeArg>,
    ) -> Result<Connected, HubError> {
        if let Some(ResumeArg::Ticket(ticket)) = resume {
            if let Some(opened) = self.open_ticket(ticket, &conn.cookie).await {
                return self.resume(conn, opened, payload_text).await;
            }
        }
        let origin = Origin::client(conn);
        let form = vec![
            ("conn_id", conn.id.to_string()),
            ("payload", payload_text.clone()),
        ];
        let decision = self.ask(Hook::Connect, form, &origin).await?;
        let name: Arc<str> = match decision.options.get("name") {
            Some(Value::String(s)) if !s.is_empty() => Arc::from(s.as_str()),
            _ => {
                return Err(HubError::Denied(
                    "Unauthorized (missing name parameter in server response)".into(),
                ))
            }
        };
        let mut options = UserOptions::default();
        options.apply(&decision.options, false)?;

        let payload = decision
            .options
            .get("override_payload")
            .cloned()
            .unwrap_or(Value::String(payload_text));
        let mut connected = args([("name", json!(&*name)), ("payload", payload)]);
        let resumable = resume.and_then(|_| {
            // The auto_subscribe channels are the web app's own choice: rejoined unasked.
            let auto = decision
                .options
                .get("auto_subscribe")
                .and_then(|list| want_names("auto_subscribe", list).ok())
                .unwrap_or_default();
            Resumable::from_reply(self, &decision.options, &conn.cookie, auto)
        });
        if let Some(r) = &resumable {
            self.add_ticket(&mut connected, &name, &options, r);
        }
        self.attach(conn, &name, options, &connected).await?;
        self.run_auto_lists(&name, &origin, &decision).await;
        Ok(Connected {
            name,
            resume: resumable.map(Box::new),
        })
    }

    /// CONNECT with a ticket that holds: connected as the web app decided when it issued it,
    /// with a renewed ticket; no webhook, no auto lists (the client joins its channels again).
    async fn resume(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        opened: resume::Opened,
        payload_text: String,
    ) -> Result<Connected, HubError> {
        let name: Arc<str> = Arc::from(opened.user());
        let mut options = UserOptions::default();
        options.apply(opened.options(), false)?;
        let payload = opened
            .payload()
            .cloned()
            .unwrap_or(Value::String(payload_text));
        let mut connected = args([
            ("name", json!(&*name)),
            ("payload", payload),
            ("resumed", json!(true)),
        ]);
        let resumable = opened.resumable();
        self.add_ticket(&mut connected, &name, &options, &resumable);
        self.attach(conn, &name, options, &connected).await?;
        Ok(Connected {
            name,
            resume: Some(Box::new(resumable)),
        })
    }

    /// Registers a connection the web app (or its ticket) let in, CONNECTED first.
    async fn attach(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        name: &Arc<str>,
        options: UserOptions,
        connected: &Map<String, Value>,
    ) -> Result<(), HubError> {
        let about = About::Connected {
            user: (**name).into(),
        };
        let connected = OutFrame::with("CONNECTED", connected, about);
        let attach = Attach {
            conn,
            user: name,
            options,
            connected: &connected,
        };
        if let Err(e) = self.engine.attach(attach).await {
            if matches!(e, EngineError::Interrupted(_)) {
                // Attached in part (CONNECTED may even be out): undo it like any close, in the
                // background, since it waits for the engine.
                let (hub, conn, name) = (self.clone(), conn.clone(), name.clone());
                tokio::spawn(async move { hub.connection_closed(&name, &conn).await });
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Executes a reply's `auto_subscribe` and `auto_unsubscribe` lists without subscribe /
    /// unsubscribe webhooks (channels are still created through create_channel). Failures are
    /// logged: the action that carried the lists has already been decided.
    fn run_auto_lists<'a>(
        self: &'a Arc<Self>,
        user: &'a str,
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
                        self.subscribe(user, origin, &channel, Hooks::Skip, None)
                            .await
                    } else {
                        self.unsubscribe(user, origin, &channel, Leave::Silent)
                            .await
                    };
                    if let Err(e) = result {
                        tracing::info!("{key} of {user} to {channel} failed: {e}");
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
        if self.engine.channel_exists(name).await? {
            return Ok(false);
        }
        if name.len() > super::MAX_CHANNEL_NAME {
            return Err(HubError::ChannelNameTooLong);
        }
        // One creation per name at a time on this node: when a crowd joins a new channel at once,
        // the first asks the web app and the others wait and find the channel made (or, if the
        // first was denied, ask in turn with their own cookie).
        let turn = CreationTurn::join(&self.creating, name);
        let _my_turn = turn.turn.lock().await;
        self.create_once(name, origin).await
    }
}

/// The waiters for one channel name's creation on this node.
pub(super) type Creating = Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>;

/// One call's place among the waiters for a name's creation. The last one out removes the
/// name's entry when it is dropped, however the call ends: a caller dropped mid-wait (its client
/// gone during the webhook) must not leave the entry behind, or every abandoned name would stay.
struct CreationTurn<'a> {
    creating: &'a Creating,
    name: &'a str,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> CreationTurn<'a> {
    fn join(creating: &'a Creating, name: &'a str) -> CreationTurn<'a> {
        let turn = creating.lock().entry(Arc::from(name)).or_default().clone();
        CreationTurn {
            creating,
            name,
            turn,
        }
    }
}

impl Drop for CreationTurn<'_> {
    fn drop(&mut self) {
        let mut creating = self.creating.lock();
        // The map holds one reference, this turn another: no one else waits. (References are
        // only taken under this lock.)
        if creating
            .get(self.name)
            .is_some_and(|t| Arc::ptr_eq(t, &self.turn))
            && Arc::strong_count(&self.turn) == 2
        {
            creating.remove(self.name);
        }
    }
}

impl Hub {
    /// Creates `name` through the webhook unless it exists, one node at a time in the cluster
    /// (the create lease), so that the webhook is asked once when a crowd on several nodes joins
    /// a new channel. The others wait for the channel, or for their turn if it was refused.
    async fn create_once(self: &Arc<Self>, name: &str, origin: &Origin) -> Result<bool, HubError> {
        // The lease outlasts the webhook call; waiting for another node is bounded alike.
        let ttl = self.webhooks.timeout() * 2;
        let deadline = tokio::time::Instant::now() + ttl;
        let mut pause = std::time::Duration::from_millis(10);
        loop {
            if self.engine.channel_exists(name).await? {
                return Ok(false);
            }
            if self.engine.lease(LeaseKind::Create, name, ttl).await? {
                let created = self.create_from_hook(name, origin).await;
                let _ = self.engine.release(LeaseKind::Create, name).await;
                return created;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HubError::Denied(format!(
                    "Channel {name} is still being created by another node"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(200));
        }
    }

    /// Asks the create_channel webhook and creates the channel with the options it returned;
    /// true if this call created it (another node may have been first).
    async fn create_from_hook(
        self: &Arc<Self>,
        name: &str,
        origin: &Origin,
    ) -> Result<bool, HubError> {
        let form = vec![("channel_name", name.to_owned())];
        let decision = self.hook(Hook::CreateChannel, form, origin).await;
        super::refusal(&decision, |d| HubError::ChannelRefused {
            error: d.error_msg(),
            reply_msg: d.reply_msg(),
        })?;
        self.insert_channel(name, &decision.options, &Map::new())
            .await
    }

    /// SUBSCRIBE. `Hooks::Skip` for auto lists and Web API calls without `send_hook`.
    /// `recover`: the position a reconnected client was at in the channel, for what it missed.
    pub async fn subscribe(
        self: &Arc<Self>,
        user: &str,
        origin: &Origin,
        channel: &str,
        hooks: Hooks,
        recover: Option<&Position>,
    ) -> Result<(), HubError> {
        self.check_channel_count(user, channel).await?;
        self.ensure_channel(channel, origin).await?;
        let flags = match self
            .engine
            .membership(channel, user, origin.conn_id())
            .await?
        {
            Membership::NoChannel => return Err(HubError::NoChannel(channel.to_owned())),
            // Already a subscriber: no webhook and, as in the original, no frame, unless the
            // connection asked to recover.
            Membership::Member => return self.recover_member(user, origin, channel, recover).await,
            Membership::NotMember(flags) => flags,
        };
        let mut initial_data = None;
        if flags.moderated_subscribe && hooks == Hooks::Ask {
            let form = vec![
                ("channel_name", channel.to_owned()),
                ("user", user.to_owned()),
            ];
            let decision = self.ask(Hook::Subscribe, form, origin).await?;
            self.run_auto_lists(user, origin, &decision).await;
            initial_data = decision
                .options
                .get("initial_data")
                .filter(|v| json_truthy(v))
                .cloned();
        }
        let joined = self
            .engine
            .join(
                channel,
                user,
                Join {
                    conn: origin.conn_id(),
                    initial_data: initial_data.as_ref(),
                    recover,
                },
            )
            .await?;
        match joined {
            Joined::Joined => {
                self.observe(channel, || format!("SUBSCRIBE {user}"));
                Ok(())
            }
            Joined::AlreadyMember => self.recover_member(user, origin, channel, recover).await,
            Joined::NoChannel => Err(HubError::NoChannel(channel.to_owned())),
            // The user's last connection closed meanwhile: its cascade owns the user.
            Joined::UserGone => Err(HubError::NoUser(user.to_owned())),
        }
    }

    /// Refuses a subscription that would take `user` past `--max-channels-per-user`, before
    /// the channel is created (so that refused subscriptions cannot pile up empty channels).
    /// Subscriptions in flight at once (several connections, nodes or Web API calls) may pass
    /// it together: the bound is the count before each, which still bounds a user to the limit
    /// plus the subscriptions in flight.
    async fn check_channel_count(&self, user: &str, channel: &str) -> Result<(), HubError> {
        let max = self.limits.max_channels_per_user;
        let channels = self.engine.user_channels(user).await?;
        if channels.len() >= max && !channels.iter().any(|c| &**c == channel) {
            crate::metrics::refused("channels_per_user");
            return Err(HubError::TooManyChannels(max));
        }
        Ok(())
    }

    /// A member's connection that asked to recover gets its recovery (nothing otherwise).
    async fn recover_member(
        &self,
        user: &str,
        origin: &Origin,
        channel: &str,
        recover: Option<&Position>,
    ) -> Result<(), HubError> {
        if let (Some(pos), Some(conn)) = (recover, origin.conn_id()) {
            if !self.engine.recover(channel, user, conn, pos).await? {
                return Err(HubError::NotRecovered(channel.to_owned()));
            }
        }
        Ok(())
    }

    /// UNSUBSCRIBE. An unknown channel is a silent no-op: unlike the original, it is not
    /// created first.
    pub async fn unsubscribe(
        self: &Arc<Self>,
        user: &str,
        origin: &Origin,
        channel: &str,
        leave: Leave,
    ) -> Result<(), HubError> {
        let Some(flags) = self.engine.member_flags(channel, user).await? else {
            return Ok(());
        };
        if flags.moderated_unsubscribe && leave == Leave::Asked {
            let form = vec![
                ("channel_name", channel.to_owned()),
                ("user", user.to_owned()),
            ];
            let decision = self.ask(Hook::Unsubscribe, form, origin).await?;
            self.run_auto_lists(user, origin, &decision).await;
        }
        if let Some(emptied) = self.engine.leave(channel, user).await? {
            self.observe(channel, || format!("UNSUBSCRIBE {user}"));
            if emptied.0 {
                self.try_destroy(channel).await;
            }
        }
        Ok(())
    }

    /// The destroy attempt after the last subscriber left: the channel goes only if the
    /// destroy_channel webhook agrees and nobody joined meanwhile.
    async fn try_destroy(&self, channel: &str) {
        if self.destroy_approved(channel).await {
            if let Err(e) = self.destroy_if_empty(channel).await {
                tracing::warn!("destroying channel {channel} failed: {e}");
            }
        }
    }

    /// Asks the destroy_channel webhook whether an emptied channel may go.
    pub(super) async fn destroy_approved(&self, channel: &str) -> bool {
        let form = vec![("channel_name", channel.to_owned())];
        self.inform(Hook::DestroyChannel, form, &Origin::default())
            .await
            .success
    }

    /// PUBLISH from a client (the channel is created if unknown) or from the web application.
    pub async fn publish(self: &Arc<Self>, p: Publish<'_>) -> Result<(), HubError> {
        let created = match p.publisher {
            Some(_) => self.ensure_channel(p.channel, p.origin).await?,
            None => false,
        };
        let channel = p.channel;
        let result = self.publish_existing(p).await;
        if created && result.is_err() {
            // A refused publish leaves no channel behind: the one it created, still empty, goes
            // through the usual destroy attempt (the original kept it forever).
            self.try_destroy(channel).await;
        }
        result
    }

    async fn publish_existing(self: &Arc<Self>, p: Publish<'_>) -> Result<(), HubError> {
        let flags = self
            .engine
            .flags(p.channel)
            .await?
            .ok_or_else(|| HubError::NoChannel(p.channel.to_owned()))?;
        let mut overridden = None;
        let mut only_to_sender = false;
        if flags.moderated_publish && p.hooks == Hooks::Ask {
            let mut form = vec![
                ("channel_name", p.channel.to_owned()),
                ("payload", p.payload.get().to_owned()),
            ];
            if let (Some(name), false) = (p.originator, flags.anonymous) {
                form.push(("originator", name.to_owned()));
            }
            let decision = self.hook(Hook::Publish, form, p.origin).await;
            if let Some(user) = p.publisher {
                // The original runs the reply's auto lists even when it denies the publish.
                self.run_auto_lists(user, p.origin, &decision).await;
            }
            super::refusal(&decision, |d| HubError::Denied(d.error_msg()))?;
            if let Some(v) = decision.options.get("override_payload") {
                overridden = Some(raw(v));
            }
            only_to_sender = decision
                .options
                .get("only_to_sender")
                .is_some_and(json_truthy);
        }
        // Encode once; every recipient shares these bytes.
        let stamp = now_stamp();
        let user = (!flags.anonymous).then(|| p.originator.map_or(Value::Null, Value::from));
        let body = PublishBody {
            payload: overridden.as_deref().unwrap_or(p.payload),
            datetime: &stamp,
            user: user.as_ref(),
        };
        let frame = frames::publish(p.channel, &body);
        let watched = frame.clone(); // one refcount: shown to the channel's watchers, if any
        let publication = Publication {
            frame,
            // Encoded only for a channel that keeps history (a change of history_size since
            // the flags were read only means one entry more or less).
            entry: flags
                .keeps_history
                .then(|| Entry::new("PUBLISH", &body, &stamp)),
            skip_conn: p.origin.conn_id().map(|id| &**id),
            to: match (only_to_sender, p.publisher) {
                (false, _) => Recipients::Subscribers,
                (true, Some(user)) => Recipients::User(user),
                (true, None) => Recipients::Nobody,
            },
        };
        if self.engine.publish(p.channel, publication).await? {
            crate::metrics::publication();
            self.observe(p.channel, || watched.text());
            Ok(())
        } else {
            Err(HubError::NoChannel(p.channel.to_owned()))
        }
    }

    /// A private MESSAGE from `sender` to user `recipient`.
    pub async fn message(
        self: &Arc<Self>,
        sender: &str,
        origin: &Origin,
        recipient: &str,
        payload: Value,
        hooks: Hooks,
    ) -> Result<(), HubError> {
        let options = self
            .engine
            .user_options(sender)
            .await?
            .ok_or_else(|| HubError::NoUser(sender.to_owned()))?;
        let moderated = options.moderated_message && hooks == Hooks::Ask;
        let mut recipient = recipient.to_owned();
        let mut payload = payload;
        if moderated {
            let exists = self.engine.user_exists(&recipient).await?;
            let form = vec![
                ("sender", sender.to_owned()),
                ("recipient", recipient.clone()),
                (
                    "recipient_exists",
                    if exists { "True" } else { "False" }.to_owned(),
                ),
                ("payload", to_ascii_string(&payload)),
            ];
            let decision = self.ask(Hook::Message, form, origin).await?;
            self.run_auto_lists(sender, origin, &decision).await;
            if let Some(p) = decision.options.get("override_payload") {
                payload = p.clone();
            }
            if let Some(Value::String(name)) = decision.options.get("override_recipient_name") {
                recipient = name.clone();
            }
        }
        let exists = self.engine.user_exists(&recipient).await?;
        if !exists && !moderated {
            return Err(HubError::InvalidUserName);
        }
        let frame = OutFrame::new(
            "MESSAGE",
            &args([
                ("sender", json!(sender)),
                (
                    "recipient",
                    json!(if exists { recipient.as_str() } else { "null" }),
                ),
                ("payload", payload),
                ("datetime", json!(now_stamp())),
            ]),
        );
        if exists {
            self.engine.send_to_user(&recipient, &frame).await?;
        }
        if options.reflective && (!exists || recipient != sender) {
            self.engine.send_to_user(sender, &frame).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_abandoned_wait_for_a_creation_leaves_no_entry() {
        let creating = Creating::default();
        let first = CreationTurn::join(&creating, "room");
        let held = first.turn.lock().await;
        // A second caller waits its turn, and is dropped while waiting (its client went away).
        let waiter = async {
            let second = CreationTurn::join(&creating, "room");
            let _turn = second.turn.lock().await;
        };
        // Polled once (it queues for the lock), then dropped.
        tokio::select! {
            biased;
            _ = waiter => panic!("the turn was held"),
            _ = std::future::ready(()) => {}
        }
        assert_eq!(creating.lock().len(), 1, "the first still holds the entry");
        drop(held);
        drop(first);
        assert!(creating.lock().is_empty());
    }
}
