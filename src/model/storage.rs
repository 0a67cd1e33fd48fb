//! The contracts every storage tier implements (the hot store, the
//! Elasticsearch tier, a peer node, their compositions in `crate::tiers`),
//! and the two rules they share: how hits are ordered and which copies of a
//! span are the same span.

use std::collections::HashSet;

use async_trait::async_trait;

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
