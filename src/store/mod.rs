//! Storage tiers. The hot store (this directory) keeps recent spans in
//! mmapped Arrow segments; the Elasticsearch tier (crate::elasticsearch)
//! keeps 7 days of searchable span documents. Both implement [`SpanReader`],
//! and one conformance suite (tests/conformance.rs) runs against each.

pub mod active;
pub mod format;
pub mod hot;
#[cfg(test)]
mod hot_tests;
pub mod manifest;
pub mod memory;
pub mod offload;
mod read;
mod recover;
pub mod remote;
pub mod rows;
pub mod schema;
pub mod segment;
#[cfg(test)]
pub(crate) mod testutil;
pub mod tiered;
pub mod wal;
mod walcodec;

pub use hot::HotStore;

/// A trace with more spans than this is refused (`TooLarge`) by every
/// tier's trace fetch rather than held in memory whole.
pub const MAX_TRACE_SPANS: usize = 200_000;
pub use recover::lock_data_dir;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{SearchQuery, Span, SpanKind, TraceId};

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
