//! Search over the hot store: the `limit` traces whose newest matching
//! span starts latest (the ranking of the reference `MemoryStore`).
//!
//! Sealed segments are walked trace by trace, all of them together,
//! latest trace end first: a trace's
//! matching spans start no later than it ends, so once `limit` traces
//! have a matching start later than the next trace's end, nothing left
//! can enter the answer and the walk stops. A search whose matches
//! cluster in time (every segment overlapping the window) then costs
//! about `limit` traces per segment it touches, not every matching span.
//! Active and frozen segments are walked the same way, each alone (see
//! [`mem_best`]). A segment where the postings leave only a few candidate
//! rows is cheaper visited row by row.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use roaring::RoaringBitmap;

use super::active::MemSegment;
use super::hot::HotStore;
use super::read::{time_ok, Seg};
use super::rows::RowCache;
use super::segment::SealedSegment;
use crate::error::Result;
use crate::index::Plan;
use crate::model::{top_hits, SearchQuery, TraceHit, TraceId};

/// Each trace's newest matching start so far, and the `limit` best of
/// them (a start only grows, so the best set stays exact: a trace leaves
/// it only when another passes it).
struct Best {
    newest: HashMap<TraceId, u64>,
    limit: usize,
    top: BTreeSet<(u64, Reverse<TraceId>)>,
}

impl Best {
    fn new(limit: usize) -> Best {
        Best {
            newest: HashMap::new(),
            limit,
            top: BTreeSet::new(),
        }
    }

    fn add(&mut self, trace: TraceId, start: u64) {
        let old = match self.newest.entry(trace) {
            Entry::Occupied(mut o) if start > *o.get() => {
                Some(std::mem::replace(o.get_mut(), start))
            }
            Entry::Occupied(_) => return,
            Entry::Vacant(v) => {
                v.insert(start);
                None
            }
        };
        let key = (start, Reverse(trace));
        let was_top = old.is_some_and(|o| self.top.remove(&(o, Reverse(trace))));
        if !was_top && self.top.len() >= self.limit {
            // The worst of the best: earliest start, then highest id
            // (`sort_hits` ranks lower ids first among equal starts).
            if self.top.first().is_some_and(|worst| *worst >= key) {
                return;
            }
            self.top.pop_first();
        }
        self.top.insert(key);
    }

    /// Whether nothing starting at or below `bound` can change the answer.
    fn settled_above(&self, bound: u64) -> bool {
        self.top.len() >= self.limit && self.top.first().is_some_and(|&(n, _)| n > bound)
    }
}

/// One sealed segment's walk: its plan and position in its trace order.
struct Walk<'a> {
    seg: &'a SealedSegment,
    plan: Plan,
    order: &'a [u32],
    pos: usize,
    cache: RowCache,
}

impl Walk<'_> {
    /// The latest end of the next trace, if any.
    fn bound(&self) -> Option<u64> {
        let i = *self.order.get(self.pos)? as usize;
        Some(self.seg.index.traces.at(i).2)
    }

    /// The newest start among the next trace's matching spans; advances.
    fn next_match(&mut self, q: &SearchQuery) -> Result<Option<(TraceId, u64)>> {
        let i = self.order[self.pos] as usize;
        self.pos += 1;
        let (trace, rows, _) = self.seg.index.traces.at(i);
        let cols = &self.seg.columns;
        let mut newest = None;
        for &row in rows {
            if !self.plan.rows.as_ref().is_none_or(|b| b.contains(row)) {
                continue;
            }
            let r = row as usize;
            let start = cols.start_ns(r)?;
            if newest.is_some_and(|n| n >= start) {
                continue;
            }
            let ok = if self.plan.exact {
                time_ok(q, start, cols.end_ns(r)?)
            } else {
                q.matches(&cols.span_for_match(r, &mut self.cache)?)
            };
            if ok {
                newest = Some(start);
            }
        }
        Ok(newest.map(|s| (trace, s)))
    }
}

/// Whether the candidate rows are few enough to visit one by one. A walk
/// visits about `limit × rows / candidates` rows before `limit` traces
/// match (it tests rows of traces that may not match); visiting the
/// candidates costs `candidates`: the walk wins once `candidates² >
/// limit × rows`.
fn sparse(candidates: &Option<RoaringBitmap>, rows: u32, limit: usize) -> bool {
    candidates
        .as_ref()
        .is_some_and(|b| b.len().saturating_mul(b.len()) < limit as u64 * u64::from(rows))
}

/// Adds an active or frozen segment's own `limit` best traces to `best`.
/// They are enough: a trace outside a segment's own best has `limit`
/// traces of that segment ahead of it, so its value from there cannot put
/// it in the answer. The segment is walked alone (its lock is held only
/// for this), latest trace end first, from a heap built per search.
fn mem_best(m: &MemSegment, q: &SearchQuery, best: &mut Best) {
    let g = m.read();
    if !g.index.time.overlaps(q.start_ns, q.end_ns) {
        return;
    }
    let plan = g.index.postings.plan(q);
    let candidate = |row: u32| plan.rows.as_ref().is_none_or(|b| b.contains(row));
    let matching = |row: u32| {
        g.spans
            .get(row as usize)
            .filter(|s| candidate(row) && q.matches(s))
    };
    let mut own = Best::new(q.limit);
    if sparse(&plan.rows, g.index.rows, q.limit) {
        for row in plan.rows.iter().flatten() {
            if let Some(s) = matching(row) {
                own.add(s.trace_id, s.start_ns);
            }
        }
    } else {
        let floor = q.start_ns.unwrap_or(0);
        let mut heap: BinaryHeap<(u64, &TraceId)> = g
            .index
            .traces
            .iter()
            .map(|(id, e)| (e.max_end, id))
            .collect();
        while let Some((bound, id)) = heap.pop() {
            if bound < floor || own.settled_above(bound) {
                break;
            }
            let rows = g.index.traces[id].rows.iter();
            if let Some(start) = rows.filter_map(|&r| matching(r)).map(|s| s.start_ns).max() {
                own.add(*id, start);
            }
        }
    }
    for &(start, Reverse(trace)) in &own.top {
        best.add(trace, start);
    }
}

impl HotStore {
    /// Synchronous form of [`crate::model::SpanReader::search`].
    pub fn search_sync(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let mut best = Best::new(q.limit);
        let segs = self.segments();
        let mut walks = Vec::new();
        for seg in &segs {
            let sealed = match seg {
                Seg::Sealed(s) if s.index.time.overlaps(q.start_ns, q.end_ns) => s,
                Seg::Sealed(_) => continue,
                Seg::Mem(m) => {
                    mem_best(m, q, &mut best);
                    continue;
                }
            };
            let plan = sealed.index.postings.plan(q);
            if plan.rows.as_ref().is_some_and(RoaringBitmap::is_empty) {
                continue;
            }
            if sparse(&plan.rows, sealed.index.rows, q.limit) {
                Self::each_match(seg, q, 0, false, &mut |_, t, start, _| {
                    best.add(t, start);
                    true
                })?;
                continue;
            }
            walks.push(Walk {
                seg: sealed,
                plan,
                order: sealed.traces_by_latest_end(),
                pos: 0,
                cache: RowCache::default(),
            });
        }
        let floor = q.start_ns.unwrap_or(0);
        let mut heap: BinaryHeap<(u64, usize)> = walks
            .iter()
            .enumerate()
            .filter_map(|(w, walk)| Some((walk.bound()?, w)))
            .collect();
        while let Some((bound, w)) = heap.pop() {
            // No span ends before it starts: below the window's start, or
            // below the settled answer, nothing is left to find.
            if bound < floor || best.settled_above(bound) {
                break;
            }
            let walk = &mut walks[w];
            if let Some((trace, start)) = walk.next_match(q)? {
                best.add(trace, start);
            }
            if let Some(b) = walk.bound() {
                heap.push((b, w));
            }
        }
        Ok(top_hits(best.newest, q.limit))
    }
}
