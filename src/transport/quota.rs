//! The bounds on WebSocket and hixie-75 connections: so many in all (`--max-connections`) and
//! per client address (`--max-connections-per-ip`). One address cannot take every file
//! descriptor; the process cannot take more than the operator allows. An address is counted by
//! its group ([`address_group`]: IPv6 by /64). (CSP sessions have their own bounds, in `csp`.)

use crate::net::address_group;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Why a connection was refused (sent as the 503 body).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuotaError {
    #[error("Too many connections")]
    Total,
    #[error("Too many connections from your address")]
    PerAddress,
}

#[derive(Debug)]
pub struct Quota {
    max_total: usize,
    max_per_address: usize,
    /// The `hookbox_refusals_total` reason of a refusal for the address bound.
    per_address_reason: &'static str,
    // One plain lock: taken once when a connection opens and once when it ends, never held
    // across an await point.
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection's place in the quota, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    quota: Arc<Quota>,
    address: IpAddr,
}

impl Quota {
    /// The client connections' quota (`--max-connections`, `--max-connections-per-ip`).
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Quota> {
        Quota::per_address(max_total, max_per_address, "connections_per_ip")
    }

    /// A quota whose address bound's refusals count as `reason`.
    pub fn per_address(
        max_total: usize,
        max_per_address: usize,
        reason: &'static str,
    ) -> Arc<Quota> {
        Arc::new(Quota {
            max_total,
            max_per_address,
            per_address_reason: reason,
            inner: Mutex::default(),
        })
    }

    /// A slot for a connection from `address`, if both bounds allow one more. A refusal is
    /// counted.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Result<Slot, QuotaError> {
        let address = address_group(address);
        let mut counts = self.inner.lock();
        let refused = if counts.total >= self.max_total {
            Some((QuotaError::Total, "connections"))
        } else if counts.by_address.get(&address).copied().unwrap_or(0) >= self.max_per_address {
            Some((QuotaError::PerAddress, self.per_address_reason))
        } else {
            None
        };
        if let Some((error, reason)) = refused {
            drop(counts);
            crate::metrics::refused(reason);
            return Err(error);
        }
        counts.total += 1;
        *counts.by_address.entry(address).or_default() += 1;
        Ok(Slot {
            quota: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.quota.inner.lock();
        counts.total -= 1;
        if let Some(n) = counts.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                counts.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_in_all_and_per_address() {
        let q = Quota::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = q.take(a).unwrap();
        let _a2 = q.take(a).unwrap();
        assert_eq!(q.take(a).unwrap_err(), QuotaError::PerAddress);
        let _b1 = q.take(b).unwrap();
        assert_eq!(q.take(b).unwrap_err(), QuotaError::Total);
        drop(a1);
        let _a3 = q.take(a).unwrap();
        assert_eq!(q.inner.lock().by_address.len(), 2);
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_count() {
        let q = Quota::new(10, 2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _a = q.take(ip("2001:db8::1")).unwrap();
        let _b = q.take(ip("2001:db8::2:3")).unwrap();
        assert_eq!(
            q.take(ip("2001:db8::ffff")).unwrap_err(),
            QuotaError::PerAddress
        );
        assert!(q.take(ip("2001:db8:0:1::1")).is_ok(), "another /64");
    }
}
