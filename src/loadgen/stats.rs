//! Counters and a small HDR-style latency histogram (log-linear buckets,
//! at most 1/64 relative error, constant memory).

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

const LINEAR: u64 = 128;
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (LINEAR + (64 - 7) * SUB) as usize;

/// Values (e.g. microseconds) in log-linear buckets: exact below 128,
/// then 64 buckets per power of two.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= 7
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    (LINEAR + u64::from(e - 7) * SUB + sub) as usize
}

/// The highest value that falls in bucket `b`.
fn bucket_high(b: usize) -> u64 {
    let b = b as u64;
    if b < LINEAR {
        return b;
    }
    let e = (b - LINEAR) / SUB + 7;
    let sub = (b - LINEAR) % SUB;
    let low = (1u64 << e) | (sub << (e - u64::from(SUB_BITS)));
    low.saturating_add((1u64 << (e - u64::from(SUB_BITS))) - 1)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(bucket(v)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): an upper bound within 1/64.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(b).min(self.max);
            }
        }
        self.max
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Percentiles in milliseconds, from microsecond samples.
    pub fn percentiles_ms(&self) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: self.total,
            p50: ms(self.quantile(0.50)),
            p90: ms(self.quantile(0.90)),
            p99: ms(self.quantile(0.99)),
            max: ms(self.max),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Shared counters of a load run.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub spans_sent: AtomicU64,
    pub spans_accepted: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub spans_failed: AtomicU64,
    pub retries: AtomicU64,
    pub errors: AtomicU64,
    pub latency_us: Mutex<Histogram>,
    pub last_error: Mutex<Option<String>>,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_relative_error() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - want).abs() / want < 1.0 / 60.0,
                "q{q}: {got} vs {want}"
            );
        }
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(h.max(), 100_000);
        let mut small = Histogram::default();
        small.record(3);
        assert_eq!(small.quantile(0.5), 3);
        small.merge(&h);
        assert_eq!(small.count(), 100_001);
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut prev = 0;
        for v in (0..1_000_000u64)
            .step_by(37)
            .chain([u64::MAX / 2, u64::MAX])
        {
            let b = bucket(v);
            assert!(b >= prev && b < BUCKETS);
            assert!(bucket_high(b) >= v);
            prev = b;
        }
    }
}
