//! Histograms, bitmaps and the one-line result format that bench/run.sh aggregates.

use hdrhistogram::Histogram;
use std::fmt::Display;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall clock in ns since the Unix epoch (comparable across processes on this machine).
#[inline]
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Latency histogram in nanoseconds, 1 µs .. 120 s, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 120_000_000_000, 3).expect("histogram bounds")
}

pub fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// p50/p99/p99.9/max of a ns histogram, in µs, as result fields under `prefix`.
pub fn hist_fields(r: &mut Report, prefix: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        for q in ["p50", "p99", "p999", "max"] {
            r.add(format!("{prefix}_{q}_us"), "nan");
        }
        return;
    }
    r.add(
        format!("{prefix}_p50_us"),
        format!("{:.0}", us(h.value_at_quantile(0.50))),
    );
    r.add(
        format!("{prefix}_p99_us"),
        format!("{:.0}", us(h.value_at_quantile(0.99))),
    );
    r.add(
        format!("{prefix}_p999_us"),
        format!("{:.0}", us(h.value_at_quantile(0.999))),
    );
    r.add(format!("{prefix}_max_us"), format!("{:.0}", us(h.max())));
}

/// The latency distribution for CDF plots: `{prefix}_cdf_<q in 1/10,000>_us` at a fixed set of
/// quantiles (1 % … 99.99 %), in µs.
pub fn cdf_fields(r: &mut Report, prefix: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    for q in [
        100, 500, 1000, 2500, 5000, 7500, 9000, 9500, 9900, 9990, 9999,
    ] {
        let v = h.value_at_quantile(f64::from(q) / 10_000.0);
        r.add(format!("{prefix}_cdf_{q}_us"), format!("{:.0}", us(v)));
    }
}

/// A growable bitmap over sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct Bits {
    pub words: Vec<u64>,
}

impl Bits {
    pub fn with_len(bits: u64) -> Self {
        Bits {
            words: vec![0; bits.div_ceil(64) as usize],
        }
    }

    /// Sets bit `i`; returns whether it was already set. Out-of-range bits are ignored (true).
    #[inline]
    pub fn set(&mut self, i: u64) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        match self.words.get_mut(w) {
            Some(word) => {
                let was = *word & (1 << b) != 0;
                *word |= 1 << b;
                was
            }
            None => true,
        }
    }
}

/// Key=value result fields, printed as one `RESULT …` line (bench/run.sh takes medians of these).
#[derive(Default)]
pub struct Report {
    fields: Vec<(String, String)>,
}

impl Report {
    pub fn add(&mut self, k: impl Into<String>, v: impl Display) {
        self.fields.push((k.into(), v.to_string()));
    }

    pub fn print(&self) {
        let mut s = String::from("RESULT");
        for (k, v) in &self.fields {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        println!("{s}");
    }
}
