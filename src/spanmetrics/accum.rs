//! Per-receiver-worker accumulation (docs/METRICS.md). Each worker owns
//! an [`Accumulator`] behind an uncontended mutex (taken once per request
//! by the worker, once per flush by the flusher). Recording a span is a
//! lookup of its service and operation by `&str` and a few additions;
//! only a series' first span allocates. Entries stay in place across
//! flushes (zeroed), so a busy series never allocates again.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use super::point::{self, bucket_of};
use super::{Exemplar, Point, SeriesKey, OTHER_OPERATION};
use crate::metrics::Counter;
use crate::model::{SpanId, SpanKind, StatusCode, TraceId};
use crate::otlp::proto::trace::v1 as pt;

const KINDS: usize = 6;
const STATUSES: usize = 3;

/// The operations admitted per service, shared by the workers so the cap
/// holds for the process, not per worker.
pub struct Admission {
    cap: usize,
    admitted: Mutex<HashMap<String, HashSet<String>>>,
    overflow: Counter,
}

/// What a miss in a worker's map learns.
enum Admit {
    Yes,
    /// The service is full: these are all its operations, for good.
    Full(Vec<String>),
}

impl Admission {
    pub fn new(cap: usize) -> Arc<Admission> {
        Arc::new(Admission {
            cap,
            admitted: Mutex::new(HashMap::new()),
            overflow: Counter::new(
                "strand_span_metrics_other_spans_total",
                "spans counted under operation __other__ because their service reached span_metrics.max_operations_per_service",
                &[],
            ),
        })
    }

    /// Admits the operations a store already has (a restart keeps the
    /// same operations counted by name).
    pub fn seed(&self, keys: impl Iterator<Item = SeriesKey>) {
        let mut a = self.admitted.lock();
        for k in keys {
            if k.operation == OTHER_OPERATION {
                continue;
            }
            let ops = a.entry(k.service).or_default();
            if ops.len() < self.cap {
                ops.insert(k.operation);
            }
        }
    }

    fn admit(&self, service: &str, op: &str) -> Admit {
        let mut a = self.admitted.lock();
        let ops = match a.get_mut(service) {
            Some(ops) => ops,
            None => a.entry(service.to_string()).or_default(),
        };
        if ops.contains(op) || ops.len() < self.cap {
            if !ops.contains(op) {
                ops.insert(op.to_string());
            }
            return Admit::Yes;
        }
        Admit::Full(ops.iter().cloned().collect())
    }
}

#[derive(Default)]
struct OpAcc {
    slots: [Option<Box<Point>>; KINDS * STATUSES],
}

#[derive(Default)]
struct ServiceAcc {
    ops: HashMap<String, OpAcc>,
    /// Every admitted operation is in `ops`; any other one is `__other__`.
    full: bool,
}

pub struct Accumulator {
    resolution_ns: u64,
    window_ns: u64,
    services: HashMap<String, ServiceAcc>,
    /// Points of windows that closed before the flusher came.
    closed: Vec<(SeriesKey, Point)>,
    admission: Arc<Admission>,
}

impl Accumulator {
    pub fn new(resolution_ns: u64, admission: Arc<Admission>) -> Accumulator {
        Accumulator {
            resolution_ns,
            window_ns: 0,
            services: HashMap::new(),
            closed: Vec::new(),
            admission,
        }
    }

    /// Called once per request: moves the counts of a window that ended
    /// aside, so every span lands in the window it arrived in.
    pub fn begin(&mut self, now_ns: u64) {
        let w = now_ns / self.resolution_ns * self.resolution_ns;
        if w != self.window_ns {
            let mut out = std::mem::take(&mut self.closed);
            self.drain_into(&mut out);
            self.closed = out;
            self.window_ns = w;
        }
    }

    /// Counts one valid span; `kept` (stored by sampling) makes it its
    /// bucket's exemplar.
    pub fn record(&mut self, service: &str, s: &pt::Span, kept: bool) {
        let svc = match self.services.get_mut(service) {
            Some(x) => x,
            None => self.services.entry(service.to_string()).or_default(),
        };
        let op = match svc.ops.contains_key(s.name.as_str()) {
            true => svc.ops.get_mut(s.name.as_str()),
            false => None,
        };
        let op = match op {
            Some(op) => op,
            None => {
                let name = if svc.full {
                    OTHER_OPERATION
                } else {
                    match self.admission.admit(service, &s.name) {
                        Admit::Yes => s.name.as_str(),
                        Admit::Full(all) => {
                            for o in all {
                                svc.ops.entry(o).or_default();
                            }
                            svc.full = true;
                            if svc.ops.contains_key(s.name.as_str()) {
                                s.name.as_str()
                            } else {
                                OTHER_OPERATION
                            }
                        }
                    }
                };
                if name == OTHER_OPERATION {
                    self.admission.overflow.inc();
                }
                if !svc.ops.contains_key(name) {
                    svc.ops.insert(name.to_string(), OpAcc::default());
                }
                svc.ops.get_mut(name).expect("inserted above")
            }
        };
        let kind = SpanKind::from_i32(s.kind) as usize;
        let code = s.status.as_ref().map_or(0, |st| st.code);
        let status = StatusCode::from_i32(code);
        let slot = &mut op.slots[kind.min(KINDS - 1) * STATUSES + status as usize];
        let p = slot.get_or_insert_with(|| Box::new(point::empty(0)));
        let d = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
        let b = bucket_of(d);
        p.calls += 1;
        p.errors += u64::from(status == StatusCode::Error);
        p.duration_sum_ns = p.duration_sum_ns.wrapping_add(d);
        p.buckets[b] += 1;
        if kept {
            if let (Ok(t), Ok(sp)) = (
                <[u8; 16]>::try_from(s.trace_id.as_slice()),
                <[u8; 8]>::try_from(s.span_id.as_slice()),
            ) {
                point::keep_newer(
                    &mut p.exemplars[b],
                    Exemplar {
                        trace_id: TraceId(t),
                        span_id: SpanId(sp),
                        duration_ns: d,
                        time_ns: s.start_time_unix_nano,
                    },
                );
            }
        }
    }

    /// Everything counted so far (each point's start is its window),
    /// leaving the entries in place, zeroed.
    pub fn drain(&mut self) -> Vec<(SeriesKey, Point)> {
        let mut out = std::mem::take(&mut self.closed);
        self.drain_into(&mut out);
        out
    }

    fn drain_into(&mut self, out: &mut Vec<(SeriesKey, Point)>) {
        let w = self.window_ns;
        for (service, svc) in &mut self.services {
            for (op, acc) in &mut svc.ops {
                for (i, slot) in acc.slots.iter_mut().enumerate() {
                    let Some(p) = slot.as_mut().filter(|p| p.calls > 0) else {
                        continue;
                    };
                    let mut taken = std::mem::replace(p.as_mut(), point::empty(0));
                    taken.start_ns = w;
                    let key = SeriesKey {
                        service: service.clone(),
                        operation: op.clone(),
                        kind: SpanKind::from_i32((i / STATUSES) as i32),
                        status: StatusCode::from_i32((i % STATUSES) as i32),
                    };
                    out.push((key, taken));
                }
            }
        }
    }
}

/// Every worker's accumulator, for the flusher.
pub struct Hub {
    resolution_ns: u64,
    admission: Arc<Admission>,
    workers: Mutex<Vec<Arc<Mutex<Accumulator>>>>,
}

impl Hub {
    pub fn new(resolution_ns: u64, max_operations_per_service: usize) -> Arc<Hub> {
        Arc::new(Hub {
            resolution_ns,
            admission: Admission::new(max_operations_per_service),
            workers: Mutex::new(Vec::new()),
        })
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// A new worker's accumulator, registered for flushing.
    pub fn worker(&self) -> Arc<Mutex<Accumulator>> {
        let a = Arc::new(Mutex::new(Accumulator::new(
            self.resolution_ns,
            self.admission.clone(),
        )));
        self.workers.lock().push(a.clone());
        a
    }

    /// Takes every worker's counts, summed per series and window.
    pub fn drain(&self) -> Vec<(SeriesKey, Point)> {
        let workers = self.workers.lock().clone();
        let mut merged: HashMap<(u64, SeriesKey), Point> = HashMap::new();
        for w in workers {
            let pts = w.lock().drain();
            for (k, p) in pts {
                match merged.entry((p.start_ns, k)) {
                    Entry::Occupied(mut e) => point::merge(e.get_mut(), &p),
                    Entry::Vacant(e) => {
                        e.insert(p);
                    }
                }
            }
        }
        merged.into_iter().map(|((_, k), p)| (k, p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(op: &str, status: i32, dur: u64, t: u8) -> pt::Span {
        pt::Span {
            trace_id: vec![t; 16],
            span_id: vec![t; 8],
            name: op.into(),
            kind: 2,
            start_time_unix_nano: 1000,
            end_time_unix_nano: 1000 + dur,
            status: Some(pt::Status {
                code: status,
                message: String::new(),
            }),
            ..Default::default()
        }
    }

    fn calls(pts: &[(SeriesKey, Point)], op: &str) -> u64 {
        pts.iter()
            .filter(|(k, _)| k.operation == op)
            .map(|(_, p)| p.calls)
            .sum()
    }

    #[test]
    fn counts_per_series_and_window_with_exemplars_from_kept_spans_only() {
        let hub = Hub::new(10, 100);
        let (a, b) = (hub.worker(), hub.worker());
        a.lock().begin(5);
        a.lock().record("shop", &span("GET", 2, 300_000, 1), false);
        a.lock().record("shop", &span("GET", 0, 300_000, 2), true);
        b.lock().begin(7);
        b.lock().record("shop", &span("GET", 2, 50, 3), false);
        // A new window: the old one's counts are set aside, not mixed in.
        a.lock().begin(12);
        a.lock().record("shop", &span("GET", 2, 50, 4), true);
        let mut pts = hub.drain();
        pts.sort_by_key(|(k, p)| (p.start_ns, k.status));
        let got: Vec<_> = pts
            .iter()
            .map(|(k, p)| (p.start_ns, k.status, p.calls, p.errors))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, StatusCode::Unset, 1, 0),
                (0, StatusCode::Error, 2, 2),
                (10, StatusCode::Error, 1, 1)
            ]
        );
        let err0 = &pts[1].1;
        assert_eq!((err0.buckets[0], err0.buckets[bucket_of(300_000)]), (1, 1));
        assert!(
            err0.exemplars.iter().all(Option::is_none),
            "dropped spans are no exemplars"
        );
        let ok0 = &pts[0].1;
        assert_eq!(
            ok0.exemplars[bucket_of(300_000)].unwrap().trace_id,
            TraceId([2; 16])
        );
        assert_eq!(pts[2].1.exemplars[0].unwrap().trace_id, TraceId([4; 16]));
        assert!(hub.drain().is_empty(), "drained means zeroed");
    }

    #[test]
    fn operations_past_the_cap_are_counted_as_other_across_workers() {
        let hub = Hub::new(10, 2);
        let (a, b) = (hub.worker(), hub.worker());
        a.lock().record("shop", &span("one", 0, 1, 1), false);
        b.lock().record("shop", &span("two", 0, 1, 1), false);
        let before = hub.admission().overflow.get();
        for w in [&a, &b] {
            w.lock().record("shop", &span("three", 0, 1, 1), false);
            w.lock().record("shop", &span("one", 0, 1, 1), false);
            w.lock().record("shop", &span("two", 0, 1, 1), false);
        }
        a.lock()
            .record("other-service", &span("three", 0, 1, 1), false);
        let pts = hub.drain();
        assert_eq!(calls(&pts, "one"), 3);
        assert_eq!(calls(&pts, "two"), 3);
        assert_eq!(calls(&pts, OTHER_OPERATION), 2);
        assert_eq!(calls(&pts, "three"), 1, "another service has room");
        assert!(hub.admission().overflow.get() - before >= 2);
    }
}
