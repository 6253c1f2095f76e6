//! Idempotency keys on one node: which Web API calls were already applied, with their answers,
//! for a while (see `api::idempotency`).

use super::super::Claim;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Most keys remembered at once: the web app's keyed calls of the last few minutes (about 650
/// a second over 5 minutes). Past it, a call with a new key is refused rather than remembered in
/// unbounded memory.
const MAX_KEYS: usize = 200_000;

#[derive(Debug, Default)]
pub struct Keys {
    // One plain lock: a lookup or an insert per call, and the expired keys taken off the front
    // of the queue; never held across an await.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Key → when it expires, and its answer once the call is done.
    by_key: HashMap<String, (Instant, Option<String>)>,
    /// Keys in the order they were (re)written, with the expiry they were written with, so that
    /// expired keys are mostly found without a sweep. Expiries are not quite in order (a claim
    /// lives shorter than an answer), so an expired key may wait behind a live one: lookups
    /// check expiries too. An entry whose expiry no longer matches the map's was rewritten
    /// since, and is skipped.
    expiries: VecDeque<(Instant, String)>,
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while let Some((expires, _)) = self.expiries.front() {
            if *expires > now {
                break;
            }
            let (expires, key) = self.expiries.pop_front().expect("not empty");
            if self.by_key.get(&key).is_some_and(|(e, _)| *e == expires) {
                self.by_key.remove(&key);
            }
        }
    }

    fn write(&mut self, key: &str, expires: Instant, answer: Option<String>) {
        self.by_key.insert(key.to_owned(), (expires, answer));
        self.expiries.push_back((expires, key.to_owned()));
        // Entries of keys let go early pile up behind live ones: past a few times the map's
        // size, the queue is made again from the map (rare, and linear).
        if self.expiries.len() > 4 * MAX_KEYS {
            let mut live: Vec<(Instant, String)> = self
                .by_key
                .iter()
                .map(|(k, (e, _))| (*e, k.clone()))
                .collect();
            live.sort();
            self.expiries = live.into();
        }
    }
}

impl Keys {
    /// Claims `key` for `ttl` if no live claim holds it; otherwise says what holds it.
    pub fn claim(&self, key: &str, ttl: Duration) -> Claim {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.expire(now);
        match inner.by_key.get(key) {
            Some((expires, _)) if *expires <= now => {}
            Some((_, Some(answer))) => return Claim::Done(answer.clone()),
            Some((_, None)) => return Claim::Pending,
            None => {}
        }
        if inner.by_key.len() >= MAX_KEYS && !inner.by_key.contains_key(key) {
            return Claim::Full;
        }
        inner.write(key, now + ttl, None);
        Claim::New
    }

    /// Records the answer of a claimed key (kept for `ttl`), or lets the key go (`None`).
    pub fn settle(&self, key: &str, answer: Option<&str>, ttl: Duration) {
        let mut inner = self.inner.lock();
        match answer {
            Some(answer) => inner.write(key, Instant::now() + ttl, Some(answer.to_owned())),
            None => {
                inner.by_key.remove(key);
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
        // Expired claims are forgotten, even behind live ones.
        assert_eq!(keys.claim("e", Duration::ZERO), Claim::New);
        assert_eq!(keys.claim("e", ttl), Claim::New);
    }
}
