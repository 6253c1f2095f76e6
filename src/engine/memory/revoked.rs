//! Resume tickets revoked on one node: for each user, the time before which its tickets no
//! longer count (see `hub::resume`), kept as long as a ticket can live.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most users remembered at once. Past it, a revocation applies to every user's tickets (a
/// floor): the store stays bounded, and a revocation is never forgotten early.
const MAX_USERS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Revocations {
    // One plain lock: an insert per revocation, a lookup per resume; never held across an await.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// User → (when the record may go, the revocation time in Unix milliseconds).
    by_user: HashMap<Box<str>, (Instant, i64)>,
    /// A revocation of everyone's tickets, used once `by_user` is full.
    floor: Option<(Instant, i64)>,
}

impl Revocations {
    /// Tickets of `user` issued up to `at_ms` no longer count; remembered for `keep`.
    pub fn revoke(&self, user: &str, at_ms: i64, keep: Duration) {
        let now = Instant::now();
        let until = now + keep;
        let mut inner = self.inner.lock();
        if inner.by_user.len() >= MAX_USERS && !inner.by_user.contains_key(user) {
            inner.by_user.retain(|_, (expires, _)| *expires > now);
        }
        if inner.by_user.len() >= MAX_USERS && !inner.by_user.contains_key(user) {
            let at = inner.floor.map_or(at_ms, |(_, at)| at.max(at_ms));
            inner.floor = Some((until, at));
            return;
        }
        let entry = inner.by_user.entry(user.into()).or_insert((until, at_ms));
        *entry = (entry.0.max(until), entry.1.max(at_ms));
    }

    /// The time up to which `user`'s tickets are revoked, if they are.
    pub fn revoked_at(&self, user: &str) -> Option<i64> {
        let now = Instant::now();
        let inner = self.inner.lock();
        let live = |(expires, at): (Instant, i64)| (expires > now).then_some(at);
        let own = inner.by_user.get(user).copied().and_then(live);
        let floor = inner.floor.and_then(live);
        own.max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_is_kept_for_its_time_and_never_moves_back() {
        let r = Revocations::default();
        assert_eq!(r.revoked_at("ann"), None);
        r.revoke("ann", 2000, Duration::from_secs(60));
        r.revoke("ann", 1000, Duration::from_secs(60));
        assert_eq!(r.revoked_at("ann"), Some(2000));
        assert_eq!(r.revoked_at("bob"), None);
        r.revoke("eve", 5, Duration::ZERO);
        assert_eq!(r.revoked_at("eve"), None, "expired");
    }

    #[test]
    fn past_its_bound_a_revocation_applies_to_everyone() {
        let r = Revocations::default();
        for i in 0..MAX_USERS {
            r.revoke(&format!("u{i}"), 10, Duration::from_secs(60));
        }
        r.revoke("late", 99, Duration::from_secs(60));
        assert_eq!(r.revoked_at("late"), Some(99));
        assert_eq!(r.revoked_at("anyone"), Some(99));
        assert_eq!(r.revoked_at("u1"), Some(99));
        assert_eq!(r.inner.lock().by_user.len(), MAX_USERS);
    }
}
