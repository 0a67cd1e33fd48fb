//! Span fixtures: the OTLP/JSON files in tests/fixtures/, rebased in time so
//! the earliest span starts one hour ago (inside every retention window),
//! and a constructed span that sets every field.

use std::path::Path;
use std::sync::Arc;

use strand::model::{
    AttrValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};

pub const FILES: [&str; 4] = ["checkout.json", "search.json", "batch.json", "unicode.json"];

pub fn load(name: &str) -> Vec<Span> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let req = strand::otlp::json::decode_request(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
    strand::otlp::convert::spans_from_proto(&req.resource_spans)
}

/// Every fixture span, shifted so the earliest starts an hour before now.
pub fn load_all() -> Vec<Span> {
    let mut spans: Vec<Span> = FILES.iter().flat_map(|f| load(f)).collect();
    let min = spans
        .iter()
        .map(|s| s.start_ns)
        .min()
        .expect("fixtures are not empty");
    let shift = strand::model::now_ns() - 3_600_000_000_000 - min;
    for s in &mut spans {
        s.start_ns += shift;
        s.end_ns += shift;
        for e in &mut s.events {
            e.time_ns += shift;
        }
    }
    spans
}

/// One attribute of every type, with the awkward values: escapes, extreme
/// and inexact numbers, infinity, bytes, nested arrays and maps, empties,
/// a long string.
pub fn every_attribute_type() -> Vec<KeyValue> {
    vec![
        KeyValue::new("s", AttrValue::Str("héllo \"q\" \n".into())),
        KeyValue::new("b", AttrValue::Bool(true)),
        KeyValue::new("i", AttrValue::Int(i64::MIN)),
        KeyValue::new("big", AttrValue::Int(i64::MAX)),
        KeyValue::new("d", AttrValue::Double(0.1 + 0.2)),
        KeyValue::new("inf", AttrValue::Double(f64::INFINITY)),
        KeyValue::new("y", AttrValue::Bytes(vec![0, 255, 7])),
        KeyValue::new(
            "a",
            AttrValue::Array(vec![
                AttrValue::Int(1),
                AttrValue::Str("x".into()),
                AttrValue::Empty,
            ]),
        ),
        KeyValue::new(
            "m",
            AttrValue::Map(vec![KeyValue::new("inner", AttrValue::Double(-2.5e-300))]),
        ),
        KeyValue::new("e", AttrValue::Empty),
        KeyValue::new("long", AttrValue::Str("z".repeat(5000))),
    ]
}

/// A span using every field. `seed` varies the ids, service (`api` when
/// even, `db` when odd), operation, duration, status and some attributes,
/// so filters have something to tell apart. Events and links carry string
/// attributes only (what every store keeps typed).
pub fn full_span(seed: u8, start: u64) -> Span {
    let kv = KeyValue::new;
    let mut attributes = vec![
        kv(
            "http.status_code",
            AttrValue::Int(if seed % 2 == 0 { 200 } else { 500 }),
        ),
        kv("http.method", AttrValue::Str("GET".into())),
        kv("ratio", AttrValue::Double(0.125)),
        kv("cached", AttrValue::Bool(seed % 3 == 0)),
        kv("blob", AttrValue::Bytes(vec![0, 1, 254, 255])),
        kv(
            "list",
            AttrValue::Array(vec![AttrValue::Int(1), AttrValue::Str("two".into())]),
        ),
        kv("obj", AttrValue::Map(vec![kv("a", AttrValue::Bool(true))])),
        kv("nothing", AttrValue::Empty),
    ];
    attributes.extend(every_attribute_type());
    Span {
        trace_id: TraceId([seed; 16]),
        span_id: SpanId([seed, 1, 2, 3, 4, 5, 6, 7]),
        parent_span_id: (seed % 2 == 0).then_some(SpanId([9; 8])),
        trace_state: "vendor=x".into(),
        flags: 0x301,
        name: format!("GET /items/{}", seed % 3),
        kind: SpanKind::Server,
        start_ns: start,
        end_ns: start + 1_500_000 * u64::from(seed),
        attributes,
        dropped_attributes_count: 3,
        events: vec![Event {
            time_ns: start + 10,
            name: "exception".into(),
            attributes: vec![kv("exception.type", AttrValue::Str("IOError".into()))],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 2,
        links: vec![Link {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([8; 8]),
            trace_state: "l=1".into(),
            attributes: vec![kv("link.kind", AttrValue::Str("follows".into()))],
            dropped_attributes_count: 0,
            flags: 1,
        }],
        dropped_links_count: 4,
        status: Status {
            code: if seed % 2 == 0 {
                StatusCode::Ok
            } else {
                StatusCode::Error
            },
            message: "m".into(),
        },
        resource: Arc::new(Resource {
            attributes: vec![
                kv(
                    "service.name",
                    AttrValue::Str(if seed % 2 == 0 { "api" } else { "db" }.into()),
                ),
                kv("process.pid", AttrValue::Int(42)),
            ],
            dropped_attributes_count: 1,
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        }),
        scope: Arc::new(Scope {
            name: "io.opentelemetry.http".into(),
            version: "1.2".into(),
            schema_url: "s".into(),
            ..Default::default()
        }),
    }
}
