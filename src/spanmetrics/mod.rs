//! Span metrics: calls, errors and a duration histogram per (service,
//! operation, span kind, status) for every span that passes validation,
//! before sampling, so rates and latencies cover 100% of traffic while
//! traces are sampled. See docs/METRICS.md.
//!
//! This module is the contract between the write side (accumulation in the
//! receiver workers, the time-series store, Kafka mode) and the read side
//! (Jaeger's metrics API, OpenMetrics, the UI's Monitor page).

use crate::error::Result;
use crate::model::{SpanId, SpanKind, StatusCode, TraceId};

/// Upper bounds (seconds) of the fixed exponential duration buckets; one
/// more bucket, +Inf, follows the last. Fixed, so any two histograms merge
/// by adding counts.
pub const BUCKETS_SECONDS: [f64; 24] = [
    0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// Buckets per histogram (the bounds plus +Inf).
pub const BUCKETS: usize = BUCKETS_SECONDS.len() + 1;

/// How long metric points are kept unless configured otherwise (30 days).
pub const DEFAULT_RETENTION_NS: u64 = 30 * 86_400 * 1_000_000_000;

/// What overflowing operations of a service are counted under.
pub const OTHER_OPERATION: &str = "__other__";

/// One series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub service: String,
    pub operation: String,
    pub kind: SpanKind,
    pub status: StatusCode,
}

/// A trace that landed in a bucket and was stored (kept by sampling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exemplar {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub duration_ns: u64,
    /// The span's start (Unix ns).
    pub time_ns: u64,
}

/// One series over one window `[start_ns, start_ns + step)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub start_ns: u64,
    pub calls: u64,
    pub errors: u64,
    /// Sum of durations (ns), for OpenMetrics' `_sum`.
    pub duration_sum_ns: u64,
    /// Counts per bucket (not cumulative), `BUCKETS` long.
    pub buckets: [u64; BUCKETS],
    /// The most recent exemplar per bucket, if any.
    pub exemplars: [Option<Exemplar>; BUCKETS],
}

/// Which series and which windows.
#[derive(Clone, Debug, Default)]
pub struct RangeQuery {
    /// `None`: every service.
    pub service: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<SpanKind>,
    /// Window `[start_ns, end_ns)`, aligned down to `step_ns` by the reader.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Width of each returned point; at least [`MetricsReader::min_step_ns`]
    /// (the reader answers from the finest resolution kept for that age
    /// and merges up to `step_ns`).
    pub step_ns: u64,
}

/// What the query layer reads; the same numbers whatever the roles and
/// however many ingest nodes counted them (each span counted once).
pub trait MetricsReader: Send + Sync {
    /// Each matching series with its non-empty points, oldest first.
    fn range(&self, q: &RangeQuery) -> Result<Vec<(SeriesKey, Vec<Point>)>>;
    /// Each series' cumulative totals (counters that only grow, also
    /// across restarts), for `/metrics/spans`; `start_ns` is unused (0).
    fn totals(&self) -> Result<Vec<(SeriesKey, Point)>>;
    /// The finest resolution stored (10 s by default).
    fn min_step_ns(&self) -> u64;
    /// Services with at least one series.
    fn services(&self) -> Result<Vec<String>>;
    /// How far back points are kept; the query API refuses a longer
    /// lookback instead of answering with silently missing points.
    fn retention_ns(&self) -> u64 {
        DEFAULT_RETENTION_NS
    }
}

pub mod accum;
pub mod config;
pub mod empty;
pub mod flusher;
pub mod kafka;
pub mod kafka_store;
pub mod peer;
pub mod point;
pub mod store;
pub mod wiring;
