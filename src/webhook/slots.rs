//! The webhook calls in flight, and the queue in front of them. At most `--webhook-max-concurrency`
//! calls reach the web app at once; the others wait in one FIFO queue (tokio's semaphore hands
//! permits out in arrival order, so a crowd is served fairly). The queue is bounded twice: by
//! its length (`--webhook-queue`: past it a call is refused at once) and by the wait
//! (`--webhook-queue-timeout`). A refused call says when to try again: the time the queue ahead
//! would take at the recent pace of the web app's answers.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The longest retry hint given: a client should come back within a minute whatever the queue.
const MAX_HINT_SECS: u64 = 60;

/// A call refused for want of a slot, and when to try again (whole seconds, ≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub retry_after_secs: u32,
}

#[derive(Debug)]
pub struct Slots {
    permits: Semaphore,
    size: usize,
    /// Calls waiting for a slot now.
    waiting: AtomicUsize,
    queue_limit: usize,
    queue_timeout: Duration,
    /// A moving average of how long a call holds its slot, in microseconds (for the hint).
    mean_us: AtomicU64,
}

/// One waiting call, counted while it waits.
struct Waiter<'a>(&'a AtomicUsize);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Slots {
    pub fn new(size: usize, queue_limit: usize, queue_timeout: Duration) -> Slots {
        Slots {
            permits: Semaphore::new(size),
            size: size.max(1),
            waiting: AtomicUsize::new(0),
            queue_limit,
            queue_timeout,
            mean_us: AtomicU64::new(10_000),
        }
    }

    /// A slot: at once if one is free, else after the calls queued before this one; refused at
    /// once when the queue is full, or when the wait passes `--webhook-queue-timeout`.
    pub async fn take(&self) -> Result<SemaphorePermit<'_>, Busy> {
        // A free permit exists only when nobody waits (the semaphore is fair): no queue jumping.
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        let ahead = self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiter = Waiter(&self.waiting);
        if ahead >= self.queue_limit {
            crate::metrics::refused("webhook_queue");
            return Err(self.busy(ahead));
        }
        match tokio::time::timeout(self.queue_timeout, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                crate::metrics::refused("webhook_queue_timeout");
                Err(self.busy(self.waiting.load(Ordering::Relaxed)))
            }
        }
    }

    /// A call held its slot for `took`.
    pub fn record(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        // An approximate moving average (7/8 old, 1/8 new); a lost update among racing calls
        // only makes the hint a little less exact.
        let old = self.mean_us.load(Ordering::Relaxed);
        let new = old - old / 8 + sample / 8;
        self.mean_us.store(new, Ordering::Relaxed);
    }

    /// When `ahead` queued calls would have gone through at the recent pace.
    fn busy(&self, ahead: usize) -> Busy {
        let mean = self.mean_us.load(Ordering::Relaxed);
        let rounds = (ahead as u64 + 1).div_ceil(self.size as u64);
        let secs = (rounds.saturating_mul(mean)).div_ceil(1_000_000);
        Busy {
            retry_after_secs: secs.clamp(1, MAX_HINT_SECS) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_a_hint() {
        let slots = Slots::new(1, 0, Duration::from_secs(60));
        let held = slots.take().await.unwrap();
        assert_eq!(
            slots.take().await.unwrap_err(),
            Busy {
                retry_after_secs: 1
            }
        );
        drop(held);
        assert!(slots.take().await.is_ok());
    }

    #[test]
    fn the_hint_follows_the_pace_and_is_bounded() {
        let slots = Slots::new(10, 100, Duration::from_secs(1));
        for _ in 0..100 {
            slots.record(Duration::from_millis(500));
        }
        // 95 ahead + this one, 10 at a time, half a second each: 5 s.
        assert_eq!(slots.busy(95).retry_after_secs, 5);
        assert_eq!(slots.busy(1_000_000).retry_after_secs, 60);
        assert_eq!(slots.busy(0).retry_after_secs, 1);
    }
}
