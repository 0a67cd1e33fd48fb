//! The whole span as JSON, kept in `_source` under `span`: a typed form
//! that round-trips every field of [`Span`] exactly (doubles that JSON
//! cannot carry, bytes, nested arrays and maps included).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{
    AttrValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};

pub(super) fn corrupt(msg: impl Into<String>) -> Error {
    Error::Corrupt(format!("span document: {}", msg.into()))
}

// ---- Span → JSON ---------------------------------------------------------
//
// Serialized straight to the output (no intermediate `Value` tree): this
// runs once per span on the ingest path when the Elasticsearch tier is on.

/// The whole span, serialized as its `_source.span` form.
pub struct SpanJson<'a>(pub &'a Span);

/// The span as a `Value` (tests, and callers that edit the document).
pub fn span_to_json(s: &Span) -> Value {
    serde_json::to_value(SpanJson(s)).unwrap_or(Value::Null)
}

impl Serialize for SpanJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let s = self.0;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("trace_id", &s.trace_id.to_hex())?;
        m.serialize_entry("span_id", &s.span_id.to_hex())?;
        if let Some(p) = s.parent_span_id {
            m.serialize_entry("parent_span_id", &p.to_hex())?;
        }
        m.serialize_entry("trace_state", &s.trace_state)?;
        m.serialize_entry("flags", &s.flags)?;
        m.serialize_entry("name", &s.name)?;
        m.serialize_entry("kind", &(s.kind as u8))?;
        m.serialize_entry("start_ns", &s.start_ns)?;
        m.serialize_entry("end_ns", &s.end_ns)?;
        m.serialize_entry("attributes", &Kvs(&s.attributes))?;
        m.serialize_entry("dropped_attributes_count", &s.dropped_attributes_count)?;
        m.serialize_entry("events", &Seq(&s.events, EventJson))?;
        m.serialize_entry("dropped_events_count", &s.dropped_events_count)?;
        m.serialize_entry("links", &Seq(&s.links, LinkJson))?;
        m.serialize_entry("dropped_links_count", &s.dropped_links_count)?;
        m.serialize_entry("status", &StatusJson(&s.status))?;
        m.serialize_entry("resource", &ResourceJson(&s.resource))?;
        m.serialize_entry("scope", &ScopeJson(&s.scope))?;
        m.end()
    }
}

/// A slice serialized as a sequence through a per-item wrapper.
struct Seq<'a, T, W>(&'a [T], fn(&'a T) -> W);

impl<'a, T, W: Serialize> Serialize for Seq<'a, T, W> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        ser.collect_seq(self.0.iter().map(self.1))
    }
}

struct EventJson<'a>(&'a Event);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = ser.serialize_map(Some(4))?;
        m.serialize_entry("time_ns", &e.time_ns)?;
        m.serialize_entry("name", &e.name)?;
        m.serialize_entry("attributes", &Kvs(&e.attributes))?;
        m.serialize_entry("dropped_attributes_count", &e.dropped_attributes_count)?;
        m.end()
    }
}

struct LinkJson<'a>(&'a Link);

impl Serialize for LinkJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = ser.serialize_map(Some(6))?;
        m.serialize_entry("trace_id", &l.trace_id.to_hex())?;
        m.serialize_entry("span_id", &l.span_id.to_hex())?;
        m.serialize_entry("trace_state", &l.trace_state)?;
        m.serialize_entry("attributes", &Kvs(&l.attributes))?;
        m.serialize_entry("dropped_attributes_count", &l.dropped_attributes_count)?;
        m.serialize_entry("flags", &l.flags)?;
        m.end()
    }
}

struct StatusJson<'a>(&'a Status);

impl Serialize for StatusJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(2))?;
        m.serialize_entry("code", &(self.0.code as u8))?;
        m.serialize_entry("message", &self.0.message)?;
        m.end()
    }
}

struct ResourceJson<'a>(&'a Resource);

impl Serialize for ResourceJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = ser.serialize_map(Some(3))?;
        m.serialize_entry("attributes", &Kvs(&r.attributes))?;
        m.serialize_entry("dropped_attributes_count", &r.dropped_attributes_count)?;
        m.serialize_entry("schema_url", &r.schema_url)?;
        m.end()
    }
}

struct ScopeJson<'a>(&'a Scope);

impl Serialize for ScopeJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = ser.serialize_map(Some(5))?;
        m.serialize_entry("name", &c.name)?;
        m.serialize_entry("version", &c.version)?;
        m.serialize_entry("attributes", &Kvs(&c.attributes))?;
        m.serialize_entry("dropped_attributes_count", &c.dropped_attributes_count)?;
        m.serialize_entry("schema_url", &c.schema_url)?;
        m.end()
    }
}

/// Attributes: a sequence of typed values, each with its key under `k`.
struct Kvs<'a>(&'a [KeyValue]);

impl Serialize for Kvs<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        ser.collect_seq(self.0.iter().map(|kv| Typed(&kv.value, Some(&kv.key))))
    }
}

/// A typed value: `{"s": ..}`, `{"b": ..}`, `{"i": ..}`, `{"d": ..}`,
/// `{"y": base64}`, `{"a": [..]}`, `{"m": [kv..]}`, `{"e": null}`, plus
/// `"k"` when it is an attribute. Doubles that JSON cannot carry (NaN,
/// ±inf) are written as strings.
struct Typed<'a>(&'a AttrValue, Option<&'a str>);

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(1 + usize::from(self.1.is_some())))?;
        match self.0 {
            AttrValue::Str(s) => m.serialize_entry("s", s)?,
            AttrValue::Bool(b) => m.serialize_entry("b", b)?,
            AttrValue::Int(i) => m.serialize_entry("i", i)?,
            AttrValue::Double(d) if d.is_finite() => m.serialize_entry("d", d)?,
            AttrValue::Double(d) => m.serialize_entry("d", &d.to_string())?,
            AttrValue::Bytes(b) => {
                m.serialize_entry("y", &base64::engine::general_purpose::STANDARD.encode(b))?
            }
            AttrValue::Array(a) => {
                m.serialize_entry("a", &Seq(a, |v: &AttrValue| Typed(v, None)))?
            }
            AttrValue::Map(kvs) => m.serialize_entry("m", &Kvs(kvs))?,
            AttrValue::Empty => m.serialize_entry("e", &())?,
        }
        if let Some(k) = self.1 {
            m.serialize_entry("k", k)?;
        }
        m.end()
    }
}

// ---- JSON → Span ---------------------------------------------------------

fn get<'a>(v: &'a Value, key: &str) -> Result<&'a Value> {
    v.get(key).ok_or_else(|| corrupt(format!("missing {key}")))
}

fn str_of(v: &Value, key: &str) -> Result<String> {
    get(v, key)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| corrupt(format!("{key} is not a string")))
}

fn u64_of(v: &Value, key: &str) -> Result<u64> {
    get(v, key)?
        .as_u64()
        .ok_or_else(|| corrupt(format!("{key} is not an unsigned integer")))
}

fn u32_of(v: &Value, key: &str) -> Result<u32> {
    u32::try_from(u64_of(v, key)?).map_err(|_| corrupt(format!("{key} out of range")))
}

fn arr_of<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>> {
    get(v, key)?
        .as_array()
        .ok_or_else(|| corrupt(format!("{key} is not an array")))
}

fn trace_id_of(v: &Value, key: &str) -> Result<TraceId> {
    let s = str_of(v, key)?;
    TraceId::from_hex(&s).ok_or_else(|| corrupt(format!("bad {key} {s:?}")))
}

fn span_id_of(v: &Value, key: &str) -> Result<SpanId> {
    let s = str_of(v, key)?;
    SpanId::from_hex(&s).ok_or_else(|| corrupt(format!("bad {key} {s:?}")))
}

pub fn span_from_json(v: &Value) -> Result<Span> {
    let parent_span_id = match v.get("parent_span_id") {
        None | Some(Value::Null) => None,
        Some(_) => Some(span_id_of(v, "parent_span_id")?),
    };
    let status = get(v, "status")?;
    let resource = get(v, "resource")?;
    let scope = get(v, "scope")?;
    Ok(Span {
        trace_id: trace_id_of(v, "trace_id")?,
        span_id: span_id_of(v, "span_id")?,
        parent_span_id,
        trace_state: str_of(v, "trace_state")?,
        flags: u32_of(v, "flags")?,
        name: str_of(v, "name")?,
        kind: SpanKind::from_i32(u32_of(v, "kind")? as i32),
        start_ns: u64_of(v, "start_ns")?,
        end_ns: u64_of(v, "end_ns")?,
        attributes: kvs_from_json(get(v, "attributes")?)?,
        dropped_attributes_count: u32_of(v, "dropped_attributes_count")?,
        events: arr_of(v, "events")?
            .iter()
            .map(|e| {
                Ok(Event {
                    time_ns: u64_of(e, "time_ns")?,
                    name: str_of(e, "name")?,
                    attributes: kvs_from_json(get(e, "attributes")?)?,
                    dropped_attributes_count: u32_of(e, "dropped_attributes_count")?,
                })
            })
            .collect::<Result<_>>()?,
        dropped_events_count: u32_of(v, "dropped_events_count")?,
        links: arr_of(v, "links")?
            .iter()
            .map(|l| {
                Ok(Link {
                    trace_id: trace_id_of(l, "trace_id")?,
                    span_id: span_id_of(l, "span_id")?,
                    trace_state: str_of(l, "trace_state")?,
                    attributes: kvs_from_json(get(l, "attributes")?)?,
                    dropped_attributes_count: u32_of(l, "dropped_attributes_count")?,
                    flags: u32_of(l, "flags")?,
                })
            })
            .collect::<Result<_>>()?,
        dropped_links_count: u32_of(v, "dropped_links_count")?,
        status: Status {
            code: StatusCode::from_i32(u32_of(status, "code")? as i32),
            message: str_of(status, "message")?,
        },
        resource: Arc::new(Resource {
            attributes: kvs_from_json(get(resource, "attributes")?)?,
            dropped_attributes_count: u32_of(resource, "dropped_attributes_count")?,
            schema_url: str_of(resource, "schema_url")?,
        }),
        scope: Arc::new(Scope {
            name: str_of(scope, "name")?,
            version: str_of(scope, "version")?,
            attributes: kvs_from_json(get(scope, "attributes")?)?,
            dropped_attributes_count: u32_of(scope, "dropped_attributes_count")?,
            schema_url: str_of(scope, "schema_url")?,
        }),
    })
}

fn kvs_from_json(v: &Value) -> Result<Vec<KeyValue>> {
    let arr = v
        .as_array()
        .ok_or_else(|| corrupt("attributes is not an array"))?;
    arr.iter()
        .map(|o| {
            Ok(KeyValue {
                key: str_of(o, "k")?,
                value: value_from_json(o)?,
            })
        })
        .collect()
}

fn value_from_json(o: &Value) -> Result<AttrValue> {
    let m = o
        .as_object()
        .ok_or_else(|| corrupt("value is not an object"))?;
    // The tag is the one key other than "k".
    let tagged: BTreeMap<&str, &Value> = m
        .iter()
        .filter(|(k, _)| k.as_str() != "k")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let (tag, v) = match tagged.into_iter().next() {
        Some(t) => t,
        None => return Err(corrupt("untyped value")),
    };
    let bad = || corrupt(format!("bad {tag:?} value"));
    Ok(match tag {
        "s" => AttrValue::Str(v.as_str().ok_or_else(bad)?.to_string()),
        "b" => AttrValue::Bool(v.as_bool().ok_or_else(bad)?),
        "i" => AttrValue::Int(v.as_i64().ok_or_else(bad)?),
        "d" => match v {
            Value::String(s) => AttrValue::Double(s.parse().map_err(|_| bad())?),
            _ => AttrValue::Double(v.as_f64().ok_or_else(bad)?),
        },
        "y" => AttrValue::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().ok_or_else(bad)?)
                .map_err(|_| bad())?,
        ),
        "a" => AttrValue::Array(
            v.as_array()
                .ok_or_else(bad)?
                .iter()
                .map(value_from_json)
                .collect::<Result<_>>()?,
        ),
        "m" => AttrValue::Map(kvs_from_json(v)?),
        "e" => AttrValue::Empty,
        _ => return Err(bad()),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A span that exercises every field and every value type.
    pub fn full_span(seed: u8) -> Span {
        let all_types = vec![
            KeyValue::new("s", AttrValue::Str("héllo \"q\" \n".into())),
            KeyValue::new("b", AttrValue::Bool(true)),
            KeyValue::new("i", AttrValue::Int(i64::MIN)),
            KeyValue::new("d", AttrValue::Double(0.1 + 0.2)),
            KeyValue::new("inf", AttrValue::Double(f64::NEG_INFINITY)),
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
                AttrValue::Map(vec![KeyValue::new("inner", AttrValue::Double(-0.0))]),
            ),
            KeyValue::new("e", AttrValue::Empty),
        ];
        Span {
            trace_id: TraceId([seed; 16]),
            span_id: SpanId([seed.wrapping_add(1); 8]),
            parent_span_id: Some(SpanId([9; 8])),
            trace_state: "k=v".into(),
            flags: 0x301,
            name: "GET /users/{id}".into(),
            kind: SpanKind::Server,
            start_ns: 1_704_067_200_123_456_789,
            end_ns: 1_704_067_200_223_456_789,
            attributes: all_types.clone(),
            dropped_attributes_count: 3,
            events: vec![Event {
                time_ns: 1_704_067_200_200_000_001,
                name: "exception".into(),
                attributes: all_types.clone(),
                dropped_attributes_count: 1,
            }],
            dropped_events_count: 2,
            links: vec![Link {
                trace_id: TraceId([7; 16]),
                span_id: SpanId([8; 8]),
                trace_state: "a=b".into(),
                attributes: all_types.clone(),
                dropped_attributes_count: 4,
                flags: 1,
            }],
            dropped_links_count: 5,
            status: Status {
                code: StatusCode::Error,
                message: "boom".into(),
            },
            resource: Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AttrValue::Str("api".into())),
                    KeyValue::new("s", AttrValue::Str("shadowed".into())),
                ],
                dropped_attributes_count: 6,
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            }),
            scope: Arc::new(Scope {
                name: "lib".into(),
                version: "1.0".into(),
                attributes: all_types,
                dropped_attributes_count: 7,
                schema_url: "u".into(),
            }),
        }
    }

    #[test]
    fn every_field_round_trips_through_json_text() {
        for span in [full_span(1), Span::default()] {
            let text = serde_json::to_string(&span_to_json(&span)).unwrap();
            let back = span_from_json(&serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(back, span);
        }
        let mut nan = Span::default();
        nan.attributes
            .push(KeyValue::new("nan", AttrValue::Double(f64::NAN)));
        let back = span_from_json(&span_to_json(&nan)).unwrap();
        assert!(matches!(back.attributes[0].value, AttrValue::Double(d) if d.is_nan()));
    }

    #[test]
    fn malformed_spans_are_errors_not_panics() {
        let mut v = span_to_json(&full_span(2));
        v["attributes"][0] = json!({"k": "x", "q": 1});
        assert!(span_from_json(&v).is_err());
        let mut v = span_to_json(&full_span(2));
        v["kind"] = json!(-1);
        assert!(span_from_json(&v).is_err());
    }
}
