//! Span fixtures for the store's unit tests.

use std::sync::Arc;

use crate::model::*;

/// A span of trace `trace` (low bytes), span number `i`, in `service`.
pub fn span(trace: u64, i: u64, service: &str, op: &str) -> Span {
    let mut t = [0u8; 16];
    t[8..].copy_from_slice(&trace.to_be_bytes());
    t[0] = 0xab;
    let mut s = [0u8; 8];
    s.copy_from_slice(&(i + 1).to_be_bytes());
    Span {
        trace_id: TraceId(t),
        span_id: SpanId(s),
        parent_span_id: (i > 0).then(|| SpanId(1u64.to_be_bytes())),
        name: op.to_string(),
        kind: SpanKind::from_i32((i % 6) as i32),
        start_ns: 1_000_000 + i * 1000 + trace,
        end_ns: 1_000_000 + i * 1000 + trace + 500 + i,
        attributes: vec![
            KeyValue::new(
                "http.status_code",
                AttrValue::Int(if i % 3 == 0 { 500 } else { 200 }),
            ),
            KeyValue::new("user_id", AttrValue::Str(format!("u{}", i % 4))),
        ],
        status: Status {
            code: if i % 5 == 0 {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            message: String::new(),
        },
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AttrValue::Str(service.to_string()),
            )],
            ..Default::default()
        }),
        scope: Arc::new(Scope {
            name: "lib".into(),
            version: "1.0".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
