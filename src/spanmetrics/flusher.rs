//! The `span_metrics` stage (group `pipeline`): every
//! `span_metrics.flush_interval_ms` it takes the receiver workers' counts
//! and writes them where this node keeps them (the local store, fsynced,
//! or the Kafka metrics topic on an ingest node); every
//! [`JANITOR_EVERY`] it runs the store's janitor. A failed write keeps
//! the counts and retries them on the next tick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use parking_lot::Mutex;

use super::accum::Hub;
use super::store::codec::Source;
use super::store::MetricsStore;
use super::{point, Point, SeriesKey};
use crate::actors::tree::{RestartStage, Root, StageHandle};
use crate::error::Result;
use crate::metrics::Counter;

pub const JANITOR_EVERY: Duration = Duration::from_secs(30);
/// Counts kept for retry beyond this many series-windows are dropped
/// (and counted): memory stays bounded while the sink is down.
const MAX_PENDING: usize = 1_000_000;

/// Where flushed deltas go.
pub trait DeltaSink: Send + Sync {
    /// Durable when it returns `Ok`; on `Err` nothing of it is (the
    /// caller retries the same deltas) unless [`Self::retries_itself`].
    fn write(&self, deltas: &[(SeriesKey, Point)]) -> Result<()>;
    /// The sink queued the deltas and resends them itself: the caller
    /// must not offer them again, and calls `write` (maybe empty) each tick.
    fn retries_itself(&self) -> bool {
        false
    }
}

impl DeltaSink for MetricsStore {
    fn write(&self, deltas: &[(SeriesKey, Point)]) -> Result<()> {
        self.append(deltas.to_vec(), &Source::default())
    }
}

pub struct Flusher {
    hub: Option<Arc<Hub>>,
    sink: Option<Arc<dyn DeltaSink>>,
    store: Option<Arc<MetricsStore>>,
    pending: Mutex<Vec<(SeriesKey, Point)>>,
    dropped: Counter,
}

impl Flusher {
    /// `hub` + `sink`: flushes the workers' counts; `store`: its janitor.
    pub fn new(
        hub: Option<Arc<Hub>>,
        sink: Option<Arc<dyn DeltaSink>>,
        store: Option<Arc<MetricsStore>>,
    ) -> Arc<Flusher> {
        Arc::new(Flusher {
            hub,
            sink,
            store,
            pending: Mutex::new(Vec::new()),
            dropped: Counter::new(
                "strand_span_metrics_dropped_points_total",
                "span-metric points dropped because their sink stayed down too long",
                &[],
            ),
        })
    }

    /// Writes everything counted so far; returns how many points.
    pub fn flush(&self) -> Result<usize> {
        let (Some(hub), Some(sink)) = (&self.hub, &self.sink) else {
            return Ok(0);
        };
        let mut pending = self.pending.lock();
        pending.extend(hub.drain());
        if sink.retries_itself() {
            let n = pending.len();
            let batch = std::mem::take(&mut *pending);
            return sink.write(&batch).map(|_| n);
        }
        if pending.is_empty() {
            return Ok(0);
        }
        match sink.write(&pending) {
            Ok(()) => {
                let n = pending.len();
                pending.clear();
                Ok(n)
            }
            Err(e) => {
                if pending.len() > MAX_PENDING {
                    compact(&mut pending);
                    if pending.len() > MAX_PENDING {
                        let extra = pending.len() - MAX_PENDING;
                        pending.drain(..extra);
                        self.dropped.add(extra as u64);
                    }
                }
                Err(e)
            }
        }
    }

    pub fn janitor(&self) -> Result<()> {
        if let Some(s) = &self.store {
            let r = s.run_janitor()?;
            if r != Default::default() {
                tracing::info!(?r, "span-metrics janitor");
            }
        }
        Ok(())
    }
}

/// Sums points of the same series and window (retries pile up per tick).
fn compact(v: &mut Vec<(SeriesKey, Point)>) {
    v.sort_by(|a, b| (a.1.start_ns, &a.0).cmp(&(b.1.start_ns, &b.0)));
    let mut out: Vec<(SeriesKey, Point)> = Vec::with_capacity(v.len());
    for (k, p) in v.drain(..) {
        match out.last_mut() {
            Some((lk, lp)) if *lk == k && lp.start_ns == p.start_ns => point::merge(lp, &p),
            _ => out.push((k, p)),
        }
    }
    *v = out;
}

struct SpanMetricsStage {
    flusher: Arc<Flusher>,
    interval: Duration,
    stage: StageHandle,
    last_janitor: Instant,
    failing: bool,
}

impl SpanMetricsStage {
    fn tick(&mut self) {
        let mut res = self.flusher.flush().map(|_| ());
        if res.is_ok() && self.last_janitor.elapsed() >= JANITOR_EVERY {
            self.last_janitor = Instant::now();
            res = self.flusher.janitor();
        }
        match res {
            Ok(()) if self.failing => {
                self.failing = false;
                self.stage.up();
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!("span metrics: {e} (retrying)");
                self.failing = true;
                self.stage.failed(&e);
            }
        }
    }
}

impl Actor for SpanMetricsStage {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, _| act.tick());
    }
}

impl Supervised for SpanMetricsStage {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.stage.up();
    }
}

impl Handler<RestartStage> for SpanMetricsStage {
    type Result = ();

    fn handle(&mut self, _: RestartStage, ctx: &mut Context<Self>) {
        self.stage.restarting();
        ctx.stop();
    }
}

/// Starts the stage on its own arbiter (fsyncs block it, not the rest).
pub fn start(flusher: Arc<Flusher>, interval: Duration, root: Option<&Addr<Root>>) {
    let stage = StageHandle::new(root, "pipeline", "span_metrics");
    let arbiter = Arbiter::new();
    arbiter.spawn_fn(|| crate::actors::name_thread("span-metrics"));
    let act = SpanMetricsStage {
        flusher,
        interval,
        stage: stage.clone(),
        // The first janitor run comes soon after start.
        last_janitor: Instant::now()
            .checked_sub(JANITOR_EVERY - Duration::from_secs(2))
            .unwrap_or_else(Instant::now),
        failing: false,
    };
    let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| act);
    stage.register(Some(addr.recipient()));
}
