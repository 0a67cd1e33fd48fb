//! The contracts every storage tier implements (the hot store, the
//! Elasticsearch tier, a peer node, their compositions in `crate::tiers`),
//! and the two rules they share: how hits are ordered and which copies of a
//! span are the same span.

use std::collections::HashSet;

use async_trait::async_trait;

use super::catalog::{Graph, TagCatalog};
use super::{SearchQuery, Span, SpanId, SpanKind, TraceId};
use crate::error::Result;

/// A trace with more spans than this is refused (`TooLarge`) by every
/// tier's trace fetch rather than held in memory whole.
pub const MAX_TRACE_SPANS: usize = 200_000;

/// A trace found by search, with the start time of its newest matching span
/// (results are ordered by it, newest first, and merged across tiers by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHit {
    pub trace_id: TraceId,
    pub start_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    pub name: String,
    pub kind: SpanKind,
}

/// The read side of a storage tier.
#[async_trait]
pub trait SpanReader: Send + Sync {
    /// Every stored span of the trace (empty if unknown). A tier may hold the
    /// same span twice after at-least-once redelivery; callers deduplicate.
    async fn trace(&self, id: TraceId) -> Result<Vec<Span>>;
    /// Traces with a span matching `q` (see `SearchQuery::matches`), newest
    /// first, at most `q.limit`.
    async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>>;
    async fn services(&self) -> Result<Vec<String>>;
    /// Operations of one service, or of all services when `None`.
    async fn operations(&self, service: Option<&str>) -> Result<Vec<Operation>>;
    /// Every span matching `q` (ignoring `q.limit`), a page of at most
    /// `page_size` spans at a time, for export. `after` is the opaque
    /// cursor of the previous page; `next` is `None` on the last page.
    async fn scan(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage>;
    /// Attribute keys and typed values per scope, services with their span
    /// names, root services and names, of the spans starting in
    /// `[from_ns, to_ns]`, within the bounds of `model::catalog`. A tier
    /// may answer at a coarser granularity (the hot store: whole segments
    /// overlapping the window). The default samples the newest
    /// [`SAMPLE_TRACES`] traces, for tiers with no dictionary of their own
    /// (its per-service part is marked missing: a sample is not the window).
    async fn tag_catalog(&self, from_ns: u64, to_ns: u64) -> Result<TagCatalog> {
        let mut cat = TagCatalog::default();
        for spans in sample_traces(self, from_ns, to_ns, SAMPLE_TRACES).await? {
            spans.iter().for_each(|s| cat.add_span(s));
        }
        cat.by_service.missing = true;
        Ok(cat)
    }
    /// Calls between services whose child span starts in `[from_ns,
    /// to_ns]`. The default computes them from the newest
    /// [`SAMPLE_GRAPH_TRACES`] traces of the window, for tiers that keep no
    /// edges.
    async fn dependencies(&self, from_ns: u64, to_ns: u64) -> Result<Graph> {
        let mut g = Graph::default();
        for spans in sample_traces(self, from_ns, to_ns, SAMPLE_GRAPH_TRACES).await? {
            g.add_trace(&spans, from_ns, to_ns);
        }
        Ok(g)
    }
    /// The start of the oldest span held, when the tier knows it cheaply
    /// and has received all traffic since (the hot store). A tiered read
    /// of the catalog or graph asks no further tier once one holds the
    /// whole window. `None` (the default): unknown.
    async fn oldest_start_ns(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// Traces the default [`SpanReader::tag_catalog`] samples.
pub const SAMPLE_TRACES: usize = 100;
/// Traces the default [`SpanReader::dependencies`] samples.
pub const SAMPLE_GRAPH_TRACES: usize = 1000;

/// The newest `limit` traces with a span starting in `[from_ns, to_ns]`,
/// each whole (the sampling path autocomplete and the graph used before
/// tiers kept catalogs; kept for tiers without them and for comparison).
pub async fn sample_traces<R: SpanReader + ?Sized>(
    reader: &R,
    from_ns: u64,
    to_ns: u64,
    limit: usize,
) -> Result<Vec<Vec<Span>>> {
    let q = SearchQuery {
        start_ns: Some(from_ns),
        end_ns: Some(to_ns),
        limit,
        ..Default::default()
    };
    let mut out = Vec::new();
    for hit in reader.search(&q).await? {
        let mut spans = match reader.trace(hit.trace_id).await {
            // A trace too large to hold is left out of the sample.
            Err(crate::error::Error::TooLarge(_)) => continue,
            r => r?,
        };
        dedup_spans(&mut spans);
        out.push(spans);
    }
    Ok(out)
}

/// One page of a [`SpanReader::scan`].
#[derive(Clone, Debug, Default)]
pub struct ScanPage {
    pub spans: Vec<Span>,
    pub next: Option<String>,
}

/// The write side: returns once the spans are durable in this tier.
#[async_trait]
pub trait SpanWriter: Send + Sync {
    async fn write(&self, spans: Vec<Span>) -> Result<()>;
}

/// The answer of a search from each trace's newest matching start: the
/// `limit` best, ranked by [`sort_hits`].
pub fn top_hits(newest: impl IntoIterator<Item = (TraceId, u64)>, limit: usize) -> Vec<TraceHit> {
    let mut hits: Vec<TraceHit> = newest
        .into_iter()
        .map(|(trace_id, start_ns)| TraceHit { trace_id, start_ns })
        .collect();
    sort_hits(&mut hits);
    hits.truncate(limit);
    hits
}

/// Newest first; ties broken by trace id so every tier orders alike.
pub fn sort_hits(hits: &mut [TraceHit]) {
    hits.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then(a.trace_id.cmp(&b.trace_id))
    });
}

/// Drops copies of the same span (at-least-once redelivery, or a span held
/// by several tiers) and sorts by start. A span's identity within its trace
/// is (span id, start time): Zipkin-style shared spans reuse an id with
/// another start.
pub fn dedup_spans(spans: &mut Vec<Span>) {
    let mut seen: HashSet<(TraceId, SpanId, u64)> = HashSet::with_capacity(spans.len());
    spans.retain(|s| seen.insert((s.trace_id, s.span_id, s.start_ns)));
    spans.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then(a.span_id.cmp(&b.span_id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u8, start_ns: u64) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            start_ns,
            end_ns: start_ns + 5,
            ..Default::default()
        }
    }

    #[test]
    fn dedup_keeps_one_copy_per_span_id_and_start() {
        let (a, b) = (span(1, 10), span(1, 11)); // same id, other start: kept
        let mut spans = vec![b.clone(), a.clone(), a.clone()];
        dedup_spans(&mut spans);
        assert_eq!(spans, vec![a, b]);
    }
}
