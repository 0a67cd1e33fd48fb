//! One write shard's tail sampler, owned by its `HotWriter` thread: waiting
//! traces (in memory and in the pending log), when each is due, the
//! decision cache, and the memory bound.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::TailSamplingConfig;
use super::log::{self, Entry, PendingLog};
use super::policy::{decide, Policy, TraceView};
use super::quantiles::Quantiles;
use crate::error::Result;
use crate::metrics::{Counter, Gauge};
use crate::model::{Span, SpanId, TraceId};
use crate::store::hot::Batch;
use crate::store::HotStore;

struct Waiting {
    spans: Vec<Span>,
    bytes: u64,
    /// Arrival order of the trace's first span: the oldest go first under
    /// memory pressure.
    seq: u64,
    first_ms: u64,
    due_ms: u64,
    root: bool,
    /// Oldest pending-log generation holding its spans.
    generation: u64,
    /// Re-read from the pending log after a restart: some of its spans may
    /// already be in the hot store (kept just before the crash).
    recovered: bool,
}

/// Bounded FIFO of decisions.
struct Cache {
    map: HashMap<TraceId, bool>,
    order: VecDeque<TraceId>,
    cap: usize,
}

impl Cache {
    fn insert(&mut self, id: TraceId, keep: bool) {
        if self.map.insert(id, keep).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

struct Metrics {
    traces_keep: Counter,
    traces_drop: Counter,
    early: Counter,
    late_keep: Counter,
    late_drop: Counter,
    recovered: Counter,
    pending_traces: Gauge,
    pending_bytes: Gauge,
}

impl Metrics {
    fn new() -> Metrics {
        let traces = |d| {
            Counter::new(
                "strand_tail_traces_total",
                "traces decided by tail sampling",
                &[("decision", d)],
            )
        };
        let late = |d| {
            Counter::new(
                "strand_tail_late_spans_total",
                "spans that arrived after their trace was decided and followed the cached decision",
                &[("decision", d)],
            )
        };
        Metrics {
            traces_keep: traces("keep"),
            traces_drop: traces("drop"),
            early: Counter::new(
                "strand_tail_early_decisions_total",
                "traces decided before they were due because waiting spans reached sampling.tail.max_pending_bytes",
                &[],
            ),
            late_keep: late("keep"),
            late_drop: late("drop"),
            recovered: Counter::new(
                "strand_tail_recovered_traces_total",
                "waiting traces re-read from the pending log at start-up or after a writer restart",
                &[],
            ),
            pending_traces: Gauge::new("strand_tail_pending_traces", "traces waiting for a tail-sampling decision", &[]),
            pending_bytes: Gauge::new("strand_tail_pending_bytes", "estimated memory of spans waiting for a tail-sampling decision", &[]),
        }
    }
}

/// What the writer must do after decisions: store `keep`, then hand
/// `decisions` back to [`TailSampler::applied`].
#[derive(Default)]
pub struct Decided {
    pub keep: Vec<Span>,
    pub decisions: Vec<(TraceId, bool)>,
}

pub struct TailSampler {
    cfg: Arc<TailSamplingConfig>,
    policies: Vec<Policy>,
    quantiles: Arc<Quantiles>,
    dir: PathBuf,
    fsync: bool,
    log: PendingLog,
    waiting: HashMap<TraceId, Waiting>,
    due: BTreeSet<(u64, u64, TraceId)>,
    by_age: BTreeMap<u64, TraceId>,
    /// Waiting traces per oldest generation: what the log must keep.
    per_generation: BTreeMap<u64, usize>,
    bytes: u64,
    seq: u64,
    cache: Cache,
    m: Metrics,
}

/// Memory one waiting span costs, estimated from its encoded size: the
/// decoded attributes, names and ids take about three times the protobuf
/// (measured RSS, docs/BENCHMARKS.md "Tail sampling").
fn span_bytes(encoded: usize) -> u64 {
    (std::mem::size_of::<Span>() + encoded * 3) as u64
}

/// What a waiting trace costs besides its spans: its entry in the map,
/// the due and age indexes.
const TRACE_BYTES: u64 = 256;

impl TailSampler {
    /// Opens shard `dir` of the pending log: every trace waiting when the
    /// process stopped waits again (from `now_ms`), and the decisions found
    /// there are cached.
    pub fn open(
        dir: &Path,
        cfg: Arc<TailSamplingConfig>,
        quantiles: Arc<Quantiles>,
        fsync: bool,
        now_ms: u64,
    ) -> Result<TailSampler> {
        let replayed = log::replay(dir)?;
        let mut t = TailSampler {
            policies: cfg.policies.iter().map(Policy::compile).collect(),
            cache: Cache {
                map: HashMap::new(),
                order: VecDeque::new(),
                cap: cfg.decision_cache_size,
            },
            cfg,
            quantiles,
            dir: dir.to_path_buf(),
            fsync,
            log: PendingLog::create(dir, fsync)?,
            waiting: HashMap::new(),
            due: BTreeSet::new(),
            by_age: BTreeMap::new(),
            per_generation: BTreeMap::new(),
            bytes: 0,
            seq: 0,
            m: Metrics::new(),
        };
        for (generation, entry) in replayed {
            match entry {
                Entry::Spans(spans) => {
                    for s in spans {
                        let size = span_bytes(400);
                        t.add(s, size, generation, now_ms, true);
                    }
                }
                Entry::Decisions(ds) => {
                    for (id, keep) in ds {
                        t.forget(&id);
                        t.cache.insert(id, keep);
                    }
                }
            }
        }
        t.m.recovered.add(t.waiting.len() as u64);
        if !t.waiting.is_empty() {
            tracing::info!(
                traces = t.waiting.len(),
                "tail sampling: waiting traces recovered from the pending log"
            );
        }
        Ok(t)
    }

    /// Starts over from what the pending log holds (after a write failure
    /// the memory may hold decisions that were never applied).
    pub fn reopen(&mut self, now_ms: u64) -> Result<()> {
        self.m.pending_traces.sub(self.waiting.len() as u64);
        self.m.pending_bytes.sub(self.bytes);
        self.waiting.clear();
        self.bytes = 0;
        let fresh = TailSampler::open(
            &self.dir,
            self.cfg.clone(),
            self.quantiles.clone(),
            self.fsync,
            now_ms,
        )?;
        *self = fresh;
        Ok(())
    }

    pub fn waiting_traces(&self) -> usize {
        self.waiting.len()
    }

    pub fn waiting_bytes(&self) -> u64 {
        self.bytes
    }

    fn due_at(&self, w: &Waiting, last_ms: u64) -> u64 {
        let quiet = if w.root {
            self.cfg.settle_ms
        } else {
            self.cfg.decision_wait_ms
        };
        (last_ms + quiet).min(w.first_ms + self.cfg.max_trace_age_ms)
    }

    fn add(&mut self, s: Span, size: u64, generation: u64, now_ms: u64, recovered: bool) {
        let id = s.trace_id;
        let root = s.parent_span_id.is_none();
        if !self.waiting.contains_key(&id) {
            self.seq += 1;
            let w = Waiting {
                spans: Vec::new(),
                bytes: 0,
                seq: self.seq,
                first_ms: now_ms,
                due_ms: 0,
                root: false,
                generation,
                recovered,
            };
            self.by_age.insert(w.seq, id);
            *self.per_generation.entry(generation).or_default() += 1;
            self.waiting.insert(id, w);
            self.m.pending_traces.add(1);
            self.bytes += TRACE_BYTES;
            self.m.pending_bytes.add(TRACE_BYTES);
        }
        let mut w = self.waiting.remove(&id).unwrap_or_else(|| unreachable!());
        self.due.remove(&(w.due_ms, w.seq, id));
        w.root |= root;
        w.recovered |= recovered;
        w.spans.push(s);
        w.bytes += size;
        w.due_ms = self.due_at(&w, now_ms);
        self.due.insert((w.due_ms, w.seq, id));
        self.waiting.insert(id, w);
        self.bytes += size;
        self.m.pending_bytes.add(size);
    }

    fn forget(&mut self, id: &TraceId) -> Option<Waiting> {
        let w = self.waiting.remove(id)?;
        self.due.remove(&(w.due_ms, w.seq, *id));
        self.by_age.remove(&w.seq);
        if let Some(n) = self.per_generation.get_mut(&w.generation) {
            *n -= 1;
            if *n == 0 {
                self.per_generation.remove(&w.generation);
            }
        }
        self.bytes -= w.bytes + TRACE_BYTES;
        self.m.pending_bytes.sub(w.bytes + TRACE_BYTES);
        self.m.pending_traces.sub(1);
        Some(w)
    }

    /// Takes one acknowledged-to-be batch: spans of traces already kept
    /// are returned (to be stored now), of traces already dropped are
    /// discarded, the rest wait, queued for the pending log. The caller
    /// must [`Self::sync`] before acknowledging.
    pub fn admit(&mut self, batch: Batch, now_ms: u64) -> Vec<Span> {
        let n = batch.spans.len().max(1);
        let size = span_bytes(batch.record.len() / n);
        if batch
            .spans
            .iter()
            .all(|s| !self.cache.map.contains_key(&s.trace_id))
        {
            // The usual case: the caller's encoding goes to the log as is.
            self.log.push_spans(&batch.record);
            let generation = self.log.generation();
            for s in batch.spans {
                self.add(s, size, generation, now_ms, false);
            }
            return Vec::new();
        }
        let (mut store, mut wait) = (Vec::new(), Vec::new());
        for s in batch.spans {
            match self.cache.map.get(&s.trace_id) {
                Some(true) => {
                    self.m.late_keep.inc();
                    store.push(s);
                }
                Some(false) => self.m.late_drop.inc(),
                None => wait.push(s),
            }
        }
        if !wait.is_empty() {
            self.log
                .push_spans(&crate::store::wal::encode_record(&wait));
            let generation = self.log.generation();
            for s in wait {
                self.add(s, size, generation, now_ms, false);
            }
        }
        store
    }

    /// Makes the queued log records durable (one write, one fsync).
    pub fn sync(&mut self) -> Result<()> {
        self.log.sync()
    }

    /// Decides every trace that is due, then the oldest while waiting spans
    /// exceed the memory bound. `store` filters out spans a recovered trace
    /// already has there.
    pub fn take_due(&mut self, now_ms: u64, store: &HotStore) -> Decided {
        let mut out = Decided::default();
        while let Some(&(due, _, id)) = self.due.first() {
            if due > now_ms {
                break;
            }
            self.decide_one(id, store, &mut out);
        }
        while self.bytes > self.cfg.max_pending_bytes {
            let Some((_, &id)) = self.by_age.first_key_value() else {
                break;
            };
            self.m.early.inc();
            self.decide_one(id, store, &mut out);
        }
        out
    }

    fn decide_one(&mut self, id: TraceId, store: &HotStore, out: &mut Decided) {
        let Some(w) = self.forget(&id) else { return };
        let view = TraceView::new(id, &w.spans);
        let keep = decide(
            &mut self.policies,
            &view,
            &self.quantiles,
            crate::model::now_ns(),
        );
        self.cache.insert(id, keep);
        out.decisions.push((id, keep));
        if !keep {
            self.m.traces_drop.inc();
            return;
        }
        self.m.traces_keep.inc();
        let mut spans = w.spans;
        if w.recovered {
            let stored: std::collections::HashSet<SpanId> = match store.trace_sync(id) {
                Ok(s) => s.into_iter().map(|s| s.span_id).collect(),
                Err(e) => {
                    // Keeping a possible duplicate beats losing spans:
                    // reads deduplicate by span identity.
                    tracing::warn!(error = %e, "tail sampling: could not check stored spans");
                    Default::default()
                }
            };
            spans.retain(|s| !stored.contains(&s.span_id));
        }
        out.keep.extend(spans);
    }

    /// Records decisions whose kept spans are now durable in the hot
    /// store, and deletes log generations no waiting trace needs.
    pub fn applied(&mut self, decisions: &[(TraceId, bool)]) -> Result<()> {
        self.log.push_decisions(decisions);
        self.log.sync()?;
        let first_needed = self
            .per_generation
            .first_key_value()
            .map_or(u64::MAX, |(g, _)| *g);
        self.log.forget_before(first_needed)
    }
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
