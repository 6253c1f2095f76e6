//! Idempotency keys in Redis, shared by every node (see `api::idempotency`): a key is claimed with
//! `SET NX PX`, holding a marker until its answer replaces it (`SET PX`), or is deleted when
//! the call failed. Each key is one Redis key, so any slot of a Redis Cluster will do.

use super::RedisEngine;
use crate::engine::{Claim, EngineError};
use std::time::Duration;

/// The value of a key whose call is still running (answers are JSON objects: they never start
/// with a NUL).
const PENDING: &str = "\0pending";

impl RedisEngine {
    fn idempotency_key(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.k().prefix())
    }

    pub async fn claim_key(&self, key: &str, ttl: Duration) -> Result<Claim, EngineError> {
        let rkey = self.idempotency_key(key);
        let ttl_ms = ttl.as_millis().max(1) as u64;
        // Twice at most: a key that expires between the SET and the GET is claimed again.
        for _ in 0..2 {
            let set: Option<String> = self
                .inner
                .query(
                    redis::cmd("SET")
                        .arg(&rkey)
                        .arg(PENDING)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms),
                )
                .await?;
            if set.is_some() {
                return Ok(Claim::New);
            }
            let held: Option<String> = self.inner.query(redis::cmd("GET").arg(&rkey)).await?;
            match held.as_deref() {
                Some(PENDING) => return Ok(Claim::Pending),
                Some(answer) => return Ok(Claim::Done(answer.to_owned())),
                None => continue,
            }
        }
        Ok(Claim::Pending)
    }

    pub async fn settle_key(
        &self,
        key: &str,
        answer: Option<&str>,
        ttl: Duration,
    ) -> Result<(), EngineError> {
        let rkey = self.idempotency_key(key);
        match answer {
            Some(answer) => {
                let _: Option<String> = self
                    .inner
                    .query(
                        redis::cmd("SET")
                            .arg(&rkey)
                            .arg(answer)
                            .arg("PX")
                            .arg(ttl.as_millis().max(1) as u64),
                    )
                    .await?;
            }
            None => {
                let _: i64 = self.inner.query(redis::cmd("DEL").arg(&rkey)).await?;
            }
        }
        Ok(())
    }
}
