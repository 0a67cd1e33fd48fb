//! The hot store's tag catalog and dependency graph over a window.
//!
//! Sealed segments never change, so the union of their catalogs, and the
//! sum of the edges of those wholly inside a window, are cached (one
//! entry each, keyed by the segment ids that went in): autocomplete asks
//! the same window again and again while a user types, and a moving
//! "last hour" window keeps the same sealed segments until one is sealed
//! or expires. Active and frozen segments are always read afresh.

use std::sync::Arc;

use parking_lot::Mutex;

use super::hot::HotStore;
use super::read::Seg;
use crate::index::catalog::{add_sum, minute_of, EdgeSum};
use crate::index::Postings;
use crate::model::{Graph, TagCatalog};

/// One cached answer and the sealed segment ids it was built from.
#[derive(Default)]
pub struct CatalogCache {
    catalog: Mutex<Option<(Vec<u64>, Arc<TagCatalog>)>>,
    graph: Mutex<Option<(Vec<u64>, Arc<Graph>)>>,
}

/// Adds one segment's catalog (attributes from its dictionary; services
/// and span names from its postings, which are complete). A growing
/// (active) segment's per-service part is copied rather than shared, so
/// its writer does not copy it on its next span.
fn catalog_into(p: &Postings, cat: &TagCatalog, out: &mut TagCatalog, growing: bool) {
    if growing {
        out.merge_copy(cat);
    } else {
        out.merge(cat);
    }
    for (svc, ops) in &p.ops {
        for name in ops.keys() {
            out.add_operation(svc, name);
        }
    }
}

impl HotStore {
    /// Synchronous form of `SpanReader::tag_catalog`: the union of the
    /// catalogs of every segment whose spans' start times overlap the
    /// window (a segment is the granularity: the answer may include keys
    /// and values of spans just outside it).
    pub fn tag_catalog_sync(&self, from_ns: u64, to_ns: u64) -> TagCatalog {
        let segs: Vec<Seg> = self
            .segments()
            .into_iter()
            .filter(|s| s.time().overlaps(Some(from_ns), Some(to_ns)))
            .collect();
        let sealed: Vec<u64> = segs
            .iter()
            .filter(|s| matches!(s, Seg::Sealed(_)))
            .map(Seg::id)
            .collect();
        let cached = {
            let c = self.catalog_cache.catalog.lock();
            c.as_ref()
                .filter(|(ids, _)| *ids == sealed)
                .map(|(_, cat)| cat.clone())
        };
        let base = match cached {
            Some(c) => c,
            None => {
                let mut cat = TagCatalog::default();
                for s in &segs {
                    if let Seg::Sealed(s) = s {
                        catalog_into(&s.index.postings, &s.index.catalog, &mut cat, false);
                    }
                }
                let cat = Arc::new(cat);
                *self.catalog_cache.catalog.lock() = Some((sealed, cat.clone()));
                cat
            }
        };
        let mut out = (*base).clone();
        for s in &segs {
            if let Seg::Mem(m) = s {
                let g = m.read();
                catalog_into(&g.index.postings, &g.index.catalog, &mut out, true);
            }
        }
        out
    }

    /// Synchronous form of `SpanReader::dependencies`: the edge buckets
    /// (minutes of the child's start) overlapping the window, summed over
    /// every segment. An edge is counted in the segment that was active
    /// when it resolved, which may hold neither span's time, so segments
    /// are chosen by their edges' minutes, not their spans' times.
    pub fn dependencies_sync(&self, from_ns: u64, to_ns: u64) -> Graph {
        if from_ns > to_ns {
            return Graph::default();
        }
        let (lo, hi) = (minute_of(from_ns), minute_of(to_ns));
        let segs = self.segments();
        // Sealed segments whose every bucket is in the window.
        let inside = |s: &Seg| match s {
            Seg::Sealed(s) => s
                .index
                .edges
                .minutes()
                .is_some_and(|(a, b)| lo <= a && b <= hi),
            Seg::Mem(_) => false,
        };
        let whole: Vec<u64> = segs.iter().filter(|s| inside(s)).map(Seg::id).collect();
        let cached = {
            let c = self.catalog_cache.graph.lock();
            c.as_ref()
                .filter(|(ids, _)| *ids == whole)
                .map(|(_, g)| g.clone())
        };
        let base = match cached {
            Some(g) => g,
            None => {
                let mut sum = EdgeSum::default();
                for s in segs.iter().filter(|s| inside(s)) {
                    if let Seg::Sealed(s) = s {
                        s.index.edges.sum_window(0, u64::MAX, &mut sum);
                    }
                }
                let mut g = Graph::default();
                add_sum(&mut g, sum);
                let g = Arc::new(g);
                *self.catalog_cache.graph.lock() = Some((whole, g.clone()));
                g
            }
        };
        // The rest: sealed segments partly in the window, and the
        // active and frozen ones (their read guards held while summing).
        let mut sum = EdgeSum::default();
        let mems: Vec<_> = segs
            .iter()
            .filter_map(|s| match s {
                Seg::Mem(m) => Some(m.read()),
                Seg::Sealed(_) => None,
            })
            .collect();
        for g in &mems {
            g.index.edges.sum_window(from_ns, to_ns, &mut sum);
        }
        for s in segs.iter().filter(|s| !inside(s)) {
            if let Seg::Sealed(s) = s {
                s.index.edges.sum_window(from_ns, to_ns, &mut sum);
            }
        }
        let mut g = (*base).clone();
        add_sum(&mut g, sum);
        g
    }
}
