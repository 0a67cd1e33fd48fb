//! Tail sampling: traces emitted with the OpenTelemetry SDK in the shapes
//! policies look for, what a node stored of them, and its tail metrics.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_sdk::trace::SdkTracerProvider;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The child span ends with an error status.
    Error,
    /// The root lasts 2 s (explicit timestamps; nobody waits).
    Slow,
    Plain,
}

/// Emits a root server span and one child (the child ends first, as in a
/// real call) and returns the trace id (hex).
pub fn emit(p: &SdkTracerProvider, shape: Shape) -> String {
    let t = p.tracer("tail");
    let start = SystemTime::now();
    let root_len = match shape {
        Shape::Slow => Duration::from_secs(2),
        _ => Duration::from_millis(5),
    };
    let root = t
        .span_builder("checkout")
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .start(&t);
    let id = root.span_context().trace_id().to_string();
    let cx = Context::current_with_span(root);
    let mut child = t
        .span_builder("charge")
        .with_kind(SpanKind::Client)
        .with_start_time(start + Duration::from_millis(1))
        .start_with_context(&t, &cx);
    if shape == Shape::Error {
        child.set_status(Status::error("declined"));
    }
    child.end_with_timestamp(start + Duration::from_millis(2));
    cx.span().end_with_timestamp(start + root_len);
    id
}

/// One more child span of trace `hex`, sent after the fact.
pub fn emit_late(p: &SdkTracerProvider, hex: &str) {
    let t = p.tracer("tail");
    let parent = SpanContext::new(
        TraceId::from_hex(hex).unwrap(),
        SpanId::from_hex("00000000000000aa").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = Context::new().with_remote_span_context(parent);
    t.span_builder("late")
        .with_kind(SpanKind::Internal)
        .start_with_context(&t, &cx)
        .end();
}

/// Spans the node stores of trace `hex` (0 when it has none).
pub async fn stored(query: &str, hex: &str) -> usize {
    let (code, body) = super::http::get_json(&format!("{query}/api/traces/{hex}")).await;
    match code {
        200 => body["data"][0]["spans"].as_array().map_or(0, |s| s.len()),
        404 => 0,
        other => panic!("trace {hex}: status {other}: {body}"),
    }
}

/// The 56 random low bits of a trace id, as the probabilistic policy reads
/// them.
pub fn random_bits(hex: &str) -> u64 {
    u64::from_str_radix(&hex[18..32], 16).unwrap()
}

/// Whether a `sampling_percentage` baseline keeps trace `hex`.
pub fn baseline_keeps(hex: &str, percent: f64) -> bool {
    (random_bits(hex) as f64) < percent / 100.0 * (1u64 << 56) as f64
}

/// A metric series from /metrics, e.g.
/// `strand_tail_decisions_total{decision="keep",policy="errors"}`.
pub async fn metric(node: &str, series: &str) -> u64 {
    super::http::metric(node, series).await
}
