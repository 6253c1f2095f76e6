//! Idempotency keys on one node: which Web API calls were already applied, with their answers,
//! for a while (see `api::idempotency`).

use super::super::Claim;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most keys remembered at once: the web app's calls of the last few minutes. Past it, a call
/// with a new key is refused rather than remembered in unbounded memory.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Keys {
    // One plain lock: a lookup or an insert per call, and a sweep of the expired ones when the
    // map is full; never held across an await.
    inner: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl Keys {
    /// Claims `key` for `ttl` if no live claim holds it; otherwise says what holds it.
    pub fn claim(&self, key: &str, ttl: Duration) -> Claim {
        let now = Instant::now();
        let mut keys = self.inner.lock();
        match keys.get(key) {
            Some((expires, Some(answer))) if *expires > now => return Claim::Done(answer.clone()),
            Some((expires, None)) if *expires > now => return Claim::Pending,
            _ => {}
        }
        if keys.len() >= MAX_KEYS && !keys.contains_key(key) {
            keys.retain(|_, (expires, _)| *expires > now);
            if keys.len() >= MAX_KEYS {
                return Claim::Full;
            }
        }
        keys.insert(key.to_owned(), (now + ttl, None));
        Claim::New
    }

    /// Records the answer of a claimed key (kept for `ttl`), or lets the key go (`None`).
    pub fn settle(&self, key: &str, answer: Option<&str>, ttl: Duration) {
        let mut keys = self.inner.lock();
        match answer {
            Some(answer) => {
                keys.insert(
                    key.to_owned(),
                    (Instant::now() + ttl, Some(answer.to_owned())),
                );
            }
            None => {
                keys.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_claimed_once_and_answers_after() {
        let keys = Keys::default();
        let ttl = Duration::from_secs(60);
        assert_eq!(keys.claim("k", ttl), Claim::New);
        assert_eq!(keys.claim("k", ttl), Claim::Pending);
        keys.settle("k", Some("{}"), ttl);
        assert_eq!(keys.claim("k", ttl), Claim::Done("{}".to_owned()));
        // A failed call lets its key go: the retry runs.
        assert_eq!(keys.claim("j", ttl), Claim::New);
        keys.settle("j", None, ttl);
        assert_eq!(keys.claim("j", ttl), Claim::New);
        // Expired claims are forgotten.
        assert_eq!(keys.claim("e", Duration::ZERO), Claim::New);
        assert_eq!(keys.claim("e", ttl), Claim::New);
    }
}
