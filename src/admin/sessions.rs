//! Admin logins: sessions that expire, and a throttle on wrong passwords.
//!
//! A session is a random 128-bit token in an `HttpOnly`, `SameSite=Strict` cookie. It ends
//! after [`IDLE`] without a request, after [`LIFETIME`] in any case, at logout, and when the admin
//! password changes (`/web/set_config`): each session remembers a digest of the password it was
//! opened with. Wrong passwords are limited per client address (IPv6 by /64): five a minute. When
//! more than fifty a minute come in all (a guesser with many addresses), every address gets one
//! try a minute instead. That keeps guessing slow whoever does it, and no one can lock the
//! operator out: a global cap checked before the password would refuse the operator too, while
//! here the operator's own address always keeps a try, which no one else can spend.

use crate::net::address_group;
use crate::secret::{digest, same};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A session unused this long is over.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session is over this long after its login, used or not.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions at once; a new login past it ends the oldest.
const MAX_SESSIONS: usize = 64;
/// Wrong passwords allowed per client address per [`WINDOW`]; past [`MAX_FAILURES`] in all,
/// only [`UNDER_ATTACK_PER_ADDRESS`].
const MAX_FAILURES_PER_ADDRESS: usize = 5;
const MAX_FAILURES: usize = 50;
const UNDER_ATTACK_PER_ADDRESS: usize = 1;
const WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered at most (the oldest are forgotten first).
const MAX_ADDRESSES: usize = 10_000;

struct Session {
    created: Instant,
    last_used: Instant,
    password: [u8; 32],
}

#[derive(Default)]
struct Failures {
    /// Failure times per client address, and of everyone (each within the last window).
    by_address: HashMap<IpAddr, Vec<Instant>>,
    all: Vec<Instant>,
}

impl Failures {
    fn prune(&mut self, now: Instant) {
        let fresh = |t: &Instant| now.duration_since(*t) < WINDOW;
        self.all.retain(fresh);
        self.by_address.retain(|_, times| {
            times.retain(fresh);
            !times.is_empty()
        });
    }

    /// How long `addr` must wait before it may try again, if at all.
    fn wait(&mut self, addr: IpAddr, now: Instant) -> Option<Duration> {
        self.prune(now);
        let allowed = if self.all.len() >= MAX_FAILURES {
            UNDER_ATTACK_PER_ADDRESS
        } else {
            MAX_FAILURES_PER_ADDRESS
        };
        let mine = self.by_address.get(&addr).map_or(&[][..], Vec::as_slice);
        // The oldest failure that must lapse for one more try.
        let blocking = mine.len().checked_sub(allowed)?;
        Some(WINDOW.saturating_sub(now.duration_since(mine[blocking])))
    }

    fn record(&mut self, addr: IpAddr, now: Instant) {
        if self.by_address.len() >= MAX_ADDRESSES && !self.by_address.contains_key(&addr) {
            let oldest = self
                .by_address
                .iter()
                .min_by_key(|(_, t)| t.last().copied())
                .map(|(a, _)| *a);
            if let Some(a) = oldest {
                self.by_address.remove(&a);
            }
        }
        self.by_address.entry(addr).or_default().push(now);
        // Only whether the count reached the cap matters: a flood keeps this short.
        if self.all.len() < MAX_FAILURES {
            self.all.push(now);
        } else {
            self.all.remove(0);
            self.all.push(now);
        }
    }
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("the admin console is disabled (start hookbox with -a PASSWORD)")]
    Disabled,
    #[error("wrong password")]
    WrongPassword,
    #[error("too many wrong passwords: try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
}

#[derive(Default)]
pub struct Sessions {
    // Short critical sections (map lookups), never held across an await.
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<Failures>,
}

impl Sessions {
    /// Checks `given` against the current password; a new session's token if it matches.
    pub fn login(
        &self,
        current: Option<&str>,
        given: &str,
        addr: IpAddr,
    ) -> Result<String, LoginError> {
        let current = current.ok_or(LoginError::Disabled)?;
        let addr = address_group(addr);
        let now = Instant::now();
        let mut failures = self.failures.lock();
        if let Some(wait) = failures.wait(addr, now) {
            return Err(LoginError::Throttled(wait));
        }
        let password = digest(current);
        if !same(&digest(given), &password) {
            failures.record(addr, now);
            return Err(LoginError::WrongPassword);
        }
        drop(failures);
        let token = format!("{:032x}", rand::random::<u128>());
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, s| alive(s, now));
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(t, _)| t.clone());
            if let Some(t) = oldest {
                sessions.remove(&t);
            }
        }
        sessions.insert(
            token.clone(),
            Session {
                created: now,
                last_used: now,
                password,
            },
        );
        Ok(token)
    }

    /// Whether `token` is a live session opened with the `current` password; touches it.
    pub fn check(&self, current: Option<&str>, token: &str) -> bool {
        let Some(current) = current else { return false };
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let ok = sessions
            .get(token)
            .is_some_and(|s| alive(s, now) && same(&s.password, &digest(current)));
        match sessions.get_mut(token) {
            Some(s) if ok => s.last_used = now,
            Some(_) => {
                sessions.remove(token);
            }
            None => {}
        }
        ok
    }

    pub fn logout(&self, token: &str) {
        self.sessions.lock().remove(token);
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_used) < IDLE && now.duration_since(s.created) < LIFETIME
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 2));

    #[test]
    fn sessions_follow_the_password() {
        let s = Sessions::default();
        assert_eq!(s.login(None, "x", A), Err(LoginError::Disabled));
        let t = s.login(Some("pw"), "pw", A).unwrap();
        assert!(s.check(Some("pw"), &t));
        assert!(
            !s.check(Some("new"), &t),
            "a new password ends old sessions"
        );
        assert!(!s.check(Some("pw"), &t), "for good");
        let t = s.login(Some("pw"), "pw", A).unwrap();
        s.logout(&t);
        assert!(!s.check(Some("pw"), &t));
    }

    #[test]
    fn wrong_passwords_are_throttled_per_address() {
        let s = Sessions::default();
        for _ in 0..MAX_FAILURES_PER_ADDRESS {
            assert_eq!(
                s.login(Some("pw"), "guess", A),
                Err(LoginError::WrongPassword)
            );
        }
        assert!(matches!(
            s.login(Some("pw"), "pw", A),
            Err(LoginError::Throttled(_))
        ));
        assert!(
            s.login(Some("pw"), "pw", B).is_ok(),
            "others are not locked out"
        );
    }

    fn addr(i: usize) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0xC633_6400 + i as u32))
    }

    #[test]
    fn a_crowd_of_guessers_cannot_lock_the_operator_out() {
        let s = Sessions::default();
        // Ten addresses, five wrong passwords each: the global count is reached.
        for i in 0..10 {
            for _ in 0..MAX_FAILURES_PER_ADDRESS {
                let _ = s.login(Some("pw"), "guess", addr(i));
            }
        }
        // A guesser's address is held back; a new one gets a single try.
        assert!(matches!(
            s.login(Some("pw"), "guess", addr(0)),
            Err(LoginError::Throttled(_))
        ));
        assert_eq!(
            s.login(Some("pw"), "guess", addr(20)),
            Err(LoginError::WrongPassword)
        );
        assert!(matches!(
            s.login(Some("pw"), "pw", addr(20)),
            Err(LoginError::Throttled(_))
        ));
        // The operator, from a fresh address, gets in.
        assert!(s.login(Some("pw"), "pw", addr(30)).is_ok());
    }

    #[test]
    fn one_slash_64_is_one_address() {
        let s = Sessions::default();
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            let ip: IpAddr = format!("2001:db8::{i:x}").parse().unwrap();
            assert_eq!(
                s.login(Some("pw"), "guess", ip),
                Err(LoginError::WrongPassword)
            );
        }
        let other: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert!(matches!(
            s.login(Some("pw"), "pw", other),
            Err(LoginError::Throttled(_))
        ));
    }
}
