//! The overview's live figures: rates and webhook latency, sampled from this node's metrics once
//! a second (the counters themselves are in `crate::metrics`).

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Samples kept for the webhook latency window (one a second).
const LATENCY_WINDOW: usize = 10;

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Rates {
    pub publishes: f64,
    pub deliveries: f64,
    pub webhooks: f64,
}

/// Webhook latency over the last seconds, from the histogram's buckets (`None`: no call).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

struct Sample {
    at: Instant,
    publishes: f64,
    deliveries: f64,
    webhooks: f64,
    /// Cumulative webhook duration buckets, all hooks together: (upper bound in s, count).
    buckets: Vec<(f64, f64)>,
}

impl Sample {
    fn read() -> Sample {
        let m = crate::metrics::samples();
        let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
        let webhooks = sum_prefix(&m, crate::metrics::WEBHOOK_CALLS);
        let mut buckets: HashMap<String, f64> = HashMap::new();
        let prefix = format!("{}_bucket{{", crate::metrics::WEBHOOK_SECONDS);
        for (k, v) in &m {
            if let Some(labels) = k.strip_prefix(&prefix) {
                if let Some(le) = labels
                    .split("le=\"")
                    .nth(1)
                    .and_then(|l| l.split('"').next())
                {
                    *buckets.entry(le.to_owned()).or_default() += v;
                }
            }
        }
        let mut buckets: Vec<(f64, f64)> = buckets
            .into_iter()
            .map(|(le, n)| (le.parse().unwrap_or(f64::INFINITY), n))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Sample {
            at: Instant::now(),
            publishes: get(crate::metrics::PUBLISHES),
            deliveries: get(crate::metrics::DELIVERIES),
            webhooks,
            buckets,
        }
    }
}

fn sum_prefix(m: &HashMap<String, f64>, name: &str) -> f64 {
    let with_labels = format!("{name}{{");
    m.iter()
        .filter(|(k, _)| *k == name || k.starts_with(&with_labels))
        .map(|(_, v)| v)
        .sum()
}

/// The `q` quantile (in ms) of the calls between two cumulative bucket lists.
fn quantile(old: &[(f64, f64)], new: &[(f64, f64)], q: f64) -> Option<f64> {
    let count =
        |b: &[(f64, f64)], le: f64| b.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, n)| *n);
    let deltas: Vec<(f64, f64)> = new
        .iter()
        .map(|(le, n)| (*le, n - count(old, *le)))
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (le, _) = deltas.iter().find(|(_, n)| *n >= rank)?;
    // The bucket's upper bound; the last bucket's is open, so say its lower bound.
    let bound = if le.is_finite() {
        *le
    } else {
        deltas.iter().rev().nth(1).map_or(0.0, |(l, _)| *l)
    };
    Some((bound * 1000.0 * 10.0).round() / 10.0)
}

/// Rates over the last second and latency over the last ten.
#[derive(Default)]
pub struct Stats {
    // One short lock a second (the sampler) and one per overview request.
    samples: Mutex<VecDeque<Sample>>,
}

impl Stats {
    /// Takes a sample; runs once a second.
    pub fn sample(&self) {
        let s = Sample::read();
        let mut samples = self.samples.lock();
        if samples.len() > LATENCY_WINDOW {
            samples.pop_front();
        }
        samples.push_back(s);
    }

    pub fn current(&self) -> (Rates, Latency) {
        let samples = self.samples.lock();
        let (Some(last), Some(first)) = (samples.back(), samples.front()) else {
            return Default::default();
        };
        let rates = match samples.len().checked_sub(2).and_then(|i| samples.get(i)) {
            Some(prev) => {
                let dt = last.at.duration_since(prev.at).as_secs_f64().max(0.001);
                Rates {
                    publishes: (last.publishes - prev.publishes) / dt,
                    deliveries: (last.deliveries - prev.deliveries) / dt,
                    webhooks: (last.webhooks - prev.webhooks) / dt,
                }
            }
            None => Rates::default(),
        };
        let latency = Latency {
            p50: quantile(&first.buckets, &last.buckets, 0.5),
            p99: quantile(&first.buckets, &last.buckets, 0.99),
        };
        (rates, latency)
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_from_bucket_deltas() {
        let old = [(0.001, 0.0), (0.01, 5.0), (f64::INFINITY, 5.0)];
        let new = [(0.001, 0.0), (0.01, 104.0), (f64::INFINITY, 105.0)];
        assert_eq!(quantile(&old, &new, 0.5), Some(10.0));
        assert_eq!(
            quantile(&old, &new, 0.999),
            Some(10.0),
            "the open bucket: its floor"
        );
        assert_eq!(quantile(&new, &new, 0.5), None, "no calls");
    }
}
