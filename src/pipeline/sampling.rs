//! Head sampling by trace id, with an optional adaptive ratio.
//!
//! The decision is a pure function of the trace id: `xxh3(trace_id)` (fixed
//! seed) compared with `ratio × 2^64`. Every receiver, on every machine and
//! for every request carrying spans of the trace, decides alike, so traces
//! are kept or dropped whole. Hashing (rather than reading the id's low bits,
//! as SDK ratio samplers do) keeps the decision uniform even for ids that are
//! not random.
//!
//! Adaptive sampling (`sampling.target_spans_per_sec` > 0): each second the
//! receiver measures the offered span rate and sets the effective ratio to
//! `min(ratio, target / offered)`, smoothed, so the stored rate stays near
//! the target through bursts. Because the decision is a threshold on the
//! same hash, a lower ratio keeps a subset of the traces a higher one keeps;
//! a trace whose spans straddle a ratio change may lose its tail (the cost
//! of adapting, documented in docs/INGEST.md).

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use crate::config::SamplingConfig;
use crate::metrics::Gauge;

/// The lowest ratio adaptive sampling goes to: one trace in a million.
const MIN_RATIO: f64 = 1e-6;
const WINDOW: Duration = Duration::from_secs(1);

/// A span attribute that keeps its trace whatever the ratio when it is a
/// positive integer (or text of one): the OpenTracing convention, which
/// the Zipkin `debug` flag is mapped to.
pub const FORCE_KEEP_KEY: &str = "sampling.priority";

/// Whether `span` asks for its trace to be kept ([`FORCE_KEEP_KEY`]).
pub fn forces_keep(span: &crate::otlp::proto::trace::v1::Span) -> bool {
    use crate::otlp::proto::common::v1::any_value::Value;
    span.attributes
        .iter()
        .filter(|a| a.key == FORCE_KEEP_KEY)
        .filter_map(|a| a.value.as_ref()?.value.as_ref())
        .any(|v| match v {
            Value::IntValue(i) => *i > 0,
            Value::StringValue(s) => s.trim().parse::<i64>().is_ok_and(|i| i > 0),
            _ => false,
        })
}

pub fn trace_hash(trace_id: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(trace_id)
}

/// Whether a trace is kept at `ratio` (deterministic across processes).
pub fn keep_at_ratio(trace_id: &[u8], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 || ratio.is_nan() {
        return false;
    }
    // ratio < 1, so the product is below 2^64 (the cast saturates anyway).
    let threshold = (ratio * 18_446_744_073_709_551_616.0) as u64;
    trace_hash(trace_id) < threshold
}

struct Window {
    started: Instant,
    offered: u64,
    ratio: f64,
}

pub struct Sampler {
    ratio: f64,
    keep_errors: bool,
    target: f64,
    window: Mutex<Window>,
    /// Effective ratio in millionths, for /metrics.
    gauge: Gauge,
}

impl Sampler {
    pub fn new(cfg: &SamplingConfig) -> Sampler {
        let gauge = Gauge::new(
            "strand_sampling_ratio_ppm",
            "effective head-sampling ratio, in millionths",
            &[],
        );
        gauge.set((cfg.ratio * 1e6) as u64);
        Sampler {
            ratio: cfg.ratio,
            keep_errors: cfg.keep_errors,
            target: cfg.target_spans_per_sec,
            window: Mutex::new(Window {
                started: Instant::now(),
                offered: 0,
                ratio: cfg.ratio,
            }),
            gauge,
        }
    }

    pub fn keep_errors(&self) -> bool {
        self.keep_errors
    }

    /// The ratio in force now (the configured one unless adaptive).
    pub fn effective_ratio(&self) -> f64 {
        self.window.lock().ratio
    }

    /// Records `spans` offered (valid spans before sampling) and returns the
    /// ratio to apply to them.
    pub fn observe(&self, spans: u64) -> f64 {
        self.observe_at(spans, Instant::now())
    }

    pub fn observe_at(&self, spans: u64, now: Instant) -> f64 {
        if self.target <= 0.0 {
            return self.ratio;
        }
        let mut w = self.window.lock();
        w.offered = w.offered.saturating_add(spans);
        let elapsed = now.saturating_duration_since(w.started);
        if elapsed >= WINDOW {
            let rate = w.offered as f64 / elapsed.as_secs_f64();
            let wanted = if rate > 0.0 {
                (self.target / rate).clamp(MIN_RATIO, self.ratio)
            } else {
                self.ratio
            };
            // Halfway toward the wanted ratio each window: fast enough for a
            // burst, smooth enough not to flap on one noisy second.
            w.ratio = (w.ratio + wanted) / 2.0;
            w.started = now;
            w.offered = 0;
            self.gauge.set((w.ratio * 1e6) as u64);
        }
        w.ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_is_deterministic_and_near_the_ratio() {
        let ids: Vec<[u8; 16]> = (0u32..20_000)
            .map(|i| {
                let mut id = [0u8; 16];
                id[12..].copy_from_slice(&i.to_be_bytes()); // sequential, not random
                id
            })
            .collect();
        let kept = ids.iter().filter(|id| keep_at_ratio(*id, 0.25)).count();
        assert!(
            (4_500..5_500).contains(&kept),
            "kept {kept} of 20000 at 0.25"
        );
        // Same answer every time, and a lower ratio keeps a subset.
        for id in &ids {
            assert_eq!(keep_at_ratio(id, 0.25), keep_at_ratio(id, 0.25));
            if keep_at_ratio(id, 0.1) {
                assert!(keep_at_ratio(id, 0.25));
            }
        }
        assert!(ids.iter().all(|id| keep_at_ratio(id, 1.0)));
        assert!(!ids.iter().any(|id| keep_at_ratio(id, 0.0)));
    }

    #[test]
    fn hash_is_pinned() {
        // Receivers of different versions must agree, or they would split
        // traces: this value must never change.
        assert_eq!(trace_hash(&[1u8; 16]), 12_051_968_942_423_986_702);
    }

    #[test]
    fn adaptive_ratio_tracks_the_target() {
        let cfg = SamplingConfig {
            ratio: 1.0,
            keep_errors: true,
            target_spans_per_sec: 1_000.0,
            ..Default::default()
        };
        let s = Sampler::new(&cfg);
        let t0 = Instant::now();
        // 10k spans/s offered for 10 seconds.
        for sec in 1..=10u64 {
            s.observe_at(10_000, t0 + Duration::from_secs(sec));
        }
        let r = s.effective_ratio();
        assert!((0.09..0.12).contains(&r), "ratio {r}");
        // Traffic drops to 500/s: the ratio climbs back to the configured 1.0.
        for sec in 11..=30u64 {
            s.observe_at(500, t0 + Duration::from_secs(sec));
        }
        assert!(s.effective_ratio() > 0.99, "ratio {}", s.effective_ratio());
        // Off: the configured ratio, always.
        let fixed = Sampler::new(&SamplingConfig {
            ratio: 0.3,
            ..Default::default()
        });
        assert_eq!(
            fixed.observe_at(1_000_000, t0 + Duration::from_secs(5)),
            0.3
        );
    }
}
