//! The bounds on what connected clients may make the server and the web app do: how many
//! channels one user may be subscribed to, how fast one connection and one user may publish and
//! subscribe, and how many refused CONNECTs one client address may cost the web app (token
//! buckets: a connection's in its session, the others here, keyed by user or address).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A sustained rate with a burst allowance: `per_second` tokens come back each second, up to
/// `burst` saved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// `d` in whole seconds, rounded up and at least 1: what a client is told to wait.
pub fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl Rate {
    /// `n` a minute, with a burst of `n`.
    pub fn per_minute(n: u32) -> Rate {
        Rate {
            per_second: f64::from(n) / 60.0,
            burst: f64::from(n),
        }
    }
}

/// One token bucket. Starts full, so a fresh client may send a burst at once.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    /// The tokens the bucket holds at `now`.
    fn level(&self, rate: Rate, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate.per_second).min(rate.burst)
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        self.tokens = self.level(rate, now);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the bucket holds a whole token at `now` (zero if it does).
    pub fn wait(&self, rate: Rate, now: Instant) -> Duration {
        let missing = 1.0 - self.level(rate, now);
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / rate.per_second)
        }
    }

    /// Gives back a token taken for an action that was refused elsewhere.
    pub fn refund(&mut self, rate: Rate) {
        self.tokens = (self.tokens + 1.0).min(rate.burst);
    }

    /// Whether the bucket has filled up again by `now` (it is then the same as a fresh one).
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        self.level(rate, now) >= rate.burst
    }
}

/// The bounds on what connected clients may make the server do, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionLimits {
    /// Channels one user may be subscribed to (`--max-channels-per-user`).
    pub max_channels_per_user: usize,
    /// PUBLISH and MESSAGE frames of one connection (`--publish-rate`, `--publish-burst`).
    pub connection_publish: Rate,
    /// The same for one user, all its connections on this node together
    /// (`--user-publish-rate`, `--user-publish-burst`).
    pub user_publish: Rate,
    /// SUBSCRIBE and UNSUBSCRIBE frames (and `/sse` channels) of one connection
    /// (`--subscribe-rate`, `--subscribe-burst`).
    pub connection_subscribe: Rate,
    /// The same for one user on this node (`--user-subscribe-rate`, `--user-subscribe-burst`).
    pub user_subscribe: Rate,
    /// CONNECTs the web app may refuse for one client address before that address's CONNECTs
    /// are refused without asking it (`--max-failed-connects-per-ip`, per minute).
    pub failed_connects_per_address: Rate,
}

impl Default for ActionLimits {
    fn default() -> Self {
        ActionLimits {
            max_channels_per_user: 1000,
            connection_publish: Rate {
                per_second: 50.0,
                burst: 100.0,
            },
            user_publish: Rate {
                per_second: 100.0,
                burst: 200.0,
            },
            // Tighter than publishing: each may cost a create_channel and a subscribe webhook
            // (and recovering members a history replay). The burst lets a client re-subscribe
            // 100 channels at once after a reconnect (`/sse` names up to 100).
            connection_subscribe: Rate {
                per_second: 20.0,
                burst: 100.0,
            },
            user_subscribe: Rate {
                per_second: 50.0,
                burst: 200.0,
            },
            failed_connects_per_address: Rate::per_minute(60),
        }
    }
}

/// A token bucket per key (a user, a client address) on this node: `take` spends one, `wait`
/// says how long until the key has one again.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    rate: Rate,
    // One plain lock, held for a map lookup and a few float operations (and, when the map has
    // doubled, one sweep of it: amortised constant), never across an await.
    inner: Mutex<Buckets<K>>,
}

/// Per-user buckets (publish, subscribe).
pub type UserRates = KeyedBuckets<Arc<str>>;
/// Per-address buckets (refused CONNECTs, wrong API tokens), keyed by
/// [`address_group`](crate::net::address_group).
pub type AddressRates = KeyedBuckets<IpAddr>;

#[derive(Debug)]
struct Buckets<K> {
    by_key: HashMap<K, Bucket>,
    /// The map is swept of full buckets (which say nothing a fresh one would not) when it grows
    /// past this, which then doubles the map's size after the sweep: the map stays within twice
    /// the keys that spent tokens lately, at an amortised constant cost per call.
    sweep_at: usize,
    /// When a sweep last left the map full: a full map is swept at most once a second (each
    /// sweep visits every key), and new keys evict old ones in between.
    full_since: Option<Instant>,
}

/// Smallest map size that triggers a sweep.
const MIN_SWEEP: usize = 1024;
/// Most keys a map holds (a few MB). When it is still full after a sweep (a crowd of keys all
/// spending at once: an attack from very many addresses), one key is forgotten to make room for
/// the new one, so that the new key is counted all the same (the forgotten one starts afresh,
/// as if it had one more address).
const MAX_KEYS: usize = 100_000;
/// How often a map that stays full is swept again.
const FULL_SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    pub fn new(rate: Rate) -> KeyedBuckets<K> {
        KeyedBuckets {
            rate,
            inner: Mutex::new(Buckets {
                by_key: HashMap::new(),
                sweep_at: MIN_SWEEP,
                full_since: None,
            }),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes a token from `key`'s bucket if there is one.
    pub fn take(&self, key: &K) -> bool {
        let now = Instant::now();
        let rate = self.rate;
        let mut b = self.inner.lock();
        if !b.by_key.contains_key(key) && b.by_key.len() >= b.sweep_at {
            let swept_lately = b
                .full_since
                .is_some_and(|t| now.saturating_duration_since(t) < FULL_SWEEP_PERIOD);
            if !swept_lately {
                b.by_key.retain(|_, bucket| !bucket.is_full(rate, now));
                b.sweep_at = (b.by_key.len() * 2).clamp(MIN_SWEEP, MAX_KEYS);
                b.full_since = (b.by_key.len() >= MAX_KEYS).then_some(now);
            }
            if b.by_key.len() >= MAX_KEYS {
                crate::metrics::refused("evicted_key");
                let victim = b.by_key.keys().next().cloned();
                if let Some(victim) = victim {
                    b.by_key.remove(&victim);
                }
            }
        }
        b.by_key
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }

    /// Gives back a token taken for `key` (for an action that turned out not to count).
    pub fn refund(&self, key: &K) {
        if let Some(b) = self.inner.lock().by_key.get_mut(key) {
            b.refund(self.rate);
        }
    }

    /// How long until `key` has a token (zero if it has one now); spends nothing.
    pub fn wait(&self, key: &K) -> Duration {
        let now = Instant::now();
        self.inner
            .lock()
            .by_key
            .get(key)
            .map_or(Duration::ZERO, |b| b.wait(self.rate, now))
    }

    /// Buckets held now (for the test of the bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_second: 2.0,
        burst: 3.0,
    };

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(RATE, t0);
        assert!((0..3).all(|_| b.take(RATE, t0)));
        assert!(!b.take(RATE, t0));
        // Half a second gives one token back at 2 per second.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take(RATE, t1));
        assert!(!b.take(RATE, t1));
        // A long pause fills it up to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take(RATE, t2)));
        assert!(!b.take(RATE, t2));
    }

    #[test]
    fn user_buckets_are_swept_once_full_again() {
        let rates = UserRates::new(Rate {
            per_second: 1e9,
            burst: 1.0,
        });
        for i in 0..(MIN_SWEEP * 3) {
            let user: Arc<str> = Arc::from(format!("u{i}"));
            assert!(rates.take(&user));
        }
        // Every bucket refills at once at this rate: the map never holds more than a sweep's
        // threshold.
        assert!(rates.len() <= MIN_SWEEP);
    }

    #[test]
    fn a_full_map_still_counts_new_keys() {
        let rates: KeyedBuckets<u32> = KeyedBuckets::new(Rate {
            per_second: 1e-9,
            burst: 1.0,
        });
        for k in 0..MAX_KEYS as u32 {
            assert!(rates.take(&k));
        }
        assert_eq!(rates.len(), MAX_KEYS);
        let newcomer = u32::MAX;
        assert!(rates.take(&newcomer));
        assert!(!rates.take(&newcomer), "the new key is counted");
        assert_eq!(rates.len(), MAX_KEYS, "an old one made room");
    }

    #[test]
    fn wait_says_when_a_token_is_back() {
        let rates: AddressRates = KeyedBuckets::new(Rate::per_minute(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(rates.wait(&a), Duration::ZERO);
        assert!(rates.take(&a) && rates.take(&a));
        assert!(!rates.take(&a));
        let wait = rates.wait(&a);
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
    }

    #[test]
    fn one_users_bucket_does_not_spend_anothers() {
        let rates = UserRates::new(Rate {
            per_second: 1e-9,
            burst: 1.0,
        });
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        assert!(rates.take(&a));
        assert!(!rates.take(&a));
        assert!(rates.take(&b));
    }
}
