//! The root sampler: a token bucket (as GCRA, one atomic word), so strand
//! starts at most `traces_per_second` self-traces per second whatever its
//! load, with a burst of `max(1, rate)`. Children follow their parent's
//! decision (`ParentBasedSampler` around this one).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

/// Tokens arrive every `interval_ns`; at most `burst_ns / interval_ns`
/// may be saved up.
#[derive(Debug)]
pub struct TokenBucket {
    epoch: Instant,
    interval_ns: u64,
    burst_ns: u64,
    /// Theoretical arrival time of the next token, ns since `epoch`.
    tat: AtomicU64,
}

impl TokenBucket {
    pub fn new(per_second: f64) -> TokenBucket {
        let interval_ns = (1e9 / per_second.max(1e-3)).max(1.0) as u64;
        let burst = per_second.max(1.0);
        TokenBucket {
            epoch: Instant::now(),
            interval_ns,
            burst_ns: (burst * interval_ns as f64) as u64,
            tat: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether a token could be taken now (one clock read, one load): lets
    /// hot paths skip all tracing work while the bucket is empty.
    pub fn available(&self) -> bool {
        let now = self.now_ns();
        let tat = self.tat.load(Ordering::Relaxed).max(now);
        tat + self.interval_ns - now <= self.burst_ns
    }

    /// Takes a token if one is there.
    pub fn try_take(&self) -> bool {
        let now = self.now_ns();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now) + self.interval_ns;
            if next - now > self.burst_ns {
                return false;
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => tat = actual,
            }
        }
    }
}

/// Samples a root span when the bucket has a token.
#[derive(Clone, Debug)]
pub struct RateLimited(pub Arc<TokenBucket>);

impl ShouldSample for RateLimited {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        _trace_id: opentelemetry::trace::TraceId,
        _name: &str,
        _kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let decision = if self.0.try_take() {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        };
        SamplingResult {
            decision,
            attributes: Vec::new(),
            trace_state: parent
                .map(|cx| cx.span().span_context().trace_state().clone())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_limits() {
        let b = TokenBucket::new(5.0);
        assert!(b.available());
        let taken = (0..100).filter(|_| b.try_take()).count();
        // A burst of 5, plus at most one that arrived while counting.
        assert!((5..=6).contains(&taken), "took {taken}");
        assert!(!b.available());
    }

    #[test]
    fn refills_at_the_rate() {
        let b = TokenBucket::new(100.0);
        while b.try_take() {}
        let start = Instant::now();
        let mut got = 0;
        while start.elapsed().as_millis() < 200 {
            if b.try_take() {
                got += 1;
            }
        }
        // 100/s for 0.2 s: about 20.
        assert!((15..=25).contains(&got), "got {got}");
    }

    #[test]
    fn a_low_rate_still_allows_one() {
        let b = TokenBucket::new(0.5);
        assert!(b.try_take());
        assert!(!b.try_take());
    }
}
