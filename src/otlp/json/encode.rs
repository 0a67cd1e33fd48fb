//! Model/proto → OTLP/JSON (what Tempo's trace-by-id API, api_v3 and
//! OTLP/HTTP JSON responses carry).
//!
//! Serialised straight from the proto messages through borrowed views:
//! building a `serde_json::Value` tree first cost most of an answer's time.

use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::Span;
use crate::otlp::convert::spans_to_proto;
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceResponse;
use crate::otlp::proto::common::v1 as pc;
use crate::otlp::proto::trace::v1 as pt;

/// `{"resourceSpans":[...]}` of spans grouped by resource and scope.
#[derive(Debug)]
pub struct OtlpTraces(Vec<pt::ResourceSpans>);

impl Serialize for OtlpTraces {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(1))?;
        m.serialize_entry("resourceSpans", &Seq(&self.0))?;
        m.end()
    }
}

pub fn traces_to_otlp_json(spans: &[Span]) -> OtlpTraces {
    OtlpTraces(spans_to_proto(spans))
}

/// One model attribute as an OTLP/JSON KeyValue.
pub fn attribute_to_json(kv: &crate::model::KeyValue) -> Value {
    let v = crate::otlp::convert::value_to_proto(&kv.value);
    // Maps here have string keys only, so serialising cannot fail.
    json!({ "key": kv.key, "value": serde_json::to_value(J(&v)).unwrap_or_default() })
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

/// A borrowed view of a proto message that serialises as OTLP/JSON.
struct J<'a, T: ?Sized>(&'a T);

/// A sequence of views.
struct Seq<'a, T>(&'a [T]);

impl<'a, T> Serialize for Seq<'a, T>
where
    J<'a, T>: Serialize,
{
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut q = ser.serialize_seq(Some(self.0.len()))?;
        for x in self.0 {
            q.serialize_element(&J(x))?;
        }
        q.end()
    }
}

/// Empty JSON object, for absent messages.
struct Empty;

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_map(Some(0))?.end()
    }
}

/// A number OTLP/JSON writes as a decimal string (64-bit integers).
struct Dec(u64);

impl Serialize for Dec {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(&self.0)
    }
}

struct Hex<'a>(&'a [u8]);

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&hex::encode(self.0))
    }
}

impl Serialize for J<'_, pt::ResourceSpans> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let rs = self.0;
        let mut m = ser.serialize_map(None)?;
        if let Some(r) = &rs.resource {
            m.serialize_entry("resource", &J(r))?;
        }
        m.serialize_entry("scopeSpans", &Seq(&rs.scope_spans))?;
        m.serialize_entry("schemaUrl", &rs.schema_url)?;
        m.end()
    }
}

impl Serialize for J<'_, crate::otlp::proto::resource::v1::Resource> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(2))?;
        m.serialize_entry("attributes", &Seq(&self.0.attributes))?;
        m.serialize_entry("droppedAttributesCount", &self.0.dropped_attributes_count)?;
        m.end()
    }
}

impl Serialize for J<'_, pt::ScopeSpans> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let ss = self.0;
        let mut m = ser.serialize_map(None)?;
        if let Some(s) = &ss.scope {
            m.serialize_entry("scope", &J(s))?;
        }
        m.serialize_entry("spans", &Seq(&ss.spans))?;
        m.serialize_entry("schemaUrl", &ss.schema_url)?;
        m.end()
    }
}

impl Serialize for J<'_, pc::InstrumentationScope> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut m = ser.serialize_map(Some(4))?;
        m.serialize_entry("name", &s.name)?;
        m.serialize_entry("version", &s.version)?;
        m.serialize_entry("attributes", &Seq(&s.attributes))?;
        m.serialize_entry("droppedAttributesCount", &s.dropped_attributes_count)?;
        m.end()
    }
}

impl Serialize for J<'_, pt::Span> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("traceId", &Hex(&s.trace_id))?;
        m.serialize_entry("spanId", &Hex(&s.span_id))?;
        if !s.parent_span_id.is_empty() {
            m.serialize_entry("parentSpanId", &Hex(&s.parent_span_id))?;
        }
        m.serialize_entry("traceState", &s.trace_state)?;
        m.serialize_entry("flags", &s.flags)?;
        m.serialize_entry("name", &s.name)?;
        m.serialize_entry("kind", &s.kind)?;
        m.serialize_entry("startTimeUnixNano", &Dec(s.start_time_unix_nano))?;
        m.serialize_entry("endTimeUnixNano", &Dec(s.end_time_unix_nano))?;
        m.serialize_entry("attributes", &Seq(&s.attributes))?;
        m.serialize_entry("droppedAttributesCount", &s.dropped_attributes_count)?;
        m.serialize_entry("events", &Seq(&s.events))?;
        m.serialize_entry("droppedEventsCount", &s.dropped_events_count)?;
        m.serialize_entry("links", &Seq(&s.links))?;
        m.serialize_entry("droppedLinksCount", &s.dropped_links_count)?;
        match &s.status {
            Some(st) => m.serialize_entry("status", &J(st))?,
            None => m.serialize_entry("status", &Empty)?,
        }
        m.end()
    }
}

impl Serialize for J<'_, pt::Status> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(2))?;
        m.serialize_entry("message", &self.0.message)?;
        m.serialize_entry("code", &self.0.code)?;
        m.end()
    }
}

impl Serialize for J<'_, pt::span::Event> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = ser.serialize_map(Some(4))?;
        m.serialize_entry("timeUnixNano", &Dec(e.time_unix_nano))?;
        m.serialize_entry("name", &e.name)?;
        m.serialize_entry("attributes", &Seq(&e.attributes))?;
        m.serialize_entry("droppedAttributesCount", &e.dropped_attributes_count)?;
        m.end()
    }
}

impl Serialize for J<'_, pt::span::Link> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = ser.serialize_map(Some(6))?;
        m.serialize_entry("traceId", &Hex(&l.trace_id))?;
        m.serialize_entry("spanId", &Hex(&l.span_id))?;
        m.serialize_entry("traceState", &l.trace_state)?;
        m.serialize_entry("attributes", &Seq(&l.attributes))?;
        m.serialize_entry("droppedAttributesCount", &l.dropped_attributes_count)?;
        m.serialize_entry("flags", &l.flags)?;
        m.end()
    }
}

impl Serialize for J<'_, pc::KeyValue> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(2))?;
        m.serialize_entry("key", &self.0.key)?;
        match &self.0.value {
            Some(v) => m.serialize_entry("value", &J(v))?,
            None => m.serialize_entry("value", &Empty)?,
        }
        m.end()
    }
}

impl Serialize for J<'_, pc::AnyValue> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use pc::any_value::Value as V;
        let mut m = ser.serialize_map(Some(1))?;
        match &self.0.value {
            // String-table indexes only occur in profiles, never in traces.
            None | Some(V::StringValueStrindex(_)) => {}
            Some(V::StringValue(s)) => m.serialize_entry("stringValue", s)?,
            Some(V::BoolValue(b)) => m.serialize_entry("boolValue", b)?,
            Some(V::IntValue(i)) => m.serialize_entry("intValue", &i.to_string())?,
            Some(V::DoubleValue(d)) if d.is_finite() => m.serialize_entry("doubleValue", d)?,
            Some(V::DoubleValue(d)) => {
                let s = if d.is_nan() {
                    "NaN"
                } else if *d > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                };
                m.serialize_entry("doubleValue", s)?
            }
            Some(V::BytesValue(b)) => m.serialize_entry(
                "bytesValue",
                &base64::engine::general_purpose::STANDARD.encode(b),
            )?,
            Some(V::ArrayValue(a)) => m.serialize_entry("arrayValue", &Values(&a.values))?,
            Some(V::KvlistValue(kv)) => m.serialize_entry("kvlistValue", &Pairs(&kv.values))?,
        }
        m.end()
    }
}

/// `{"values": [AnyValue...]}`.
struct Values<'a>(&'a [pc::AnyValue]);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(1))?;
        m.serialize_entry("values", &Seq(self.0))?;
        m.end()
    }
}

/// `{"values": [KeyValue...]}`.
struct Pairs<'a>(&'a [pc::KeyValue]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(1))?;
        m.serialize_entry("values", &Seq(self.0))?;
        m.end()
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
        let v = serde_json::to_value(traces_to_otlp_json(&spans)).unwrap();
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
