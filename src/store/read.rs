//! The query side of the hot store: trace by id, search, services,
//! operations and export scan over sealed, frozen and active segments,
//! with the semantics of the reference `MemoryStore`.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::active::MemSegment;
use super::hot::HotStore;
use super::rows::RowCache;
use super::segment::SealedSegment;
use crate::error::{Error, Result};
use crate::index::{Plan, Postings, TimeRange};
use crate::model::{
    Graph, Operation, ScanPage, SearchQuery, Span, SpanKind, SpanReader, TagCatalog, TraceHit,
    TraceId, MAX_TRACE_SPANS,
};

/// A segment of either kind, in id order (= write order).
#[derive(Clone)]
pub(super) enum Seg {
    Mem(Arc<MemSegment>),
    Sealed(Arc<SealedSegment>),
}

impl Seg {
    pub(super) fn id(&self) -> u64 {
        match self {
            Seg::Mem(m) => m.id,
            Seg::Sealed(s) => s.id,
        }
    }

    pub(super) fn time(&self) -> TimeRange {
        match self {
            Seg::Mem(m) => m.read().index.time,
            Seg::Sealed(s) => s.index.time,
        }
    }
}

/// Whether a span with these times passes the query's time and duration
/// bounds (the conditions no posting answers).
pub(super) fn time_ok(q: &SearchQuery, start: u64, end: u64) -> bool {
    let d = end.saturating_sub(start);
    !(q.min_duration_ns.is_some_and(|m| d < m)
        || q.max_duration_ns.is_some_and(|m| d > m)
        || q.start_ns.is_some_and(|s| start < s)
        || q.end_ns.is_some_and(|e| start > e))
}

fn candidates(plan: &Plan, rows: u32, from: u32) -> Box<dyn Iterator<Item = u32> + '_> {
    match &plan.rows {
        Some(b) => Box::new(b.iter().filter(move |r| *r >= from)),
        None => Box::new(from..rows),
    }
}

fn ops_into(p: &Postings, service: Option<&str>, out: &mut BTreeSet<Operation>) {
    for (svc, ops) in &p.ops {
        if service.is_some_and(|s| s != svc) {
            continue;
        }
        for (name, mask) in ops {
            for k in 0..6u8 {
                if mask & (1 << k) != 0 {
                    out.insert(Operation {
                        name: name.clone(),
                        kind: SpanKind::from_i32(i32::from(k)),
                    });
                }
            }
        }
    }
}

impl HotStore {
    /// Every segment, oldest first. Readers work on this snapshot without
    /// holding the store lock.
    pub(super) fn segments(&self) -> Vec<Seg> {
        let st = self.state.read();
        let mut v: Vec<Seg> = st.sealed.values().map(|s| Seg::Sealed(s.clone())).collect();
        v.extend(st.frozen.iter().map(|m| Seg::Mem(m.clone())));
        v.extend(st.active.iter().cloned().map(Seg::Mem));
        v.sort_by_key(Seg::id);
        v
    }

    /// Rows of a segment that match `q`, from row `from`, calling `f(row,
    /// trace, start, span?)` for each; `f` returns false to stop. The span
    /// is decoded only when `need_span` or the plan cannot vouch for a row.
    pub(super) fn each_match(
        seg: &Seg,
        q: &SearchQuery,
        from: u32,
        need_span: bool,
        f: &mut dyn FnMut(u32, TraceId, u64, Option<Span>) -> bool,
    ) -> Result<()> {
        match seg {
            Seg::Mem(m) => {
                let g = m.read();
                if !g.index.time.overlaps(q.start_ns, q.end_ns) {
                    return Ok(());
                }
                let plan = g.index.postings.plan(q);
                for row in candidates(&plan, g.index.rows, from) {
                    let Some(s) = g.spans.get(row as usize) else {
                        break;
                    };
                    if q.matches(s) && !f(row, s.trace_id, s.start_ns, need_span.then(|| s.clone()))
                    {
                        break;
                    }
                }
            }
            Seg::Sealed(s) => {
                if !s.index.time.overlaps(q.start_ns, q.end_ns) {
                    return Ok(());
                }
                let plan = s.index.postings.plan(q);
                let mut cache = RowCache::default();
                for row in candidates(&plan, s.index.rows, from) {
                    let r = row as usize;
                    let ok = if plan.exact {
                        time_ok(q, s.columns.start_ns(r)?, s.columns.end_ns(r)?)
                    } else {
                        // Verify on a partial decode; most candidates fail.
                        q.matches(&s.columns.span_for_match(r, &mut cache)?)
                    };
                    if !ok {
                        continue;
                    }
                    let span = if need_span {
                        Some(s.columns.span(r, &mut cache)?)
                    } else {
                        None
                    };
                    if !f(row, s.columns.trace_id(r)?, s.columns.start_ns(r)?, span) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// (min start, max end) of a trace's spans in the store, from the
    /// per-segment trace summaries (no row is read).
    pub fn trace_bounds(&self, id: TraceId) -> Option<(u64, u64)> {
        let mut out: Option<(u64, u64)> = None;
        let mut merge =
            |a: u64, b: u64| out = Some(out.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        for seg in self.segments() {
            match seg {
                Seg::Mem(m) => {
                    if let Some(e) = m.read().index.traces.get(&id) {
                        merge(e.min_start, e.max_end);
                    }
                }
                Seg::Sealed(s) => {
                    if s.index.bloom.may_contain(&id) {
                        if let Some((a, b)) = s.index.traces.bounds(&id) {
                            merge(a, b);
                        }
                    }
                }
            }
        }
        out
    }

    pub fn time_range(&self) -> Option<TimeRange> {
        let mut t = TimeRange::EMPTY;
        for seg in self.segments() {
            let r = match seg {
                Seg::Mem(m) => m.read().index.time,
                Seg::Sealed(s) => s.index.time,
            };
            t.min_start = t.min_start.min(r.min_start);
            t.max_start = t.max_start.max(r.max_start);
            t.max_end = t.max_end.max(r.max_end);
        }
        (t != TimeRange::EMPTY).then_some(t)
    }

    /// Synchronous form of [`SpanReader::trace`].
    pub fn trace_sync(&self, id: TraceId) -> Result<Vec<Span>> {
        self.trace_capped(id, MAX_TRACE_SPANS)
    }

    /// The trace's spans, refused with `TooLarge` past `cap`; the check
    /// comes before each segment's rows are decoded, so a huge trace costs
    /// at most `cap` spans of memory.
    pub(crate) fn trace_capped(&self, id: TraceId, cap: usize) -> Result<Vec<Span>> {
        let too_large =
            || Error::TooLarge(format!("trace {} has more than {cap} spans", id.to_hex()));
        let mut out = Vec::new();
        for seg in self.segments() {
            match seg {
                Seg::Mem(m) => {
                    let g = m.read();
                    let rows = g.index.trace_rows(&id);
                    if out.len() + rows.len() > cap {
                        return Err(too_large());
                    }
                    out.extend(
                        rows.iter()
                            .filter_map(|&r| g.spans.get(r as usize))
                            .cloned(),
                    );
                }
                Seg::Sealed(s) => {
                    let rows = s.index.trace_rows(&id);
                    if out.len() + rows.len() > cap {
                        return Err(too_large());
                    }
                    let mut cache = RowCache::default();
                    for &r in rows {
                        out.push(s.columns.span(r as usize, &mut cache)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Synchronous form of [`SpanReader::scan`]. The cursor is
    /// `<segment id>:<next row>`; segments keep their ids and row order
    /// from active through sealed, so a cursor survives sealing, and one
    /// pointing into a segment retention deleted resumes at the next.
    pub fn scan_sync(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage> {
        let (from_seg, from_row) = match after {
            None => (0, 0),
            Some(c) => c
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u32>().ok()?)))
                .ok_or_else(|| Error::InvalidArgument(format!("bad cursor {c:?}")))?,
        };
        let page_size = page_size.max(1);
        let mut spans = Vec::new();
        let mut next = None;
        for seg in self.segments().into_iter().filter(|s| s.id() >= from_seg) {
            let from = if seg.id() == from_seg { from_row } else { 0 };
            let id = seg.id();
            Self::each_match(&seg, q, from, true, &mut |row, _, _, span| {
                if spans.len() == page_size {
                    next = Some(format!("{id}:{row}"));
                    return false;
                }
                spans.extend(span);
                true
            })?;
            if next.is_some() {
                break;
            }
        }
        Ok(ScanPage { spans, next })
    }

    pub fn services_sync(&self) -> Vec<String> {
        let mut set = BTreeSet::new();
        for seg in self.segments() {
            match seg {
                Seg::Mem(m) => set.extend(m.read().index.postings.ops.keys().cloned()),
                Seg::Sealed(s) => set.extend(s.index.postings.ops.keys().cloned()),
            }
        }
        set.into_iter().collect()
    }

    pub fn operations_sync(&self, service: Option<&str>) -> Vec<Operation> {
        let mut set = BTreeSet::new();
        for seg in self.segments() {
            match seg {
                Seg::Mem(m) => ops_into(&m.read().index.postings, service, &mut set),
                Seg::Sealed(s) => ops_into(&s.index.postings, service, &mut set),
            }
        }
        set.into_iter().collect()
    }
}

#[async_trait]
impl SpanReader for HotStore {
    async fn tag_catalog(&self, from_ns: u64, to_ns: u64) -> Result<TagCatalog> {
        Ok(self.tag_catalog_sync(from_ns, to_ns))
    }

    async fn dependencies(&self, from_ns: u64, to_ns: u64) -> Result<Graph> {
        Ok(self.dependencies_sync(from_ns, to_ns))
    }

    async fn oldest_start_ns(&self) -> Result<Option<u64>> {
        Ok(self.time_range().map(|t| t.min_start))
    }

    async fn trace(&self, id: TraceId) -> Result<Vec<Span>> {
        self.trace_sync(id)
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
        self.search_sync(q)
    }

    async fn services(&self) -> Result<Vec<String>> {
        Ok(self.services_sync())
    }

    async fn operations(&self, service: Option<&str>) -> Result<Vec<Operation>> {
        Ok(self.operations_sync(service))
    }

    async fn scan(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage> {
        self.scan_sync(q, after, page_size)
    }
}
