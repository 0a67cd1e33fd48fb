//! Model/proto → OTLP/JSON (what Tempo's trace-by-id API and OTLP/HTTP
//! JSON responses carry).

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::model::Span;
use crate::otlp::convert::spans_to_proto;
use crate::otlp::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use crate::otlp::proto::common::v1 as pc;
use crate::otlp::proto::trace::v1 as pt;

/// `{"resourceSpans":[...]}` for spans, grouped by resource and scope.
pub fn traces_to_otlp_json(spans: &[Span]) -> Value {
    json!({ "resourceSpans": resource_spans_to_json(&spans_to_proto(spans)) })
}

/// One model attribute as an OTLP/JSON KeyValue.
pub fn attribute_to_json(kv: &crate::model::KeyValue) -> Value {
    let v = crate::otlp::convert::value_to_proto(&kv.value);
    json!({ "key": kv.key, "value": any_value(&v) })
}

pub fn request_to_json(req: &ExportTraceServiceRequest) -> Value {
    json!({ "resourceSpans": resource_spans_to_json(&req.resource_spans) })
}

/// `{}` on full success; `{"partialSuccess":{...}}` otherwise.
pub fn response_to_json(resp: &ExportTraceServiceResponse) -> Value {
    match &resp.partial_success {
        Some(p) if p.rejected_spans != 0 || !p.error_message.is_empty() => json!({
            "partialSuccess": { "rejectedSpans": p.rejected_spans.to_string(), "errorMessage": p.error_message }
        }),
        _ => json!({}),
    }
}

pub fn resource_spans_to_json(rss: &[pt::ResourceSpans]) -> Value {
    Value::Array(
        rss.iter()
            .map(|rs| {
                let mut o = Map::new();
                if let Some(r) = &rs.resource {
                    o.insert(
                        "resource".into(),
                        json!({ "attributes": attrs(&r.attributes), "droppedAttributesCount": r.dropped_attributes_count }),
                    );
                }
                o.insert("scopeSpans".into(), Value::Array(rs.scope_spans.iter().map(scope_spans).collect()));
                o.insert("schemaUrl".into(), Value::from(rs.schema_url.as_str()));
                Value::Object(o)
            })
            .collect(),
    )
}

fn scope_spans(ss: &pt::ScopeSpans) -> Value {
    let mut o = Map::new();
    if let Some(s) = &ss.scope {
        o.insert(
            "scope".into(),
            json!({
                "name": s.name, "version": s.version, "attributes": attrs(&s.attributes),
                "droppedAttributesCount": s.dropped_attributes_count,
            }),
        );
    }
    o.insert(
        "spans".into(),
        Value::Array(ss.spans.iter().map(span).collect()),
    );
    o.insert("schemaUrl".into(), Value::from(ss.schema_url.as_str()));
    Value::Object(o)
}

fn span(s: &pt::Span) -> Value {
    let mut o = json!({
        "traceId": hex::encode(&s.trace_id),
        "spanId": hex::encode(&s.span_id),
        "traceState": s.trace_state,
        "flags": s.flags,
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": s.start_time_unix_nano.to_string(),
        "endTimeUnixNano": s.end_time_unix_nano.to_string(),
        "attributes": attrs(&s.attributes),
        "droppedAttributesCount": s.dropped_attributes_count,
        "events": s.events.iter().map(|e| json!({
            "timeUnixNano": e.time_unix_nano.to_string(),
            "name": e.name,
            "attributes": attrs(&e.attributes),
            "droppedAttributesCount": e.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "droppedEventsCount": s.dropped_events_count,
        "links": s.links.iter().map(|l| json!({
            "traceId": hex::encode(&l.trace_id),
            "spanId": hex::encode(&l.span_id),
            "traceState": l.trace_state,
            "attributes": attrs(&l.attributes),
            "droppedAttributesCount": l.dropped_attributes_count,
            "flags": l.flags,
        })).collect::<Vec<_>>(),
        "droppedLinksCount": s.dropped_links_count,
        "status": s.status.as_ref().map(|st| json!({ "message": st.message, "code": st.code })).unwrap_or_else(|| json!({})),
    });
    if !s.parent_span_id.is_empty() {
        o["parentSpanId"] = Value::from(hex::encode(&s.parent_span_id));
    }
    o
}

fn attrs(kvs: &[pc::KeyValue]) -> Value {
    Value::Array(kvs.iter().map(key_value).collect())
}

fn key_value(kv: &pc::KeyValue) -> Value {
    json!({ "key": kv.key, "value": kv.value.as_ref().map(any_value).unwrap_or_else(|| json!({})) })
}

fn any_value(v: &pc::AnyValue) -> Value {
    use pc::any_value::Value as V;
    match &v.value {
        // String-table indexes only occur in profiles, never in traces.
        None | Some(V::StringValueStrindex(_)) => json!({}),
        Some(V::StringValue(s)) => json!({ "stringValue": s }),
        Some(V::BoolValue(b)) => json!({ "boolValue": b }),
        Some(V::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(V::DoubleValue(d)) if d.is_finite() => json!({ "doubleValue": d }),
        Some(V::DoubleValue(d)) => {
            let s = if d.is_nan() {
                "NaN"
            } else if *d > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            json!({ "doubleValue": s })
        }
        Some(V::BytesValue(b)) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        Some(V::ArrayValue(a)) => {
            json!({ "arrayValue": { "values": a.values.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Some(V::KvlistValue(m)) => json!({ "kvlistValue": { "values": attrs(&m.values) } }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_request;
    use super::*;
    use crate::otlp::convert::spans_from_proto;
    use crate::otlp::convert::tests::sample_span;

    #[test]
    fn model_json_round_trip_keeps_every_field() {
        let spans = vec![sample_span(1), sample_span(2)];
        let v = traces_to_otlp_json(&spans);
        assert_eq!(
            v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"],
            "01".repeat(16)
        );
        assert_eq!(
            v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"],
            "1700000000000000123"
        );
        let body = serde_json::to_vec(&v).unwrap();
        let req = decode_request(&body).unwrap();
        assert_eq!(spans_from_proto(&req.resource_spans), spans);
    }

    #[test]
    fn response_json_is_empty_on_full_success() {
        use crate::otlp::proto::collector::trace::v1::ExportTracePartialSuccess;
        assert_eq!(
            response_to_json(&ExportTraceServiceResponse::default()),
            json!({})
        );
        let r = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "x".into(),
            }),
        };
        assert_eq!(
            response_to_json(&r),
            json!({"partialSuccess": {"rejectedSpans": "2", "errorMessage": "x"}})
        );
    }
}
