//! Membership and publication: join (with the catch-up of the joining connections), leave,
//! recovery, publish.

use super::replies::{JoinReply, OrMissing, PublishReply};
use super::{scripts, unavailable, wire, Members, RedisEngine};
use crate::engine::{
    frames, now_stamp, ChannelSettings, Conn, Emptied, EngineError, Entry, Flags, Join, Joined,
    Left, Membership, Publication, Recipients, Subscribers, Users,
};
use crate::protocol::Position;
use async_trait::async_trait;
use redis::Value as RValue;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wire::now_secs;

impl RedisEngine {
    async fn record(
        &self,
        ch: &str,
        user: &str,
        conn: Option<&Arc<str>>,
    ) -> Result<(), EngineError> {
        if let Some(local) = self.inner.index.user(user) {
            let found = {
                let mut st = local.state.lock();
                st.record(&Arc::from(ch), conn);
                conn.and_then(|id| st.conn(id))
            };
            if let Some(c) = found {
                self.inner.index.add_slot(ch, user, &c);
            }
        }
        if let Some(conn) = conn {
            let _: i64 = self
                .inner
                .invoke(
                    scripts::RECORD
                        .key(self.k().user(user).recorded)
                        .arg(ch)
                        .arg(&**conn),
                )
                .await?;
        }
        Ok(())
    }

    /// Whether `user` is a member, and the channel's settings (`None`: no such channel), in
    /// one pipeline.
    async fn membership_read(
        &self,
        ch: &str,
        user: &str,
    ) -> Result<(bool, Option<ChannelSettings>), EngineError> {
        let k = self.k().channel(ch);
        let (score, settings): (Option<f64>, Option<String>) = redis::pipe()
            .zscore(&k.members, user)
            .hget(&k.meta, "s")
            .query_async(&mut self.inner.conn())
            .await
            .map_err(unavailable)?;
        Ok((score.is_some(), settings.map(|s| wire::parse_settings(&s))))
    }
}

#[async_trait]
impl Subscribers for RedisEngine {
    async fn membership(
        &self,
        ch: &str,
        user: &str,
        conn: Option<&Arc<str>>,
    ) -> Result<Membership, EngineError> {
        match self.membership_read(ch, user).await? {
            (_, None) => Ok(Membership::NoChannel),
            (true, Some(_)) => {
                self.record(ch, user, conn).await?;
                Ok(Membership::Member)
            }
            (false, Some(settings)) => Ok(Membership::NotMember(Flags::of(&settings))),
        }
    }

    async fn recover(
        &self,
        ch: &str,
        user: &str,
        conn: &Arc<str>,
        pos: &Position,
    ) -> Result<bool, EngineError> {
        let Some(u) = self.inner.index.user(user) else {
            return Ok(false);
        };
        let Some(c) = u.state.lock().conn(conn) else {
            return Ok(false);
        };
        match self.inner.index.request_recovery(ch, user, &c, pos) {
            None => Ok(false),
            Some(false) => Ok(true), // the catch-up under way answers it
            Some(true) => match self.inner.snapshot(ch, Members::ForPresence).await {
                Ok(Some(snap)) => {
                    self.inner
                        .index
                        .finish_catch_up(ch, &u, &[c], &snap.view(), None);
                    Ok(true)
                }
                Ok(None) => {
                    self.inner.index.cancel_recovery(ch, user, &c);
                    Ok(false)
                }
                Err(e) => {
                    self.inner.index.cancel_recovery(ch, user, &c);
                    Err(e)
                }
            },
        }
    }

    async fn member_flags(&self, ch: &str, user: &str) -> Result<Option<Flags>, EngineError> {
        Ok(match self.membership_read(ch, user).await? {
            (true, Some(s)) => Some(Flags::of(&s)),
            _ => None,
        })
    }

    async fn join(&self, ch: &str, user: &str, join: Join<'_>) -> Result<Joined, EngineError> {
        let Join {
            conn,
            initial_data,
            recover,
        } = join;
        if !self.has_connections(user).await? {
            return Ok(Joined::UserGone);
        }
        let k = self.k().channel(ch);
        // This node's connections of the user wait for their own SUBSCRIBE from here on.
        let local = self.inner.index.user(user);
        let mut pending = Vec::new();
        if let Some(u) = &local {
            // Recorded first: in per-connection mode only the recorded connections get the
            // own SUBSCRIBE.
            let conns: Vec<Arc<Conn>> = {
                let mut st = u.state.lock();
                st.record(&Arc::from(ch), conn);
                st.channel_conns(ch, None).cloned().collect()
            };
            pending = self.inner.index.begin_catch_up(ch, u, &conns).0;
            // The asking connection's own SUBSCRIBE carries its recovery.
            let asking = conn.and_then(|id| conns.iter().find(|c| c.id == *id));
            if let (Some(c), Some(pos)) = (asking, recover) {
                let repended = self.inner.index.request_recovery(ch, user, c, pos);
                if repended == Some(true) && !pending.iter().any(|p| Arc::ptr_eq(p, c)) {
                    pending.push(c.clone());
                }
            }
            if let Err(e) = self.inner.subscribe(&k.events).await {
                self.inner.abandon(ch, user, &pending).await;
                return Err(e);
            }
        }
        let stamp = now_stamp();
        let presence = frames::membership("SUBSCRIBE", ch, user, &stamp);
        let entry = Entry::membership("SUBSCRIBE", user, &stamp);
        let reply: Result<JoinReply, EngineError> = self
            .inner
            .invoke(
                scripts::JOIN
                    .key(&k.meta)
                    .key(&k.history)
                    .key(&k.members)
                    .key(&k.state)
                    .arg(user)
                    .arg(&*self.inner.node)
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(presence.args())
                    .arg(entry.json())
                    .arg(now_secs())
                    .arg(now_secs()),
            )
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.inner.abandon(ch, user, &pending).await;
                return Err(e);
            }
        };
        let joined = match &reply {
            JoinReply::Joined(items) => items.read(self.inner.history_max_bytes),
            JoinReply::AlreadyMember | JoinReply::NoChannel => None,
        };
        match joined {
            Some(snap) => {
                let uk = self.k().user(user);
                let still_there: Result<bool, EngineError> = self
                    .inner
                    .invoke(
                        scripts::USER_CHANNEL
                            .key(&uk.meta)
                            .key(&uk.channels)
                            .key(&uk.conns)
                            .arg(ch),
                    )
                    .await;
                if !matches!(still_there, Ok(true)) {
                    // The user's last connection closed meanwhile (its cascade cannot see this
                    // channel), or the answer is unknown: take the membership back.
                    self.inner.abandon(ch, user, &pending).await;
                    self.leave(ch, user).await?;
                    still_there?;
                    return Ok(Joined::UserGone);
                }
                if let Some(u) = &local {
                    self.inner
                        .index
                        .finish_catch_up(ch, u, &pending, &snap.view(), initial_data);
                }
                self.record(ch, user, conn).await?;
                let _: RValue = self
                    .inner
                    .query(
                        redis::cmd(self.inner.pub_cmd())
                            .arg(&uk.events)
                            .arg(format!("{}\n", json!(["J", ch, &*self.inner.node]))),
                    )
                    .await?;
                Ok(Joined::Joined)
            }
            None => {
                self.inner.abandon(ch, user, &pending).await;
                if matches!(reply, JoinReply::AlreadyMember) {
                    self.record(ch, user, conn).await?;
                    Ok(Joined::AlreadyMember)
                } else {
                    Ok(Joined::NoChannel)
                }
            }
        }
    }

    async fn leave(&self, ch: &str, user: &str) -> Result<Left, EngineError> {
        let k = self.k().channel(ch);
        let stamp = now_stamp();
        let frame = frames::membership("UNSUBSCRIBE", ch, user, &stamp);
        let entry = Entry::membership("UNSUBSCRIBE", user, &stamp);
        let left: OrMissing = self
            .inner
            .invoke(
                scripts::LEAVE
                    .key(&k.meta)
                    .key(&k.history)
                    .key(&k.members)
                    .arg(user)
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(frame.args())
                    .arg(entry.json())
                    .arg(now_secs())
                    .arg(now_secs()),
            )
            .await?;
        let OrMissing(Some(members_left)) = left else {
            return Ok(None);
        };
        let uk = self.k().user(user);
        let _: () = redis::pipe()
            .zrem(&uk.channels, ch)
            .ignore()
            .hdel(&uk.recorded, ch)
            .ignore()
            .query_async(&mut self.inner.conn())
            .await
            .map_err(unavailable)?;
        Ok(Some(Emptied(members_left == 0)))
    }

    async fn publish(&self, ch: &str, p: Publication<'_>) -> Result<bool, EngineError> {
        let k = self.k().channel(ch);
        let to = match p.to {
            Recipients::Subscribers => "*".to_owned(),
            Recipients::User(u) => format!("u:{u}"),
            Recipients::Nobody => "-".to_owned(),
        };
        let entry = p.entry.as_ref().map(|e| e.json()).unwrap_or_default();
        let reply: PublishReply = self
            .inner
            .invoke(
                scripts::PUBLISH
                    .key(&k.meta)
                    .key(&k.history)
                    .key(&k.members)
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(p.skip_conn.unwrap_or(""))
                    .arg(to)
                    .arg(p.frame.args())
                    .arg(entry)
                    .arg(now_secs())
                    .arg(now_secs()),
            )
            .await?;
        let PublishReply::Published { offset, to_sender } = reply else {
            return Ok(false);
        };
        if let Some((sender, skip)) = to_sender {
            // After the channel event: the publication is accepted (its offset taken, in the
            // history), so a failure here is not the publisher's error: only these copies are
            // lost, and said so.
            let mut msg = Vec::with_capacity(p.frame.args().len() + ch.len() + 32);
            crate::protocol::write_ascii(&mut msg, &("P", ch, offset, skip));
            msg.push(b'\n');
            msg.extend_from_slice(p.frame.args());
            if let Err(e) = self.user_event(&sender, msg).await {
                tracing::warn!(
                    "publication {offset} of channel {ch} not sent to its publisher {sender}: {e}"
                );
            }
        }
        // Read your own writes: the answer comes once this node's subscribers have it.
        self.inner
            .index
            .delivered(ch, offset, Duration::from_secs(1))
            .await;
        Ok(true)
    }
}
