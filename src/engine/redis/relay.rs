//! Requests relayed to the node that owns what they are about (a CSP session lives in one
//! node's memory), through Redis: no sticky sessions, no address of one node known to another.
//!
//! Each node listens on a pub/sub channel of its own. A request goes there as
//! `{"q": id, "from": node, "req": …}`; the owner runs it with the handler the app registered
//! and publishes `{"a": id, "reply": …}` on the asking node's channel. The asker waits for the
//! reply (at most the wait it gives); a request whose owner does not listen (the node is gone)
//! is answered at once with `None`, from the publish's count of receivers.
//!
//! The owner runs each request in a task of its own, at most [`MAX_RUNNING`] at once (a
//! relayed comet lasts as long as a local one, and ends by itself): past that it answers
//! `{"busy": id}` at once, and the asking client is told to retry. Requests reach those tasks
//! through a queue of their own, never behind the follow-ups that wait on Redis.

use super::{unavailable, Inner};
use crate::engine::{EngineError, RelayHandler, RelayReply, RelayRequest, Relayed};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Most requests one node may have waiting for replies: each holds a client's HTTP request,
/// so this only bounds a flood.
const MAX_WAITING: usize = 100_000;

/// Most relayed requests one node runs at once: as many as one node may have waiting.
pub(super) const MAX_RUNNING: usize = MAX_WAITING;

/// A request relayed to this node: its id at the asker, the asker, the request.
pub(super) type Asked = (u64, String, RelayRequest);

/// This node's relaying: what it waits for, and what runs the requests it owns.
pub(super) struct Relays {
    next: AtomicU64,
    // A plain lock: held for one insert or remove. `None`: the owner was busy.
    waiting: Mutex<HashMap<u64, oneshot::Sender<Option<RelayReply>>>>,
    handler: OnceLock<RelayHandler>,
    /// Requests relayed to this node, for the task that runs them (see [`run`]).
    asked: mpsc::UnboundedSender<Asked>,
    running: Arc<Semaphore>,
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
    /// The owner runs too many relayed requests to take this one.
    Busy {
        busy: u64,
    },
}

impl Relays {
    /// Relays that run at most `max_running` requests at once; the receiver is for [`run`].
    pub fn new(max_running: usize) -> (Relays, mpsc::UnboundedReceiver<Asked>) {
        let (asked, rx) = mpsc::unbounded_channel();
        let relays = Relays {
            next: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            handler: OnceLock::new(),
            asked,
            running: Arc::new(Semaphore::new(max_running)),
        };
        (relays, rx)
    }

    pub fn serve(&self, handler: RelayHandler) {
        let _ = self.handler.set(handler);
    }

    /// A message on this node's relay channel, in the pub/sub reader: a reply completes its
    /// waiter; a request goes to the task that runs them.
    pub fn on_message(&self, msg: &[u8]) {
        let answered = match serde_json::from_slice(msg) {
            Ok(Message::Reply { a, reply }) => (a, Some(reply)),
            Ok(Message::Busy { busy }) => (busy, None),
            Ok(Message::Request { q, from, req }) => {
                let _ = self.asked.send((q, from, req));
                return;
            }
            Err(_) => return,
        };
        if let Some(waiter) = self.waiting.lock().remove(&answered.0) {
            let _ = waiter.send(answered.1);
        }
    }

    /// A place among the requests running here, if one is free.
    fn try_run(&self) -> Option<OwnedSemaphorePermit> {
        self.running.clone().try_acquire_owned().ok()
    }
}

/// Runs the requests relayed to this node, each in a task of its own while it holds a place
/// among the running; ends with the engine.
pub(super) fn run(inner: Weak<Inner>, mut asked: mpsc::UnboundedReceiver<Asked>) {
    tokio::spawn(async move {
        while let Some((q, from, req)) = asked.recv().await {
            let Some(inner) = inner.upgrade() else { return };
            let place = inner.relays.try_run();
            tokio::spawn(async move {
                match place {
                    Some(_place) => inner.answer_relay(q, &from, req).await,
                    None => {
                        let busy = Message::Busy { busy: q };
                        if let Err(e) = inner.publish_to_node(&from, &busy).await {
                            tracing::warn!("answering node {from} failed: {e}");
                        }
                    }
                }
            });
        }
    });
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
            Ok(Ok(Some(reply))) => Relayed::Reply(reply),
            Ok(Ok(None)) => Relayed::Busy,
            _ => Relayed::NoAnswer,
        })
    }

    /// Runs a request relayed to this node and sends the reply back to `from`.
    async fn answer_relay(&self, q: u64, from: &str, req: RelayRequest) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_its_bound_a_node_runs_no_more_relayed_requests() {
        let (relays, _rx) = Relays::new(2);
        let (a, b) = (relays.try_run(), relays.try_run());
        assert!(a.is_some() && b.is_some());
        assert!(relays.try_run().is_none());
        drop(a);
        assert!(relays.try_run().is_some());
    }

    #[test]
    fn a_busy_owner_answers_its_waiter() {
        let (relays, _rx) = Relays::new(1);
        let (tx, mut rx) = oneshot::channel();
        relays.waiting.lock().insert(7, tx);
        relays.on_message(br#"{"busy": 7}"#);
        assert_eq!(rx.try_recv(), Ok(None));
        assert!(relays.waiting.lock().is_empty());
    }
}
