//! Per-operation duration histograms from the span metrics (which count
//! 100% of traffic, before any sampling), refreshed in the background so a
//! `latency_quantile` policy costs a hash lookup per trace.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;

use crate::query::metrics_api_compute::quantile_ms;
use crate::spanmetrics::{MetricsReader, RangeQuery, BUCKETS};

/// How far back the histograms reach.
pub const WINDOW_NS: u64 = 5 * 60 * 1_000_000_000;

type Histograms = HashMap<(String, String), [u64; BUCKETS]>;

pub struct Quantiles {
    by_operation: RwLock<Histograms>,
}

impl Quantiles {
    /// No histograms: every quantile is unknown (no policy matches on it).
    pub fn empty() -> Arc<Quantiles> {
        Arc::new(Quantiles {
            by_operation: RwLock::new(HashMap::new()),
        })
    }

    /// Reads `reader` now and then every `every` on a thread of its own,
    /// which ends when the last user drops the returned handle.
    pub fn start(reader: Arc<dyn MetricsReader>, every: Duration) -> Arc<Quantiles> {
        let q = Quantiles::empty();
        q.refresh(reader.as_ref());
        let weak: Weak<Quantiles> = Arc::downgrade(&q);
        let spawned = std::thread::Builder::new()
            .name("tail-quantiles".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let Some(q) = weak.upgrade() else { return };
                q.refresh(reader.as_ref());
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no quantile refresh thread; latency_quantile uses the first read");
        }
        q
    }

    /// Merges the last window's points per (service, operation) over kinds
    /// and statuses. A failed read keeps the previous histograms.
    pub fn refresh(&self, reader: &dyn MetricsReader) {
        let now = crate::model::now_ns();
        let q = RangeQuery {
            service: None,
            kinds: Vec::new(),
            start_ns: now.saturating_sub(WINDOW_NS),
            end_ns: now,
            step_ns: WINDOW_NS.max(reader.min_step_ns()),
        };
        let series = match reader.range(&q) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "tail sampling could not read span metrics");
                return;
            }
        };
        let mut out: Histograms = HashMap::new();
        for (key, points) in series {
            let h = out
                .entry((key.service, key.operation))
                .or_insert([0; BUCKETS]);
            for p in points {
                for (acc, c) in h.iter_mut().zip(p.buckets.iter()) {
                    *acc += c;
                }
            }
        }
        *self.by_operation.write() = out;
    }

    /// The `q` quantile of the operation's durations, if it had at least
    /// `min_calls` calls in the window.
    pub fn quantile_ns(
        &self,
        service: &str,
        operation: &str,
        q: f64,
        min_calls: u64,
    ) -> Option<u64> {
        let map = self.by_operation.read();
        let h = map.get(&(service.to_string(), operation.to_string()))?;
        if h.iter().sum::<u64>() < min_calls {
            return None;
        }
        let ms = quantile_ms(h, q);
        ms.is_finite().then_some((ms * 1e6) as u64)
    }

    #[cfg(test)]
    pub fn set(&self, service: &str, operation: &str, h: [u64; BUCKETS]) {
        self.by_operation
            .write()
            .insert((service.to_string(), operation.to_string()), h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_needs_enough_calls() {
        let q = Quantiles::empty();
        let mut h = [0u64; BUCKETS];
        h[9] = 99; // ≤ 100 ms
        h[12] = 1; // ≤ 1 s
        q.set("s", "op", h);
        let p99 = q.quantile_ns("s", "op", 0.99, 100).unwrap();
        assert!((50_000_000..=100_000_000).contains(&p99), "{p99}");
        assert_eq!(q.quantile_ns("s", "op", 0.99, 101), None);
        assert_eq!(q.quantile_ns("s", "other", 0.99, 1), None);
    }
}
