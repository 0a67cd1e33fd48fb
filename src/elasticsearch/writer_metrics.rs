//! Metrics of the bulk writer, rendered at /metrics.

use crate::metrics::{Counter, Gauge};

pub struct WriterMetrics {
    pub bulk_ok: Counter,
    pub bulk_failed: Counter,
    pub bulk_latency_ms_total: Counter,
    pub bulk_last_latency_ms: Gauge,
    pub indexed: Counter,
    pub retried: Counter,
    pub rejected: Counter,
    pub request_failures: Counter,
    pub backlog_bytes: Gauge,
    pub backlog_records: Gauge,
    pub lag_ms: Gauge,
}

impl WriterMetrics {
    pub fn new() -> Self {
        let fail = |kind| {
            Counter::new(
                "strand_es_document_failures_total",
                "span documents not indexed on a try, by kind",
                &[("kind", kind)],
            )
        };
        let bulk = |outcome| {
            Counter::new(
                "strand_es_bulk_requests_total",
                "_bulk requests sent, by outcome",
                &[("outcome", outcome)],
            )
        };
        WriterMetrics {
            bulk_ok: bulk("ok"),
            bulk_failed: bulk("failed"),
            bulk_latency_ms_total: Counter::new(
                "strand_es_bulk_latency_ms_total",
                "summed _bulk latency (divide by strand_es_bulk_requests_total)",
                &[],
            ),
            bulk_last_latency_ms: Gauge::new(
                "strand_es_bulk_last_latency_ms",
                "latency of the last _bulk request",
                &[],
            ),
            indexed: Counter::new(
                "strand_es_documents_indexed_total",
                "span documents indexed",
                &[],
            ),
            retried: fail("retried"),
            rejected: fail("dead_lettered"),
            request_failures: fail("request"),
            backlog_bytes: Gauge::new(
                "strand_es_backlog_bytes",
                "bytes waiting in the durable backlog",
                &[],
            ),
            backlog_records: Gauge::new(
                "strand_es_backlog_records",
                "documents waiting in the durable backlog",
                &[],
            ),
            lag_ms: Gauge::new(
                "strand_es_indexing_lag_ms",
                "age of the oldest document not yet indexed",
                &[],
            ),
        }
    }
}

impl Default for WriterMetrics {
    fn default() -> Self {
        Self::new()
    }
}
