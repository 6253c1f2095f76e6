//! Admitting a CONNECT from one client address (`--max-failed-connects-per-ip`). Each CONNECT
//! takes one of the address's tokens before the web app is asked, and gives it back unless the
//! web app refused it: so a crowd of sockets sending guesses at once cannot all pass while one
//! token is left. But a crowd that is only connecting (a reconnect storm behind one NAT, a load
//! tool on one address) must not be refused for it: when the tokens are all held by CONNECTs
//! still in flight, the next ones wait for those to settle, and only an address whose tokens
//! were spent by refusals is refused.

use super::Hub;
use crate::net::address_group;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Longest a CONNECT waits for the address's CONNECTs in flight to settle.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A waiter looks again this often even without a wake-up (one may be missed in a race).
const RECHECK: Duration = Duration::from_secs(1);

/// Per address group: the CONNECTs in flight, and the wake-up of those waiting for one of them.
/// An entry lives while a CONNECT of that address is in flight (bounded by the connections).
#[derive(Debug, Default)]
pub(super) struct Holds(Mutex<HashMap<IpAddr, (u32, Arc<Notify>)>>);

/// A CONNECT admitted: its token comes back when it is settled as not refused. Dropped
/// unsettled (its client went during the webhook), it keeps the token, as a refusal does.
pub struct Admitted {
    hub: Arc<Hub>,
    key: IpAddr,
    settled: bool,
}

impl Admitted {
    /// The web app answered (or the engine failed): `refused` keeps the token.
    pub fn settle(mut self, refused: bool) {
        if !refused {
            self.hub.failed_connects.refund(&self.key);
        }
        self.release();
    }

    fn release(&mut self) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let mut holds = self.hub.holds.0.lock();
        if let Some((n, notify)) = holds.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                notify.notify_waiters();
                holds.remove(&self.key);
            } else {
                notify.notify_one();
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.release();
    }
}

impl Hub {
    /// Admits a CONNECT from `address`, waiting while the address's tokens are all held by
    /// CONNECTs in flight. `Err`: the address's tokens were spent by refusals; how long it
    /// must wait (counted).
    pub async fn reserve_connect(self: &Arc<Self>, address: IpAddr) -> Result<Admitted, Duration> {
        let key = address_group(address);
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let notify = {
                let mut holds = self.holds.0.lock();
                if self.failed_connects.take(&key) {
                    holds.entry(key).or_default().0 += 1;
                    return Ok(Admitted {
                        hub: self.clone(),
                        key,
                        settled: false,
                    });
                }
                match holds.get(&key) {
                    Some((n, notify)) if *n > 0 => notify.clone(),
                    _ => break,
                }
            };
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout(RECHECK, notify.notified()).await;
        }
        crate::metrics::refused("failed_connects_per_ip");
        Err(self.failed_connects.wait(&key))
    }
}
