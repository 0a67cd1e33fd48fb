//! The spans of each stage, named in one place so the stages keep a line
//! or two each. Every root here is started only once a stage knows its
//! work is not made of strand's own spans alone.

use std::future::Future;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

use super::{Pending, Trace};
use crate::error::Result;
use crate::pipeline::Processed;

fn int(key: &'static str, n: u64) -> KeyValue {
    KeyValue::new(key, i64::try_from(n).unwrap_or(i64::MAX))
}

/// Root of an OTLP request (children `decode` and `process` from the
/// phases timed, then [`durable_write`]).
pub fn ingest_trace(p: Pending, transport: &'static str, done: &Processed) -> Option<Trace> {
    p.start(
        "ingest",
        SpanKind::Server,
        vec![
            KeyValue::new("strand.transport", transport),
            int("strand.spans.received", done.received),
            int("strand.spans.rejected", done.rejected),
        ],
    )
}

/// Runs a sink write inside a `durable write` child span (the WAL group
/// commit, or the Kafka acknowledgement, happen in it).
pub async fn durable_write<F: Future<Output = Result<()>>>(t: &Trace, write: F) -> Result<()> {
    let span = t.child("durable write");
    let r = write.with_context(span.context().clone()).await;
    if let Err(e) = &r {
        span.set_error(e.to_string());
    }
    r
}

/// Root of a segment seal.
pub fn seal_trace(p: Pending, segment: u64) -> Option<Trace> {
    p.start(
        "segment seal",
        SpanKind::Internal,
        vec![int("strand.segment.id", segment)],
    )
}

/// Root of one Kafka consume batch (decoded, written, then committed).
pub fn consume_trace(p: Pending, topic: &str, messages: usize, spans: usize) -> Option<Trace> {
    p.start(
        "kafka consume batch",
        SpanKind::Consumer,
        vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.destination.name", topic.to_string()),
            int("messaging.batch.message_count", messages as u64),
            int("strand.spans", spans as u64),
        ],
    )
}

/// Root of one Elasticsearch `_bulk` round (all its retries).
pub fn bulk_trace(p: Pending, docs: usize) -> Option<Trace> {
    p.start(
        "elasticsearch bulk",
        SpanKind::Client,
        vec![
            KeyValue::new("db.system", "elasticsearch"),
            int("strand.docs", docs as u64),
        ],
    )
}

/// Child of the current (traced) ingest request: one Kafka produce call.
pub fn produce_span(topic: &str, spans: usize) -> Option<Trace> {
    let t = super::child_of_current("kafka produce", SpanKind::Producer)?;
    t.set_attribute(KeyValue::new("messaging.system", "kafka"));
    t.set_attribute(KeyValue::new(
        "messaging.destination.name",
        topic.to_string(),
    ));
    t.set_attribute(int("strand.spans", spans as u64));
    Some(t)
}

/// Whether an Elasticsearch document (span JSON) is one of strand's own.
pub fn is_self_document(doc: &[u8]) -> bool {
    let marker = super::SELF_MARKER.as_bytes();
    doc.windows(marker.len()).any(|w| w == marker)
}
