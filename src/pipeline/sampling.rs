//! Head sampling: OpenTelemetry consistent probability sampling
//! ([`consistent`]), with per-service and per-operation ratios (rules, then
//! adaptive probabilities) and an optional per-process adaptive ratio.
//!
//! The decision is a threshold on the trace's 56-bit randomness (the trace
//! id's low bits, or `ot=rv:`): every receiver, on every machine and for
//! every request carrying spans of the trace, decides alike at the same
//! ratio, and a lower ratio keeps a subset of what a higher one keeps, so
//! strand's ratio nests with an SDK's consistent one (docs/SAMPLING.md).
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

pub use super::consistent;
pub use super::sampling_rules::{Probabilities, Rules};
use crate::config::SamplingConfig;
use crate::metrics::{Counter, Gauge};

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

/// Whether a trace whose randomness is `r` (see [`consistent`]) is kept
/// at `ratio`: the consistent decision `r >= threshold(ratio)`.
pub fn keep_at_ratio(trace_id: &[u8], ratio: f64) -> bool {
    consistent::trace_id_randomness(trace_id) >= consistent::threshold(ratio)
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
    rules: Rules,
    /// Adaptive per-operation probabilities, when applied here.
    adaptive: Option<std::sync::Arc<Probabilities>>,
    presumed: Counter,
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
            rules: Rules::new(&cfg.rules),
            adaptive: (cfg.adaptive.enabled && cfg.adaptive.apply_at_receiver)
                .then(Probabilities::global),
            presumed: Counter::new(
                "strand_sampling_presumed_random_total",
                "spans whose trace id was not flagged random (W3C flag 0x02) and had no ot=rv: \
                 their low 56 bits were presumed random",
                &[],
            ),
        }
    }

    /// The same sampler reading adaptive probabilities from `table`.
    pub fn with_probabilities(cfg: &SamplingConfig, table: std::sync::Arc<Probabilities>) -> Self {
        Sampler {
            adaptive: Some(table),
            ..Sampler::new(cfg)
        }
    }

    /// The ratio for one span: an operation rule, else the adaptive
    /// probability of the operation, else a service rule, else `base`
    /// (the configured or per-process adaptive ratio).
    pub fn ratio_for(&self, service: &str, operation: &str, base: f64) -> f64 {
        if let Some(r) = self.rules.operation(service, operation) {
            return r;
        }
        if let Some(p) = self
            .adaptive
            .as_ref()
            .and_then(|t| t.get(service, operation))
        {
            return p;
        }
        self.rules.service(service).unwrap_or(base)
    }

    /// Whether any span could be dropped (false: skip the per-span work).
    pub fn may_drop(&self, base: f64) -> bool {
        base < 1.0 || self.rules.any_below_one() || self.adaptive.is_some()
    }

    pub fn count_presumed(&self, n: u64) {
        self.presumed.add(n);
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
        // Random ids (xorshift), as W3C Level 2 SDKs generate them.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let ids: Vec<[u8; 16]> = (0u32..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut id = [0u8; 16];
                id[8..].copy_from_slice(&x.to_be_bytes());
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
    fn decision_is_pinned_to_the_low_56_bits() {
        // Receivers of different versions (and SDKs) must agree, or they
        // would split traces: R = the last 7 bytes, kept iff R >= T.
        let mut id = [0u8; 16];
        id[9] = 0x80; // R = 2^55 exactly: kept at 0.5, not below
        assert!(keep_at_ratio(&id, 0.5));
        assert!(!keep_at_ratio(&id, 0.4999));
        id[8] = 0xff; // byte 8 is not part of R
        assert!(keep_at_ratio(&id, 0.5));
    }

    #[test]
    fn rules_then_adaptive_then_service_then_base() {
        use crate::config::SamplingRule;
        let rule = |s: &str, o: &str, r| SamplingRule {
            service: s.into(),
            operation: o.into(),
            ratio: r,
        };
        let cfg = SamplingConfig {
            rules: vec![rule("shop", "", 0.5), rule("shop", "GET /health", 0.0)],
            ..Default::default()
        };
        let table = std::sync::Arc::new(Probabilities::default());
        table.replace([(("shop".to_string(), "checkout".to_string()), 0.2)].into());
        let s = Sampler::with_probabilities(&cfg, table);
        assert_eq!(s.ratio_for("shop", "GET /health", 1.0), 0.0);
        assert_eq!(s.ratio_for("shop", "checkout", 1.0), 0.2);
        assert_eq!(s.ratio_for("shop", "other", 1.0), 0.5);
        assert_eq!(s.ratio_for("cart", "other", 0.7), 0.7);
        assert!(s.may_drop(1.0));
        assert!(!Sampler::new(&SamplingConfig::default()).may_drop(1.0));
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
