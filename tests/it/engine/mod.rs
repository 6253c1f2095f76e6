//! The engine conformance suite: every engine goes through the same behaviour, called directly
//! (no hub, no transport) and observed in the outboxes of the connections it delivers to (the
//! recording sink). Each test runs on the memory engine and, when the run has a Redis
//! (`HOOKBOX_TEST_REDIS_URL`, which the test command sets), on the Redis engine too; in a Redis
//! Cluster or Sentinel run, on that.

mod conformance;

use crate::common::{self, GUARD};
use hookbox::config::EngineConfig;
use hookbox::engine::memory::MemoryEngine;
use hookbox::engine::redis::RedisEngine;
use hookbox::engine::{Attach, ChannelSettings, Conn, Engine, UserOptions};
use hookbox::net::Transport;
use hookbox::outbox::Outbox;
use hookbox::protocol::OutFrame;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const HISTORY_MAX_BYTES: usize = 64 * 1024;

/// One engine under test, and what stops its background tasks.
pub struct Under {
    pub name: &'static str,
    pub engine: Engine,
    stop: CancellationToken,
}

impl Drop for Under {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A Redis engine on the run's Redis (or Redis Cluster, or Sentinel) under `prefix`.
pub async fn redis_engine(prefix: &str) -> Under {
    let EngineConfig::Redis(config) =
        common::cluster::redis_engine(&common::cluster::redis_url(), prefix)
    else {
        unreachable!("redis_engine gives a Redis configuration")
    };
    let stop = CancellationToken::new();
    let engine = RedisEngine::connect(&config, "127.0.0.1:0", HISTORY_MAX_BYTES, stop.clone())
        .await
        .expect("the test Redis answers");
    Under {
        name: "redis",
        engine: Box::new(engine),
        stop,
    }
}

/// Every engine this run can test, each fresh.
pub async fn engines() -> Vec<Under> {
    let mut out = vec![Under {
        name: "memory",
        engine: Box::new(MemoryEngine::new(HISTORY_MAX_BYTES)),
        stop: CancellationToken::new(),
    }];
    if std::env::var("HOOKBOX_TEST_REDIS_URL").is_ok() {
        let prefix = format!("conformance{:016x}", rand::random::<u64>());
        out.push(redis_engine(&prefix).await);
    }
    out
}

/// A connection whose outbox records what the engine delivers to it.
pub struct Sink {
    pub conn: Arc<Conn>,
    /// Frames drained but not yet looked at: (name, args).
    seen: VecDeque<(String, Value)>,
}

impl Sink {
    pub fn new(id: &str) -> Sink {
        Sink {
            conn: Arc::new(Conn {
                id: Arc::from(id),
                cookie: String::new(),
                remote_addr: "127.0.0.1".into(),
                outbox: Arc::new(Outbox::new(1 << 20)),
                transport: Transport::WebSocket,
                since_ms: 0,
            }),
            seen: VecDeque::new(),
        }
    }

    /// The next frame delivered (waiting for it within a bound).
    pub async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(f) = self.seen.pop_front() {
                return f;
            }
            let outbox = self.conn.outbox.clone();
            tokio::time::timeout(GUARD, outbox.ready())
                .await
                .unwrap_or_else(|_| panic!("{}: no frame came", self.conn.id));
            let drained = outbox.drain();
            for line in String::from_utf8(drained.data)
                .unwrap()
                .split_terminator("\r\n")
            {
                let v: Value = serde_json::from_str(line).unwrap();
                self.seen
                    .push_back((v[1].as_str().unwrap().to_owned(), v[2].clone()));
            }
        }
    }

    /// The next frame, which must be `name`; its args.
    pub async fn expect(&mut self, name: &str) -> Value {
        let (got, args) = self.next().await;
        assert_eq!(
            got, name,
            "{}: expected {name}, got {got} {args}",
            self.conn.id
        );
        args
    }
}

/// Attaches `sink`'s connection to user `name`; it gets `CONNECTED` first.
pub async fn attach(e: &Engine, sink: &mut Sink, name: &str) {
    let connected = OutFrame::new("CONNECTED", &json!({"name": name}));
    let a = Attach {
        conn: &sink.conn,
        user: name,
        options: UserOptions::default(),
        connected: &connected,
    };
    e.attach(a).await.unwrap();
    assert_eq!(sink.expect("CONNECTED").await["name"], name);
}

/// Creates `ch` with `opts` (on top of the defaults); true if this call created it.
pub async fn create(e: &Engine, ch: &str, opts: Value) -> bool {
    let opts: Map<String, Value> = serde_json::from_value(opts).unwrap();
    let update = ChannelSettings::default().update(&opts).unwrap();
    e.create_channel(ch, update).await.unwrap()
}
