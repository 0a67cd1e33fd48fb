//! Where finished self-spans go. The SDK's batch processor hands batches
//! to [`ChannelExporter`] on its own thread; they are converted to an OTLP
//! `ExportTraceServiceRequest` there and queued (bounded, dropped when
//! full) for a task on strand's runtime, which either runs them through
//! this process's pipeline (validate, scrub, sample, convert, durable
//! write) or POSTs them to an OTLP/HTTP endpoint.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message as _;
use tokio::sync::mpsc;

use crate::metrics::Counter;
use crate::model::SpanWriter;
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::proto::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use crate::otlp::proto::resource::v1::Resource;
use crate::otlp::proto::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status as PStatus};
use crate::pipeline::Processor;

/// A protobuf KeyValue (its other fields are for profiles' string tables).
fn pkv(key: String, value: AnyValue) -> KeyValue {
    let value = Some(value);
    KeyValue {
        key,
        value,
        ..Default::default()
    }
}

/// Resource attribute marking strand's own spans, so each stage can tell
/// a batch of nothing but self-spans and not trace it (no amplification).
pub const SELF_MARKER: &str = "strand.self_trace";
/// Batches waiting for delivery beyond this are dropped (self-tracing
/// must never hold memory or back-pressure the real pipeline).
const QUEUE: usize = 64;

/// The resource of every self-span: service `strand`, its role.
pub fn resource(role: &str) -> Resource {
    let s = |k: &str, v: &str| {
        pkv(
            k.into(),
            AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            },
        )
    };
    Resource {
        attributes: vec![
            s("service.name", "strand"),
            s("service.version", env!("CARGO_PKG_VERSION")),
            s("strand.role", role),
            pkv(
                SELF_MARKER.into(),
                AnyValue {
                    value: Some(any_value::Value::BoolValue(true)),
                },
            ),
        ],
        ..Default::default()
    }
}

/// Where delivered requests end up.
pub enum Delivery {
    /// This process's pipeline: the processor, then the sink.
    InProcess {
        processor: Arc<Processor>,
        sink: Arc<dyn SpanWriter>,
    },
    /// OTLP/HTTP protobuf POSTs to this URL.
    Http { url: String },
}

pub struct ChannelExporter {
    resource: Resource,
    tx: mpsc::Sender<ExportTraceServiceRequest>,
    dropped: Counter,
}

impl ChannelExporter {
    /// The exporter and the receiving end, for [`deliver`].
    pub fn new(role: &str) -> (ChannelExporter, mpsc::Receiver<ExportTraceServiceRequest>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Counter::new(
            "strand_self_tracing_dropped_spans_total",
            "self-spans dropped because their delivery queue was full",
            &[],
        );
        (
            ChannelExporter {
                resource: resource(role),
                tx,
                dropped,
            },
            rx,
        )
    }
}

impl std::fmt::Debug for ChannelExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelExporter")
    }
}

impl SpanExporter for ChannelExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let req = to_request(&self.resource, batch);
        if self.tx.try_send(req).is_err() {
            self.dropped.add(n);
        }
        Ok(())
    }
}

/// Delivers queued requests until the exporter is gone. Runs on strand's
/// runtime (needs no `Send`: the actix System's own thread).
pub async fn deliver(mut rx: mpsc::Receiver<ExportTraceServiceRequest>, to: Delivery) {
    let failed = Counter::new(
        "strand_self_tracing_delivery_errors_total",
        "self-trace batches that could not be written or sent",
        &[],
    );
    let client = reqwest::Client::new();
    while let Some(req) = rx.recv().await {
        let r = match &to {
            Delivery::InProcess { processor, sink } => {
                let processed = processor.process(req);
                if processed.spans.is_empty() {
                    Ok(())
                } else {
                    sink.write(processed.spans).await.map_err(|e| e.to_string())
                }
            }
            Delivery::Http { url } => client
                .post(url)
                .header("content-type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| match r.status().is_success() {
                    true => Ok(()),
                    false => Err(format!("HTTP {}", r.status())),
                }),
        };
        if let Err(e) = r {
            failed.inc();
            tracing::debug!(error = %e, "self-trace delivery failed");
        }
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn any(v: &Value) -> AnyValue {
    use any_value::Value as V;
    let arr = |values: Vec<AnyValue>| V::ArrayValue(ArrayValue { values });
    let value = match v {
        Value::Bool(b) => V::BoolValue(*b),
        Value::I64(i) => V::IntValue(*i),
        Value::F64(f) => V::DoubleValue(*f),
        Value::String(s) => V::StringValue(s.as_str().to_string()),
        Value::Array(Array::Bool(a)) => arr(a.iter().map(|b| any(&Value::Bool(*b))).collect()),
        Value::Array(Array::I64(a)) => arr(a.iter().map(|i| any(&Value::I64(*i))).collect()),
        Value::Array(Array::F64(a)) => arr(a.iter().map(|f| any(&Value::F64(*f))).collect()),
        Value::Array(Array::String(a)) => arr(a
            .iter()
            .map(|s| AnyValue {
                value: Some(V::StringValue(s.as_str().to_string())),
            })
            .collect()),
        other => V::StringValue(other.to_string()),
    };
    AnyValue { value: Some(value) }
}

fn kvs(attrs: &[opentelemetry::KeyValue]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|kv| pkv(kv.key.as_str().to_string(), any(&kv.value)))
        .collect()
}

fn kind(k: &SpanKind) -> i32 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn span(d: SpanData) -> Span {
    let parent = d.parent_span_id;
    let (code, message) = match &d.status {
        Status::Unset => (0, String::new()),
        Status::Ok => (1, String::new()),
        Status::Error { description } => (2, description.to_string()),
    };
    Span {
        trace_id: d.span_context.trace_id().to_bytes().to_vec(),
        span_id: d.span_context.span_id().to_bytes().to_vec(),
        trace_state: d.span_context.trace_state().header(),
        parent_span_id: if parent == opentelemetry::trace::SpanId::INVALID {
            Vec::new()
        } else {
            parent.to_bytes().to_vec()
        },
        flags: u32::from(d.span_context.trace_flags().to_u8()),
        name: d.name.to_string(),
        kind: kind(&d.span_kind),
        start_time_unix_nano: nanos(d.start_time),
        end_time_unix_nano: nanos(d.end_time),
        attributes: kvs(&d.attributes),
        dropped_attributes_count: d.dropped_attributes_count,
        events: d
            .events
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: nanos(e.timestamp),
                name: e.name.to_string(),
                attributes: kvs(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: d.events.dropped_count,
        links: d
            .links
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: l.span_context.trace_id().to_bytes().to_vec(),
                span_id: l.span_context.span_id().to_bytes().to_vec(),
                attributes: kvs(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                ..Default::default()
            })
            .collect(),
        dropped_links_count: d.links.dropped_count,
        status: Some(PStatus { message, code }),
    }
}

/// One request: one resource, one scope (strand has one tracer).
pub fn to_request(resource: &Resource, batch: Vec<SpanData>) -> ExportTraceServiceRequest {
    let scope = batch.first().map(|d| InstrumentationScope {
        name: d.instrumentation_scope.name().to_string(),
        version: d
            .instrumentation_scope
            .version()
            .unwrap_or_default()
            .to_string(),
        ..Default::default()
    });
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope,
                spans: batch.into_iter().map(span).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
