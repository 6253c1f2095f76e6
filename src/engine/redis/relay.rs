//! Requests relayed to the node that owns what they are about (a CSP session lives in one
//! node's memory), through Redis: no sticky sessions, no address of one node known to another.
//!
//! Each node listens on a pub/sub channel of its own. A request goes there as
//! `{"q": id, "from": node, "req": …}`; the owner runs it with the handler the app registered
//! and publishes `{"a": id, "reply": …}` on the asking node's channel. The asker waits for the
//! reply (at most the wait it gives); a request whose owner does not listen (the node is gone)
//! is answered at once with `None`, from the publish's count of receivers.

use super::{unavailable, Inner};
use crate::engine::{EngineError, RelayHandler, RelayReply, RelayRequest, Relayed};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::oneshot;

/// Most requests one node may have waiting for replies: each holds a client's HTTP request,
/// so this only bounds a flood.
const MAX_WAITING: usize = 100_000;

/// This node's relaying: what it waits for, and what runs the requests it owns.
#[derive(Default)]
pub(super) struct Relays {
    next: AtomicU64,
    // A plain lock: held for one insert or remove.
    waiting: Mutex<HashMap<u64, oneshot::Sender<RelayReply>>>,
    handler: OnceLock<RelayHandler>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Message {
    Request {
        q: u64,
        from: String,
        req: RelayRequest,
    },
    Reply {
        a: u64,
        reply: RelayReply,
    },
}

impl Relays {
    pub fn serve(&self, handler: RelayHandler) {
        let _ = self.handler.set(handler);
    }

    /// A message on this node's relay channel, in the pub/sub reader: a reply completes its
    /// waiter here; a request is returned, to be run in a task of its own.
    pub fn on_message(&self, msg: &[u8]) -> Option<(u64, String, RelayRequest)> {
        match serde_json::from_slice(msg).ok()? {
            Message::Reply { a, reply } => {
                if let Some(waiter) = self.waiting.lock().remove(&a) {
                    let _ = waiter.send(reply);
                }
                None
            }
            Message::Request { q, from, req } => Some((q, from, req)),
        }
    }
}

/// A request's place among the waiting, given up however the request ends: answered, timed
/// out, failed, or dropped with its client's HTTP request.
struct Waiting<'a> {
    relays: &'a Relays,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.relays.waiting.lock().remove(&self.id);
    }
}

impl Inner {
    /// Relays `req` to `node` and waits (at most `wait`) for its reply.
    pub(super) async fn relay(
        &self,
        node: &str,
        req: RelayRequest,
        wait: Duration,
    ) -> Result<Relayed, EngineError> {
        let id = self.relays.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self.relays.waiting.lock();
            if waiting.len() >= MAX_WAITING {
                return Err(EngineError::Unavailable("too many relayed requests".into()));
            }
            waiting.insert(id, tx);
        }
        let _waiting = Waiting {
            relays: &self.relays,
            id,
        };
        let msg = Message::Request {
            q: id,
            from: self.node.to_string(),
            req,
        };
        if self.publish_to_node(node, &msg).await? == 0 {
            return Ok(Relayed::Gone);
        }
        Ok(match tokio::time::timeout(wait, rx).await {
            Ok(Ok(reply)) => Relayed::Reply(reply),
            _ => Relayed::NoAnswer,
        })
    }

    /// Runs a request relayed to this node and sends the reply back to `from`.
    pub(super) async fn answer_relay(&self, q: u64, from: &str, req: RelayRequest) {
        let Some(handler) = self.relays.handler.get() else {
            return;
        };
        let reply = handler(req).await;
        if let Err(e) = self
            .publish_to_node(from, &Message::Reply { a: q, reply })
            .await
        {
            tracing::warn!("replying to a request relayed by node {from} failed: {e}");
        }
    }

    /// Publishes `msg` on `node`'s relay channel; how many listened.
    async fn publish_to_node(&self, node: &str, msg: &Message) -> Result<i64, EngineError> {
        let text =
            serde_json::to_string(msg).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        redis::cmd(self.pub_cmd())
            .arg(self.keys.relay(node))
            .arg(text)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }
}
