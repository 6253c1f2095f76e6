//! The bounds on what connected clients may make the server and the web app do: how many
//! channels one user may be subscribed to, and how fast one connection and one user may publish
//! (token buckets: the connection's in its session, the user's here).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// A sustained rate with a burst allowance: `per_second` tokens come back each second, up to
/// `burst` saved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
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
        }
    }
}

/// The per-user publish buckets of this node.
#[derive(Debug)]
pub struct UserRates {
    rate: Rate,
    // One plain lock, held for a map lookup and a few float operations (and, when the map has
    // doubled, one sweep of it: amortised constant), never across an await.
    inner: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_user: HashMap<Arc<str>, Bucket>,
    /// The map is swept of full buckets (which say nothing a fresh one would not) when it grows
    /// past this, which then doubles the map's size after the sweep: the map stays within twice
    /// the users who published lately, at an amortised constant cost per publish.
    sweep_at: usize,
}

/// Smallest map size that triggers a sweep.
const MIN_SWEEP: usize = 1024;

impl UserRates {
    pub fn new(rate: Rate) -> UserRates {
        UserRates {
            rate,
            inner: Mutex::new(Buckets {
                by_user: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    /// Takes a token from `user`'s bucket if there is one.
    pub fn take(&self, user: &Arc<str>) -> bool {
        let now = Instant::now();
        let rate = self.rate;
        let mut b = self.inner.lock();
        if b.by_user.len() >= b.sweep_at {
            b.by_user.retain(|_, bucket| !bucket.is_full(rate, now));
            b.sweep_at = (b.by_user.len() * 2).max(MIN_SWEEP);
        }
        b.by_user
            .entry(user.clone())
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }

    /// Buckets held now (for the test of the bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().by_user.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
