//! Channels: existence, settings, info, state, destroy.

use super::replies::{DestroyReply, StateReply};
use super::wire::now_secs;
use super::{scripts, wire, Members, RedisEngine};
use crate::engine::options::{state_diff, ChannelUpdate, OptionError, Polling};
use crate::engine::{
    frames, now_stamp, random_id, ChannelSettings, Channels, EngineError, Flags, Users,
};
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The tail of CREATE's and UPDATE's arguments: the state's key count and pairs, then the
/// preset history entries.
fn state_and_history_args(
    inv: &mut redis::ScriptInvocation<'_>,
    state: &Map<String, Value>,
    history: Option<&[Value]>,
) {
    inv.arg(state.len());
    for (key, v) in state {
        inv.arg(key.as_str()).arg(v.to_string());
    }
    for e in history.into_iter().flatten() {
        inv.arg(wire::preset_entry(e));
    }
}

impl RedisEngine {
    async fn settings(&self, ch: &str) -> Result<Option<ChannelSettings>, EngineError> {
        let s: Option<String> = self
            .inner
            .query(redis::cmd("HGET").arg(self.k().channel(ch).meta).arg("s"))
            .await?;
        Ok(s.map(|s| wire::parse_settings(&s)))
    }

    async fn state_change(
        &self,
        ch: &str,
        key: &str,
        val: Option<Value>,
    ) -> Result<bool, EngineError> {
        let k = self.k().channel(ch);
        let frame = match &val {
            Some(v) => {
                let mut updates = Map::new();
                updates.insert(key.to_owned(), v.clone());
                frames::state_update(ch, updates, Vec::new())
            }
            None => frames::state_update(ch, Map::new(), vec![key.to_owned()]),
        };
        let reply: StateReply = self
            .inner
            .invoke(
                scripts::STATE
                    .key(&k.meta)
                    .key(&k.state)
                    .arg(key)
                    .arg(val.as_ref().map(Value::to_string).unwrap_or_default())
                    .arg(if val.is_some() { "1" } else { "0" })
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(frame.args()),
            )
            .await?;
        Ok(!matches!(reply, StateReply::NoChannel))
    }

    /// Runs `DESTROY`; the members it had if removed.
    async fn destroy(
        &self,
        ch: &str,
        empty_only: bool,
    ) -> Result<Option<Vec<String>>, EngineError> {
        let k = self.k().channel(ch);
        let reply: DestroyReply = self
            .inner
            .invoke(
                scripts::DESTROY
                    .key(&k.meta)
                    .key(&k.history)
                    .key(&k.members)
                    .key(&k.state)
                    .arg(&k.events)
                    .arg(self.inner.pub_cmd())
                    .arg(if empty_only { "1" } else { "0" })
                    .arg(now_stamp()),
            )
            .await?;
        let DestroyReply::Destroyed { members } = reply else {
            return Ok(None);
        };
        let mut cmds = vec![redis::Cmd::srem(self.k().channel_names(), ch)];
        for m in &members {
            cmds.push(redis::Cmd::zrem(self.k().user(m).channels, ch));
        }
        self.inner.run_all(cmds).await?;
        tracing::debug!("destroyed channel {ch}");
        Ok(Some(members))
    }
}

#[async_trait]
impl Channels for RedisEngine {
    /// Channels whose settings poll, for adopting a dead node's pollers.
    async fn polling_channels(&self) -> Result<Vec<String>, EngineError> {
        let mut out = Vec::new();
        for name in self.channel_names().await? {
            let Some(name) = name.as_str().map(str::to_owned) else {
                continue;
            };
            if self.polling(&name).await?.is_some_and(|p| p.is_active()) {
                out.push(name);
            }
        }
        Ok(out)
    }

    async fn channel_exists(&self, ch: &str) -> Result<bool, EngineError> {
        self.inner
            .query(redis::cmd("EXISTS").arg(self.k().channel(ch).meta))
            .await
    }

    async fn flags(&self, ch: &str) -> Result<Option<Flags>, EngineError> {
        Ok(self.settings(ch).await?.map(|s| Flags::of(&s)))
    }

    async fn polling(&self, ch: &str) -> Result<Option<Polling>, EngineError> {
        Ok(self.settings(ch).await?.map(|s| s.polling))
    }

    async fn create_channel(&self, name: &str, update: ChannelUpdate) -> Result<bool, EngineError> {
        let k = self.k().channel(name);
        let settings = update.settings;
        let mut state = update.state.unwrap_or_default();
        // Server presence (§9.3): the watched users' flags start as they are now.
        let watched = if settings.server_presenceful {
            settings.server_user_presence.clone()
        } else {
            Vec::new()
        };
        for u in &watched {
            let online = self.user_exists(u).await?;
            state.insert(u.clone(), Value::Bool(online));
        }
        let mut inv = scripts::CREATE.key(&k.meta);
        inv.key(&k.history).key(&k.state);
        for a in wire::settings_args(&settings) {
            inv.arg(a);
        }
        inv.arg(random_id())
            .arg(self.inner.history_max_bytes)
            .arg(now_secs());
        state_and_history_args(&mut inv, &state, update.history.as_deref());
        let created: bool = self.inner.invoke(&inv).await?;
        if created {
            let mut cmds = vec![redis::Cmd::sadd(self.k().channel_names(), name)];
            for u in &watched {
                cmds.push(redis::Cmd::sadd(self.k().user(u).watchers, name));
            }
            self.inner.run_all(cmds).await?;
            tracing::debug!("created channel {name}");
        }
        Ok(created)
    }

    async fn update_channel(
        &self,
        name: &str,
        opts: &Map<String, Value>,
    ) -> Result<Option<Result<bool, OptionError>>, EngineError> {
        let Some(snap) = self.inner.snapshot(name, Members::ForPresence).await? else {
            return Ok(None);
        };
        let update = match snap.settings.update(opts) {
            Ok(u) => u,
            Err(e) => return Ok(Some(Err(e))),
        };
        let frame = match &update.state {
            Some(new) => {
                let (updates, deletes) = state_diff(&snap.state, new);
                if updates.is_empty() && deletes.is_empty() {
                    Vec::new()
                } else {
                    frames::state_update(name, updates, deletes).args().to_vec()
                }
            }
            None => Vec::new(),
        };
        let k = self.k().channel(name);
        let mut inv = scripts::UPDATE.key(&k.meta);
        inv.key(&k.history).key(&k.state);
        for a in wire::settings_args(&update.settings) {
            inv.arg(a);
        }
        let flag = |b: bool| if b { "1" } else { "0" };
        let state = update.state.clone().unwrap_or_default();
        inv.arg("")
            .arg(flag(update.trim_history))
            .arg(flag(update.history.is_some()))
            .arg(flag(update.state.is_some()))
            .arg(&k.events)
            .arg(self.inner.pub_cmd())
            .arg(frame)
            .arg(now_secs());
        state_and_history_args(&mut inv, &state, update.history.as_deref());
        let updated: bool = self.inner.invoke(&inv).await?;
        Ok(updated.then_some(Ok(update.polling_changed)))
    }

    async fn channel_info(&self, ch: &str) -> Result<Option<Value>, EngineError> {
        Ok(self.inner.snapshot(ch, Members::All).await?.map(|s| {
            json!({
                "name": ch,
                "options": s.settings.to_json(s.history.to_json(), &s.state),
                "subscribers": s.members,
            })
        }))
    }

    async fn channel_names(&self) -> Result<Vec<Value>, EngineError> {
        let names: Vec<String> = self
            .inner
            .query(redis::cmd("SMEMBERS").arg(self.k().channel_names()))
            .await?;
        Ok(names.into_iter().map(Value::from).collect())
    }

    async fn members(&self, ch: &str) -> Result<Option<Vec<Arc<str>>>, EngineError> {
        if !self.channel_exists(ch).await? {
            return Ok(None);
        }
        let m: Vec<String> = self
            .inner
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.k().channel(ch).members)
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        Ok(Some(m.into_iter().map(Arc::from).collect()))
    }

    async fn set_state(&self, ch: &str, key: &str, val: Value) -> Result<bool, EngineError> {
        self.state_change(ch, key, Some(val)).await
    }

    async fn delete_state(&self, ch: &str, key: &str) -> Result<bool, EngineError> {
        self.state_change(ch, key, None).await
    }

    async fn destroy_if_empty(&self, ch: &str) -> Result<bool, EngineError> {
        Ok(self.destroy(ch, true).await?.is_some())
    }

    async fn destroy_channel(&self, ch: &str) -> Result<bool, EngineError> {
        Ok(self.destroy(ch, false).await?.is_some())
    }
}
