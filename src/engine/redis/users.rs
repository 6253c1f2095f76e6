//! The Redis engine's users: one user across every node, its connections wherever they are.

use super::replies::{FlagAndNames, OrMissing};
use super::wire::ConnRecord;
use super::{node, scripts, unavailable, RedisEngine};
use crate::engine::delivery::Followup;
use crate::engine::options::{OptionError, UserOptions};
use crate::engine::{Attach, Channels, Conn, ConnInfo, Detached, EngineError, User, Users};
use crate::net::Transport;
use crate::protocol::OutFrame;
use async_trait::async_trait;
use redis::Value as RValue;
use serde_json::{json, Map, Value};
use std::sync::Arc;

impl RedisEngine {
    /// The part of `attach` that writes: any failure here may leave the connection attached.
    async fn attach_subscribed(&self, a: Attach<'_>) -> Result<bool, EngineError> {
        let Attach {
            conn,
            user: name,
            options,
            connected,
        } = a;
        let inner = &self.inner;
        let uk = self.k().user(name);
        let opts = options.to_json();
        // The user exists cluster-wide with this connection before the client hears CONNECTED.
        let reply: FlagAndNames = inner
            .invoke(
                scripts::ATTACH
                    .key(&uk.meta)
                    .key(&uk.conns)
                    .key(&uk.channels)
                    .arg(&*conn.id)
                    .arg(&*inner.node)
                    .arg(opts.to_string()),
            )
            .await?;
        let created = reply.flag;
        // CONNECTED goes first, and in the same step the connection joins its local user (and
        // so hears the user's events): nothing can come in between.
        conn.send(connected);
        let user = {
            let mut users = inner.index.users.lock();
            users
                .entry(Arc::from(name))
                .or_insert_with(|| Arc::new(User::new(Arc::from(name))))
                .clone()
        };
        {
            let mut st = user.state.lock();
            st.options = options.clone();
            st.conns.push(conn.clone());
        }
        inner.conns.lock().insert(conn.id.clone());
        let now = chrono::Utc::now().timestamp_millis();
        let record = super::wire::ConnRecord::of(name, conn).to_json();
        let mut publish = redis::cmd(inner.pub_cmd());
        publish
            .arg(&uk.events)
            .arg(format!("{}\n", json!(["O", opts])));
        inner
            .run_all(vec![
                redis::Cmd::zadd(self.k().connections(), &*conn.id, now),
                redis::Cmd::hset(inner.node_conns_key(), &*conn.id, record),
                publish,
            ])
            .await?;
        if created {
            self.server_presence(name, true).await?;
        }
        // The user's channels: this connection gets its own SUBSCRIBE of each, in order with
        // the channel's events.
        for channel in &reply.names {
            inner
                .catch_up(channel, &user, std::slice::from_ref(conn), None)
                .await?;
        }
        Ok(created)
    }

    /// Sets a server-presence flag on every channel that watches `user` (§9.3).
    async fn server_presence(&self, user: &str, online: bool) -> Result<(), EngineError> {
        let watchers: Vec<String> = self
            .inner
            .query(redis::cmd("SMEMBERS").arg(self.k().user(user).watchers))
            .await?;
        for channel in watchers {
            if !self.set_state(&channel, user, Value::Bool(online)).await? {
                // The channel is gone: forget the watch.
                let _: i64 = self
                    .inner
                    .query(
                        redis::cmd("SREM")
                            .arg(self.k().user(user).watchers)
                            .arg(&channel),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn user_field(&self, name: &str, field: &str) -> Result<Option<String>, EngineError> {
        self.inner
            .query(redis::cmd("HGET").arg(self.k().user(name).meta).arg(field))
            .await
    }

    /// Publishes a user event if the user exists: how many connections it has (`None`: no
    /// such user).
    pub(super) async fn user_event(
        &self,
        name: &str,
        msg: Vec<u8>,
    ) -> Result<Option<usize>, EngineError> {
        let uk = self.k().user(name);
        self.inner
            .invoke(
                scripts::USER_EVENT
                    .key(&uk.meta)
                    .key(&uk.conns)
                    .arg(&uk.events)
                    .arg(self.inner.pub_cmd())
                    .arg(msg),
            )
            .await
            .map(|OrMissing(n)| n.map(|n| n as usize))
    }
}

#[async_trait]
impl Users for RedisEngine {
    async fn attach(&self, a: Attach<'_>) -> Result<bool, EngineError> {
        // Listening to the user's events (MESSAGE, kick) before the user exists with this
        // connection: nothing meant for it after its CONNECTED is missed.
        self.inner.subscribe(&self.k().user(a.user).events).await?;
        self.attach_subscribed(a)
            .await
            .map_err(EngineError::interrupted)
    }

    async fn detach(&self, name: &str, conn: &Arc<Conn>) -> Result<Detached, EngineError> {
        let inner = &self.inner;
        let uk = self.k().user(name);
        if let Some(user) = inner.index.user(name) {
            for channel in inner.index.drop_connection(&user, conn) {
                let _ = inner.followups(Followup::Unsubscribe(channel));
            }
            let gone = {
                let mut st = user.state.lock();
                st.conns.retain(|c| !Arc::ptr_eq(c, conn));
                st.conns.is_empty()
            };
            if gone {
                {
                    let mut users = inner.index.users.lock();
                    if users
                        .get(name)
                        .is_some_and(|u| u.state.lock().conns.is_empty())
                    {
                        users.remove(name);
                    }
                }
                let index = inner.index.clone();
                let user_name = name.to_owned();
                inner
                    .unsubscribe(&uk.events, move || index.user(&user_name).is_none())
                    .await;
            }
        }
        inner.conns.lock().remove(&conn.id);
        let reply: FlagAndNames = inner
            .invoke(
                scripts::DETACH
                    .key(&uk.meta)
                    .key(&uk.conns)
                    .key(&uk.recorded)
                    .arg(&*conn.id)
                    .arg(&conn.cookie),
            )
            .await?;
        inner
            .run_all(vec![
                redis::Cmd::zrem(self.k().connections(), &*conn.id),
                redis::Cmd::hdel(inner.node_conns_key(), &*conn.id),
            ])
            .await?;
        Ok(Detached {
            last: reply.flag,
            emptied: reply.names.iter().map(|c| Arc::from(c.as_str())).collect(),
        })
    }

    async fn user_channels(&self, name: &str) -> Result<Vec<Arc<str>>, EngineError> {
        let chans: Vec<String> = self
            .inner
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.k().user(name).channels)
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        Ok(chans.into_iter().map(Arc::from).collect())
    }

    async fn has_connections(&self, name: &str) -> Result<bool, EngineError> {
        let n: i64 = self
            .inner
            .query(redis::cmd("HLEN").arg(self.k().user(name).conns))
            .await?;
        Ok(n > 0)
    }

    async fn remove_user(&self, name: &str) -> Result<bool, EngineError> {
        let uk = self.k().user(name);
        let removed: bool = self
            .inner
            .invoke(
                scripts::REMOVE_USER
                    .key(&uk.meta)
                    .key(&uk.conns)
                    .key(&uk.channels)
                    .key(&uk.recorded),
            )
            .await?;
        if removed {
            self.server_presence(name, false).await?;
        }
        Ok(removed)
    }

    async fn user_exists(&self, name: &str) -> Result<bool, EngineError> {
        self.inner
            .query(redis::cmd("EXISTS").arg(self.k().user(name).meta))
            .await
    }

    async fn user_options(&self, name: &str) -> Result<Option<UserOptions>, EngineError> {
        Ok(self.user_field(name, "opts").await?.map(|text| {
            let mut o = UserOptions::default();
            if let Ok(Value::Object(m)) = serde_json::from_str(&text) {
                let _ = o.apply(&m, false);
            }
            o
        }))
    }

    async fn set_user_options(
        &self,
        name: &str,
        opts: &Map<String, Value>,
    ) -> Result<Option<Result<(), OptionError>>, EngineError> {
        let Some(mut options) = self.user_options(name).await? else {
            return Ok(None);
        };
        if let Err(e) = options.apply(opts, true) {
            return Ok(Some(Err(e)));
        }
        let uk = self.k().user(name);
        let json = options.to_json();
        let _: () = redis::pipe()
            .hset(&uk.meta, "opts", json.to_string())
            .ignore()
            .cmd(self.inner.pub_cmd())
            .arg(&uk.events)
            .arg(format!("{}\n", json!(["O", json])))
            .ignore()
            .query_async(&mut self.inner.conn())
            .await
            .map_err(unavailable)?;
        Ok(Some(Ok(())))
    }

    async fn temp_cookie(&self, name: &str) -> Result<Option<String>, EngineError> {
        if !self.user_exists(name).await? {
            return Ok(None);
        }
        Ok(Some(
            self.user_field(name, "cookie").await?.unwrap_or_default(),
        ))
    }

    async fn user_info(&self, name: &str) -> Result<Option<Value>, EngineError> {
        let Some(options) = self.user_options(name).await? else {
            return Ok(None);
        };
        let uk = self.k().user(name);
        let (channels, conns): (Vec<String>, Vec<String>) = redis::pipe()
            .zrange(&uk.channels, 0, -1)
            .hkeys(&uk.conns)
            .query_async(&mut self.inner.conn())
            .await
            .map_err(unavailable)?;
        Ok(Some(json!({
            "name": name,
            "channels": channels,
            "connections": conns,
            "options": options.to_json(),
        })))
    }

    async fn send_to_user(&self, name: &str, frame: &OutFrame) -> Result<bool, EngineError> {
        let mut msg = b"[\"M\"]\n".to_vec();
        msg.extend_from_slice(frame.args());
        Ok(self.user_event(name, msg).await?.is_some())
    }

    async fn kick(&self, name: &str) -> Result<Option<usize>, EngineError> {
        self.user_event(name, b"[\"K\"]\n".to_vec()).await
    }

    /// Users with a connection on any node (read from every node's connection records).
    async fn user_names(&self, limit: usize) -> Result<(Vec<String>, bool), EngineError> {
        let mut names = std::collections::BTreeSet::new();
        for node in node::nodes(&self.inner).await? {
            let records: Vec<String> = self
                .inner
                .query(redis::cmd("HVALS").arg(self.k().node_conns(&node.id)))
                .await?;
            names.extend(
                records
                    .iter()
                    .filter_map(|r| ConnRecord::parse(r))
                    .map(|r| r.user),
            );
        }
        let more = names.len() > limit;
        Ok((names.into_iter().take(limit).collect(), more))
    }

    /// A user's connections on every node, from the nodes' connection records.
    async fn connections_of(&self, name: &str) -> Result<Option<Vec<ConnInfo>>, EngineError> {
        if !self.user_exists(name).await? {
            return Ok(None);
        }
        let conns: std::collections::HashMap<String, String> = self
            .inner
            .query(redis::cmd("HGETALL").arg(self.k().user(name).conns))
            .await?;
        let mut out = Vec::with_capacity(conns.len());
        for (id, node) in conns {
            let record: Option<String> = self
                .inner
                .query(redis::cmd("HGET").arg(self.k().node_conns(&node)).arg(&id))
                .await?;
            let r = record.as_deref().and_then(ConnRecord::parse);
            out.push(ConnInfo {
                id,
                transport: r.as_ref().and_then(|r| r.transport).map(Transport::name),
                address: r.as_ref().map(|r| r.addr.clone()).unwrap_or_default(),
                since: r.as_ref().map_or(0, |r| r.since_ms),
                node,
            });
        }
        out.sort_by_key(|c| c.since);
        Ok(Some(out))
    }

    async fn connection_ids(&self) -> Result<Vec<Value>, EngineError> {
        let ids: Vec<RValue> = self
            .inner
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.k().connections())
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        let ids: Vec<String> = redis::from_redis_value(RValue::Array(ids))
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(ids.into_iter().map(Value::from).collect())
    }
}
