//! OTLP/JSON encoding of the span model, per the OTLP specification's JSON
//! mapping: hex trace and span ids, lowerCamelCase field names, 64-bit
//! integers as decimal strings, enums as integers, bytes as base64. Zero
//! counts and empty strings are omitted (the spec allows it); attribute
//! lists are always present so clients need not guard against absence.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::model::{AttrValue, KeyValue, Resource, Scope, Span};

pub fn any_value(v: &AttrValue) -> Value {
    match v {
        AttrValue::Str(s) => json!({ "stringValue": s }),
        AttrValue::Bool(b) => json!({ "boolValue": b }),
        AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
        AttrValue::Double(d) if d.is_finite() => json!({ "doubleValue": d }),
        // Protobuf JSON spells non-finite doubles as strings.
        AttrValue::Double(d) => {
            let s = if d.is_nan() {
                "NaN"
            } else if *d > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            json!({ "doubleValue": s })
        }
        AttrValue::Bytes(b) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        AttrValue::Array(a) => {
            json!({ "arrayValue": { "values": a.iter().map(any_value).collect::<Vec<_>>() } })
        }
        AttrValue::Map(m) => json!({ "kvlistValue": { "values": key_values(m) } }),
        AttrValue::Empty => json!({}),
    }
}

pub fn key_value(kv: &KeyValue) -> Value {
    json!({ "key": kv.key, "value": any_value(&kv.value) })
}

pub fn key_values(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter().map(key_value).collect()
}

/// Inserts `k: v` unless `v` is the field's default.
fn put_nonzero(m: &mut Map<String, Value>, k: &str, v: u32) {
    if v != 0 {
        m.insert(k.into(), Value::from(v));
    }
}

fn put_nonempty(m: &mut Map<String, Value>, k: &str, v: &str) {
    if !v.is_empty() {
        m.insert(k.into(), Value::from(v));
    }
}

pub fn span(s: &Span) -> Value {
    let mut m = Map::new();
    m.insert("traceId".into(), s.trace_id.to_hex().into());
    m.insert("spanId".into(), s.span_id.to_hex().into());
    put_nonempty(&mut m, "traceState", &s.trace_state);
    if let Some(p) = s.parent_span_id {
        m.insert("parentSpanId".into(), p.to_hex().into());
    }
    put_nonzero(&mut m, "flags", s.flags);
    m.insert("name".into(), s.name.clone().into());
    m.insert("kind".into(), (s.kind as i32).into());
    m.insert("startTimeUnixNano".into(), s.start_ns.to_string().into());
    m.insert("endTimeUnixNano".into(), s.end_ns.to_string().into());
    m.insert("attributes".into(), key_values(&s.attributes).into());
    put_nonzero(&mut m, "droppedAttributesCount", s.dropped_attributes_count);
    let events: Vec<Value> = s
        .events
        .iter()
        .map(|e| {
            let mut em = Map::new();
            em.insert("timeUnixNano".into(), e.time_ns.to_string().into());
            em.insert("name".into(), e.name.clone().into());
            em.insert("attributes".into(), key_values(&e.attributes).into());
            put_nonzero(
                &mut em,
                "droppedAttributesCount",
                e.dropped_attributes_count,
            );
            Value::Object(em)
        })
        .collect();
    m.insert("events".into(), events.into());
    put_nonzero(&mut m, "droppedEventsCount", s.dropped_events_count);
    let links: Vec<Value> = s
        .links
        .iter()
        .map(|l| {
            let mut lm = Map::new();
            lm.insert("traceId".into(), l.trace_id.to_hex().into());
            lm.insert("spanId".into(), l.span_id.to_hex().into());
            put_nonempty(&mut lm, "traceState", &l.trace_state);
            lm.insert("attributes".into(), key_values(&l.attributes).into());
            put_nonzero(
                &mut lm,
                "droppedAttributesCount",
                l.dropped_attributes_count,
            );
            put_nonzero(&mut lm, "flags", l.flags);
            Value::Object(lm)
        })
        .collect();
    m.insert("links".into(), links.into());
    put_nonzero(&mut m, "droppedLinksCount", s.dropped_links_count);
    let mut status = Map::new();
    put_nonempty(&mut status, "message", &s.status.message);
    status.insert("code".into(), (s.status.code as i32).into());
    m.insert("status".into(), Value::Object(status));
    Value::Object(m)
}

type Grouped<'a> = Vec<(Arc<Resource>, Vec<(Arc<Scope>, Vec<&'a Span>)>)>;

/// Groups spans by resource, then scope, in first-seen order (equal
/// resources or scopes held in different `Arc`s merge).
pub fn group(spans: &[Span]) -> Grouped<'_> {
    let mut out: Grouped<'_> = Vec::new();
    for s in spans {
        let ri = match out
            .iter()
            .position(|(r, _)| Arc::ptr_eq(r, &s.resource) || **r == *s.resource)
        {
            Some(i) => i,
            None => {
                out.push((s.resource.clone(), Vec::new()));
                out.len() - 1
            }
        };
        let scopes = &mut out[ri].1;
        match scopes
            .iter_mut()
            .find(|(sc, _)| Arc::ptr_eq(sc, &s.scope) || **sc == *s.scope)
        {
            Some((_, v)) => v.push(s),
            None => scopes.push((s.scope.clone(), vec![s])),
        }
    }
    out
}

/// The `resourceSpans` array for a set of spans.
pub fn resource_spans(spans: &[Span]) -> Vec<Value> {
    group(spans)
        .into_iter()
        .map(|(r, scopes)| {
            let mut res = Map::new();
            res.insert("attributes".into(), key_values(&r.attributes).into());
            put_nonzero(
                &mut res,
                "droppedAttributesCount",
                r.dropped_attributes_count,
            );
            let scope_spans: Vec<Value> = scopes
                .into_iter()
                .map(|(sc, spans)| {
                    let mut scope = Map::new();
                    put_nonempty(&mut scope, "name", &sc.name);
                    put_nonempty(&mut scope, "version", &sc.version);
                    scope.insert("attributes".into(), key_values(&sc.attributes).into());
                    put_nonzero(
                        &mut scope,
                        "droppedAttributesCount",
                        sc.dropped_attributes_count,
                    );
                    let mut ss = Map::new();
                    ss.insert("scope".into(), Value::Object(scope));
                    ss.insert(
                        "spans".into(),
                        spans.into_iter().map(span).collect::<Vec<_>>().into(),
                    );
                    put_nonempty(&mut ss, "schemaUrl", &sc.schema_url);
                    Value::Object(ss)
                })
                .collect();
            let mut rs = Map::new();
            rs.insert("resource".into(), Value::Object(res));
            rs.insert("scopeSpans".into(), scope_spans.into());
            put_nonempty(&mut rs, "schemaUrl", &r.schema_url);
            Value::Object(rs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::span as mk;
    use super::*;
    use crate::model::{SpanKind, StatusCode};

    #[test]
    fn values_follow_the_otlp_json_mapping() {
        assert_eq!(
            any_value(&AttrValue::Int(i64::MAX)),
            json!({"intValue": "9223372036854775807"})
        );
        assert_eq!(
            any_value(&AttrValue::Double(f64::NAN)),
            json!({"doubleValue": "NaN"})
        );
        assert_eq!(
            any_value(&AttrValue::Bytes(vec![1, 2])),
            json!({"bytesValue": "AQI="})
        );
        assert_eq!(
            any_value(&AttrValue::Array(vec![AttrValue::Bool(true)])),
            json!({"arrayValue": {"values": [{"boolValue": true}]}})
        );
        assert_eq!(
            any_value(&AttrValue::Map(vec![KeyValue::new(
                "k",
                AttrValue::Str("v".into())
            )])),
            json!({"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}})
        );
        assert_eq!(any_value(&AttrValue::Empty), json!({}));
    }

    #[test]
    fn spans_group_by_resource_and_scope_with_string_times_and_int_enums() {
        let mut a = mk(1, 1, None, "a", "root", 1_700_000_000_123_456_789, 10);
        a.kind = SpanKind::Server;
        a.status.code = StatusCode::Error;
        let b = mk(1, 2, Some(1), "a", "child", 1_700_000_000_123_456_790, 5);
        let c = mk(1, 3, Some(2), "b", "db", 1_700_000_000_123_456_791, 1);
        let rs = resource_spans(&[a, b, c]);
        assert_eq!(rs.len(), 2);
        let spans = &rs[0]["scopeSpans"][0]["spans"];
        assert_eq!(spans.as_array().unwrap().len(), 2);
        assert_eq!(rs[0]["scopeSpans"][0]["scope"]["name"], "lib");
        let s = &spans[0];
        assert_eq!(s["traceId"], "01".repeat(16));
        assert_eq!(s["spanId"], "0000000000000001");
        assert!(s.get("parentSpanId").is_none());
        assert_eq!(s["kind"], 2);
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(s["startTimeUnixNano"], "1700000000123456789");
        assert_eq!(spans[1]["parentSpanId"], "0000000000000001");
        assert_eq!(
            rs[0]["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "a"}})
        );
    }
}
