//! Dependency edges counted as spans are written. A trace's spans all go
//! to one write shard, so each shard keeps an [`EdgeTracker`]: the service
//! of recently written spans, and children whose parent has not arrived
//! yet. When a child meets its parent (in either order) and their services
//! differ, one call is counted in the active segment's
//! [`EdgeBuckets`], in the minute of the child's start.
//!
//! Bounded: at most [`EDGE_CACHE_SPANS`] entries (spans seen plus children
//! waiting) per shard, oldest dropped first. A parent and child written
//! further apart than that are not counted; see docs/STORAGE.md.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::index::EdgeBuckets;
use crate::model::{Span, SpanId, TraceId};

/// Entries (spans seen + children waiting for their parent) one shard's
/// tracker keeps; about 100 bytes each.
pub const EDGE_CACHE_SPANS: usize = 262_144;
/// Distinct service names interned before the intern table is reset.
const MAX_INTERNED: usize = 100_000;

type Key = (TraceId, SpanId);

/// A cheap hasher for random ids (trace and span ids are random bytes, so
/// folding them is enough; SipHash would cost more than the rest of
/// `observe`).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut a = [0u8; 8];
            a[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(a))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

type IdMap<V> = HashMap<Key, V, std::hash::BuildHasherDefault<IdHasher>>;

struct Waiting {
    service: Arc<str>,
    start_ns: u64,
    error: bool,
}

enum Slot {
    Seen(Key),
    Waiting(Key),
}

pub struct EdgeTracker {
    seen: IdMap<Arc<str>>,
    /// Keyed by the (trace, parent span id) the children wait for.
    waiting: IdMap<Vec<Waiting>>,
    order: VecDeque<Slot>,
    services: HashSet<Arc<str>>,
    /// The last resource's service: spans of a request share a resource,
    /// so most spans skip hashing their service name.
    last: Option<(Arc<crate::model::Resource>, Arc<str>)>,
    cap: usize,
}

impl Default for EdgeTracker {
    fn default() -> Self {
        EdgeTracker::new(EDGE_CACHE_SPANS)
    }
}

impl EdgeTracker {
    pub fn new(cap: usize) -> EdgeTracker {
        EdgeTracker {
            seen: IdMap::default(),
            waiting: IdMap::default(),
            order: VecDeque::new(),
            services: HashSet::new(),
            last: None,
            cap: cap.max(1),
        }
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.services.get(s) {
            return a.clone();
        }
        if self.services.len() >= MAX_INTERNED {
            self.services.clear();
        }
        let a: Arc<str> = Arc::from(s);
        self.services.insert(a.clone());
        a
    }

    /// Records `span`, counting in `edges` every call it completes.
    pub fn observe(&mut self, span: &Span, edges: &mut EdgeBuckets) {
        let key = (span.trace_id, span.span_id);
        // A copy (at-least-once redelivery) is counted once.
        if self.seen.contains_key(&key) {
            return;
        }
        let service = match &self.last {
            Some((r, svc)) if Arc::ptr_eq(r, &span.resource) => svc.clone(),
            _ => {
                let svc = self.intern(span.service_name());
                self.last = Some((span.resource.clone(), svc.clone()));
                svc
            }
        };
        let waited = if self.waiting.is_empty() {
            None
        } else {
            self.waiting.remove(&key)
        };
        if let Some(children) = waited {
            for c in children {
                if *c.service != *service {
                    edges.add(c.start_ns, &service, &c.service, c.error);
                }
            }
        }
        if let Some(p) = span.parent_span_id {
            let pkey = (span.trace_id, p);
            match self.seen.get(&pkey) {
                Some(ps) if **ps != *service => {
                    edges.add(span.start_ns, ps, &service, span.is_error())
                }
                Some(_) => {}
                None => {
                    self.waiting.entry(pkey).or_default().push(Waiting {
                        service: service.clone(),
                        start_ns: span.start_ns,
                        error: span.is_error(),
                    });
                    self.order.push_back(Slot::Waiting(pkey));
                }
            }
        }
        self.seen.insert(key, service);
        self.order.push_back(Slot::Seen(key));
        while self.order.len() > self.cap {
            match self.order.pop_front() {
                Some(Slot::Seen(k)) => {
                    self.seen.remove(&k);
                }
                Some(Slot::Waiting(k)) => {
                    self.waiting.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Entries held (spans seen + children waiting).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::{EdgeCounts, Graph};
    use crate::model::{AttrValue, KeyValue, Resource, StatusCode};

    fn span(s: u8, parent: Option<u8>, svc: &str, error: bool) -> Span {
        let mut sp = Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([s; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            start_ns: 120_000_000_000,
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new("service.name", AttrValue::Str(svc.into()))],
                ..Default::default()
            }),
            ..Default::default()
        };
        if error {
            sp.status.code = StatusCode::Error;
        }
        sp
    }

    fn graph(b: &EdgeBuckets) -> Graph {
        let mut g = Graph::default();
        b.add_window_to(0, u64::MAX / 2, &mut g);
        g
    }

    #[test]
    fn child_meets_parent_in_either_order() {
        let spans = [
            span(1, None, "front", false),
            span(2, Some(1), "api", true),
            span(3, Some(2), "api", false),
            span(4, Some(2), "db", false),
        ];
        let want = {
            let mut t = EdgeTracker::new(100);
            let mut b = EdgeBuckets::default();
            spans.iter().for_each(|s| t.observe(s, &mut b));
            graph(&b)
        };
        assert_eq!(want.edges.len(), 2);
        assert_eq!(
            want.edges[&("front".into(), "api".into())],
            EdgeCounts {
                calls: 1,
                errors: 1
            }
        );
        let mut t = EdgeTracker::new(100);
        let mut b = EdgeBuckets::default();
        spans.iter().rev().for_each(|s| t.observe(s, &mut b));
        // A redelivered copy is not counted again.
        t.observe(&spans[1], &mut b);
        assert_eq!(graph(&b), want, "children first count the same");
        let mut reference = Graph::default();
        reference.add_trace(&spans, 0, u64::MAX);
        assert_eq!(reference, want);
    }

    #[test]
    fn bounded_cache_forgets_the_oldest() {
        let mut t = EdgeTracker::new(3);
        let mut b = EdgeBuckets::default();
        t.observe(&span(1, None, "front", false), &mut b);
        for i in 10..13 {
            t.observe(&span(i, Some(200), "x", false), &mut b);
        }
        assert!(t.len() <= 3);
        t.observe(&span(2, Some(1), "api", false), &mut b);
        assert!(b.is_empty(), "the parent was evicted: no edge");
        t.observe(&span(3, Some(2), "db", false), &mut b);
        assert_eq!(graph(&b).edges.len(), 1, "a recent parent still counts");
    }
}
