//! Jaeger v1 trace JSON.
//!
//! OTLP concepts without a Jaeger field become tags the way the OTel
//! Collector's Jaeger translator writes them: `span.kind`,
//! `otel.status_code` / `otel.status_description`, `error=true`,
//! `otel.scope.name` / `otel.scope.version`, `w3c.tracestate`; the parent
//! becomes a CHILD_OF reference and links FOLLOWS_FROM references.

use std::sync::Arc;

use serde_json::{json, Value};

use super::skew;
use crate::model::{AttrValue, KeyValue, Resource, Span, SpanKind, StatusCode, TraceId};

/// One Jaeger tag.
pub fn tag(key: &str, v: &AttrValue) -> Value {
    let (ty, value) = match v {
        AttrValue::Str(s) => ("string", Value::from(s.as_str())),
        AttrValue::Bool(b) => ("bool", Value::from(*b)),
        AttrValue::Int(i) => ("int64", Value::from(*i)),
        AttrValue::Double(d) if d.is_finite() => ("float64", Value::from(*d)),
        AttrValue::Bytes(_) => ("binary", Value::from(v.as_text())),
        // NaN/Inf have no JSON number; arrays and maps become JSON text.
        _ => ("string", Value::from(v.as_text())),
    };
    json!({ "key": key, "type": ty, "value": value })
}

fn tags(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter().map(|kv| tag(&kv.key, &kv.value)).collect()
}

fn span_tags(s: &Span) -> Vec<Value> {
    let mut out = tags(&s.attributes);
    let has = |k: &str| s.attributes.iter().any(|kv| kv.key == k);
    let mut add = |k: &str, v: AttrValue| {
        if !has(k) {
            out.push(tag(k, &v));
        }
    };
    if s.kind != SpanKind::Unspecified {
        add("span.kind", AttrValue::Str(s.kind.as_str().into()));
    }
    match s.status.code {
        StatusCode::Unset => {}
        StatusCode::Ok => add("otel.status_code", AttrValue::Str("OK".into())),
        StatusCode::Error => {
            add("otel.status_code", AttrValue::Str("ERROR".into()));
            add("error", AttrValue::Bool(true));
        }
    }
    if !s.status.message.is_empty() {
        add(
            "otel.status_description",
            AttrValue::Str(s.status.message.clone()),
        );
    }
    if !s.scope.name.is_empty() {
        add("otel.scope.name", AttrValue::Str(s.scope.name.clone()));
    }
    if !s.scope.version.is_empty() {
        add(
            "otel.scope.version",
            AttrValue::Str(s.scope.version.clone()),
        );
    }
    if !s.trace_state.is_empty() {
        add("w3c.tracestate", AttrValue::Str(s.trace_state.clone()));
    }
    out
}

/// Renders one trace. `warnings[i]` belongs to `spans[i]` (may be shorter).
pub fn render_trace(id: TraceId, spans: &[Span], warnings: &[Vec<String>]) -> Value {
    // Processes: one per distinct resource, numbered in first-seen order.
    let mut processes: Vec<Arc<Resource>> = Vec::new();
    let mut rendered = Vec::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        let pi = match processes
            .iter()
            .position(|r| Arc::ptr_eq(r, &s.resource) || **r == *s.resource)
        {
            Some(p) => p,
            None => {
                processes.push(s.resource.clone());
                processes.len() - 1
            }
        };
        let mut refs = Vec::new();
        if let Some(p) = s.parent_span_id {
            refs.push(json!({ "refType": "CHILD_OF", "traceID": s.trace_id.to_hex(), "spanID": p.to_hex() }));
        }
        for l in &s.links {
            refs.push(json!({ "refType": "FOLLOWS_FROM", "traceID": l.trace_id.to_hex(), "spanID": l.span_id.to_hex() }));
        }
        let logs: Vec<Value> = s
            .events
            .iter()
            .map(|e| {
                let mut fields = vec![tag("event", &AttrValue::Str(e.name.clone()))];
                fields.extend(tags(&e.attributes));
                json!({ "timestamp": e.time_ns / 1000, "fields": fields })
            })
            .collect();
        let w = warnings.get(i).filter(|w| !w.is_empty());
        rendered.push(json!({
            "traceID": s.trace_id.to_hex(),
            "spanID": s.span_id.to_hex(),
            "operationName": s.name,
            "references": refs,
            "flags": s.flags & 0xff,
            "startTime": s.start_ns / 1000,
            "duration": s.duration_ns() / 1000,
            "tags": span_tags(s),
            "logs": logs,
            "processID": format!("p{}", pi + 1),
            "warnings": w,
        }));
    }
    let procs: serde_json::Map<String, Value> = processes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rest: Vec<KeyValue> = r
                .attributes
                .iter()
                .filter(|kv| kv.key != "service.name")
                .cloned()
                .collect();
            (
                format!("p{}", i + 1),
                json!({ "serviceName": r.service_name(), "tags": tags(&rest) }),
            )
        })
        .collect();
    json!({ "traceID": id.to_hex(), "spans": rendered, "processes": procs, "warnings": null })
}

/// Renders a trace after clock-skew adjustment (unless `raw`).
pub fn render_adjusted(id: TraceId, mut spans: Vec<Span>, raw: bool) -> Value {
    if raw {
        return render_trace(id, &spans, &[]);
    }
    let deltas = skew::adjust(&mut spans);
    let warnings: Vec<Vec<String>> = deltas
        .iter()
        .map(|&d| {
            if d == 0 {
                Vec::new()
            } else {
                vec![skew::warning(d)]
            }
        })
        .collect();
    render_trace(id, &spans, &warnings)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::span;
    use super::*;
    use crate::model::{Event, Link, SpanId};

    #[test]
    fn trace_json_maps_otlp_fields_to_jaeger_tags_and_references() {
        let mut root = span(1, 1, None, "front", "GET /", 1_000_000, 5_000_000);
        root.kind = SpanKind::Server;
        root.status = crate::model::Status {
            code: StatusCode::Error,
            message: "boom".into(),
        };
        root.attributes = vec![
            KeyValue::new("http.status_code", AttrValue::Int(500)),
            KeyValue::new("ratio", AttrValue::Double(0.5)),
        ];
        root.events = vec![Event {
            time_ns: 2_000_000,
            name: "retry".into(),
            ..Default::default()
        }];
        root.links = vec![Link {
            trace_id: TraceId([9; 16]),
            span_id: SpanId([8; 8]),
            ..Default::default()
        }];
        let child = span(1, 2, Some(1), "back", "query", 2_000_000, 1_000_000);
        let v = render_trace(
            TraceId([1; 16]),
            &[root, child],
            &[vec![], vec!["w".into()]],
        );
        assert_eq!(v["traceID"], "01".repeat(16));
        let s0 = &v["spans"][0];
        assert_eq!(s0["spanID"], "0000000000000001");
        assert_eq!(s0["startTime"], 1000);
        assert_eq!(s0["duration"], 5000);
        assert_eq!(s0["warnings"], Value::Null);
        let tag_of = |k: &str| {
            s0["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["key"] == k)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            tag_of("http.status_code"),
            json!({"key": "http.status_code", "type": "int64", "value": 500})
        );
        assert_eq!(tag_of("ratio")["type"], "float64");
        assert_eq!(tag_of("span.kind")["value"], "server");
        assert_eq!(tag_of("otel.status_code")["value"], "ERROR");
        assert_eq!(tag_of("otel.status_description")["value"], "boom");
        assert_eq!(
            tag_of("error"),
            json!({"key": "error", "type": "bool", "value": true})
        );
        assert_eq!(tag_of("otel.scope.name")["value"], "lib");
        assert_eq!(s0["references"][0]["refType"], "FOLLOWS_FROM");
        assert_eq!(s0["logs"][0]["timestamp"], 2000);
        assert_eq!(
            s0["logs"][0]["fields"][0],
            json!({"key": "event", "type": "string", "value": "retry"})
        );
        let s1 = &v["spans"][1];
        assert_eq!(
            s1["references"][0],
            json!({"refType": "CHILD_OF", "traceID": "01".repeat(16), "spanID": "0000000000000001"})
        );
        assert_eq!(s1["warnings"], json!(["w"]));
        assert_eq!(s1["processID"], "p2");
        assert_eq!(v["processes"]["p1"]["serviceName"], "front");
        assert_eq!(v["processes"]["p2"]["serviceName"], "back");
    }

    #[test]
    fn adjusted_rendering_warns_on_shifted_spans() {
        let spans = vec![
            span(1, 1, None, "a", "root", 1_000_000, 1_000_000),
            span(1, 2, Some(1), "b", "c", 0, 200_000),
        ];
        let v = render_adjusted(TraceId([1; 16]), spans.clone(), false);
        assert_eq!(v["spans"][1]["startTime"], 1400);
        assert!(v["spans"][1]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("+1400µs"));
        let raw = render_adjusted(TraceId([1; 16]), spans, true);
        assert_eq!(raw["spans"][1]["startTime"], 0);
    }
}
