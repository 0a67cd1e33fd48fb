//! Adaptive sampling: per (service, entry operation), the probability that
//! holds `target_traces_per_sec`, recomputed every interval from span
//! metrics, which count 100% of the traffic before sampling.
//!
//! Estimate: span metrics count spans, the target is traces. A trace
//! enters a service through a SERVER (or CONSUMER) span, so the calls of
//! those spans per (service, operation) are the traces per second that
//! operation starts there; client and internal spans are not counted
//! (they follow their entry span's decision, see `pipeline::process`).
//!
//! Rate: the difference of the cumulative totals between two ticks over
//! the time between them, smoothed (exponentially, `smoothing` = weight of
//! the newest interval) so one noisy interval does not flap the answer.
//! In Kafka mode every receiver reads the same merged totals from the
//! writers (`metrics_peers`), so all compute the same global rate and the
//! same probability: the stored total is the target, not N × it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::AdaptiveSamplingConfig;
use crate::error::Result;
use crate::metrics::Gauge;
use crate::model::SpanKind;
use crate::pipeline::sampling::Probabilities;
use crate::spanmetrics::MetricsReader;

type Key = (String, String);

pub struct Controller {
    cfg: AdaptiveSamplingConfig,
    reader: Arc<dyn MetricsReader>,
    table: Arc<Probabilities>,
    last: Option<(Instant, HashMap<Key, u64>)>,
    /// Smoothed offered rate (traces/s before any sampling) per operation.
    rate: HashMap<Key, f64>,
    probability: HashMap<Key, f64>,
    operations: Gauge,
}

impl Controller {
    pub fn new(
        cfg: &AdaptiveSamplingConfig,
        reader: Arc<dyn MetricsReader>,
        table: Arc<Probabilities>,
    ) -> Controller {
        Controller {
            cfg: cfg.clone(),
            reader,
            table,
            last: None,
            rate: HashMap::new(),
            probability: HashMap::new(),
            operations: Gauge::new(
                "strand_sampling_adaptive_operations",
                "operations with an adaptive sampling probability",
                &[],
            ),
        }
    }

    /// The probabilities in force, for tests and the benchmark.
    pub fn probabilities(&self) -> &HashMap<Key, f64> {
        &self.probability
    }

    pub fn smoothed_rate(&self, service: &str, operation: &str) -> Option<f64> {
        self.rate
            .get(&(service.to_string(), operation.to_string()))
            .copied()
    }

    pub fn tick(&mut self) -> Result<()> {
        self.tick_at(Instant::now())
    }

    /// Reads the totals and, from the second call on, recomputes and
    /// publishes the probabilities.
    pub fn tick_at(&mut self, now: Instant) -> Result<()> {
        let mut calls: HashMap<Key, u64> = HashMap::new();
        for (k, p) in self.reader.totals()? {
            if matches!(k.kind, SpanKind::Server | SpanKind::Consumer) {
                *calls.entry((k.service, k.operation)).or_default() += p.calls;
            }
        }
        let Some((then, before)) = self.last.replace((now, calls.clone())) else {
            return Ok(());
        };
        let dt = now.saturating_duration_since(then).as_secs_f64();
        if dt <= 0.0 {
            return Ok(());
        }
        let a = self.cfg.smoothing;
        for (k, n) in &calls {
            // Totals only grow; a smaller one (a peer restarted without
            // its history) counts as no new calls rather than negative.
            let arrived = n.saturating_sub(before.get(k).copied().unwrap_or(0)) as f64 / dt;
            let served = self.probability.get(k).copied().unwrap_or(1.0);
            // Edge mode: what arrives was already sampled at the served
            // probability, so the offered rate is the arrived one over it.
            let offered = if self.cfg.apply_at_receiver {
                arrived
            } else {
                arrived / served.max(self.cfg.min_probability)
            };
            let r = self.rate.entry(k.clone()).or_insert(offered);
            *r = a * offered + (1.0 - a) * *r;
            let p = if *r > 0.0 {
                (self.cfg.target_traces_per_sec / *r).clamp(self.cfg.min_probability, 1.0)
            } else {
                1.0
            };
            self.probability.insert(k.clone(), p);
        }
        self.operations.set(self.probability.len() as u64);
        self.table.replace(self.probability.clone());
        Ok(())
    }
}

/// Runs the controller every `interval` on a thread of its own (a peer
/// reader blocks on HTTP) as the `adaptive_sampling` stage.
pub fn start(mut c: Controller, interval: Duration, stage: crate::actors::tree::StageHandle) {
    stage.register(None);
    let spawned = std::thread::Builder::new()
        .name("adaptive-sampling".into())
        .spawn(move || {
            stage.up();
            let mut failing = false;
            loop {
                std::thread::sleep(interval);
                match c.tick() {
                    Ok(()) if failing => {
                        failing = false;
                        stage.up();
                    }
                    Ok(()) => {}
                    Err(e) => {
                        // Reported once per outage: the last probabilities
                        // stay in force meanwhile, which is not worth a
                        // group restart.
                        if !failing {
                            tracing::warn!("adaptive sampling: cannot read span metrics: {e}");
                            stage.failed(&e);
                        }
                        failing = true;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("adaptive sampling not started: {e}");
    }
}

#[cfg(test)]
#[path = "adaptive_tests.rs"]
mod tests;
