//! Keys with a lifetime in Redis, shared by every node, each one Redis key (so any slot of a
//! Redis Cluster will do):
//!
//! - idempotency keys (see `api::idempotency`): a key is claimed with `SET NX PX`, holding a
//!   marker until its answer replaces it (`SET PX`), or is deleted when the call failed;
//! - revoked resume tickets (see `hub::resume`): per user, the time up to which its tickets no
//!   longer count, kept as long as a ticket can live.

use super::RedisEngine;
use crate::engine::{Claim, EngineError, Expiring};
use async_trait::async_trait;
use std::time::Duration;

/// The value of a key whose call is still running (answers are JSON objects: they never start
/// with a NUL).
const PENDING: &str = "\0pending";

impl RedisEngine {
    fn idempotency_key(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.k().prefix())
    }

    fn revoked_key(&self, user: &str) -> String {
        format!("{}:revoked:{user}", self.k().prefix())
    }
}

#[async_trait]
impl Expiring for RedisEngine {
    async fn claim_key(&self, key: &str, ttl: Duration) -> Result<Claim, EngineError> {
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

    async fn settle_key(
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

    async fn revoke_tickets(
        &self,
        user: &str,
        at_ms: i64,
        keep: Duration,
    ) -> Result<(), EngineError> {
        // A revocation never moves back (a node with a clock behind cannot shorten one). Two
        // revocations of one user at the same moment may race between GET and SET: they are
        // then milliseconds apart, and either time serves.
        let rkey = self.revoked_key(user);
        let held: Option<i64> = self.inner.query(redis::cmd("GET").arg(&rkey)).await?;
        let _: Option<String> = self
            .inner
            .query(
                redis::cmd("SET")
                    .arg(&rkey)
                    .arg(held.map_or(at_ms, |h| h.max(at_ms)))
                    .arg("PX")
                    .arg(keep.as_millis().max(1) as u64),
            )
            .await?;
        Ok(())
    }

    async fn tickets_revoked(&self, user: &str) -> Result<Option<i64>, EngineError> {
        self.inner
            .query(redis::cmd("GET").arg(self.revoked_key(user)))
            .await
    }
}
