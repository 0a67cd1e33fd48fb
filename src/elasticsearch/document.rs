//! Span → Elasticsearch document and `_bulk` entry. The indexed fields are
//! derived from the span; the span itself is kept whole under `span` in
//! `_source` (see [`super::span_json`]).

use std::collections::HashSet;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

use super::mapping::{attr_field_key, index_value, indexable_key, tag_field_name, ATTRS, TAGS};
use super::span_json::{corrupt, span_from_json, SpanJson};
use super::{daily_index, format_rfc3339_nanos};
use crate::error::{Error, Result};
use crate::model::{Span, SpanId, StatusCode, TraceId};

/// Document id: trace id + span id, so redelivery overwrites, never duplicates.
pub fn doc_id(trace_id: &TraceId, span_id: &SpanId) -> String {
    format!("{}{}", trace_id.to_hex(), span_id.to_hex())
}

pub fn status_text(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Unset => "UNSET",
        StatusCode::Ok => "OK",
        StatusCode::Error => "ERROR",
    }
}

/// The document indexed for a span, serialized straight into the `_bulk`
/// body (no intermediate `Value` tree).
pub struct Document<'a> {
    span: &'a Span,
    /// (field name, indexed text) of allow-listed keys, then of the rest.
    tags: Vec<(String, String)>,
    attrs: Vec<(String, String)>,
}

/// Builds the indexed fields of `span`'s document.
pub fn document<'a>(span: &'a Span, allow_list: &HashSet<String>) -> Document<'a> {
    let (mut tags, mut attrs) = (Vec::new(), Vec::new());
    // Each key is indexed with the value search compares: the span
    // attribute, else the resource attribute (see model::tag_matches).
    let mut seen = HashSet::new();
    for kv in span
        .attributes
        .iter()
        .chain(span.resource.attributes.iter())
    {
        if !seen.insert(kv.key.as_str()) {
            continue;
        }
        let Some(v) = span.attr(&kv.key) else {
            continue;
        };
        let text = index_value(&v.as_text());
        let tag = allow_list.contains(kv.key.as_str()) && indexable_key(&kv.key);
        let field = if tag {
            tag_field_name(&kv.key)
        } else {
            attr_field_key(&kv.key)
        };
        // Keys are unique here and both field namings are injective, so no
        // field repeats within an object (Elasticsearch would refuse it).
        if tag { &mut tags } else { &mut attrs }.push((field, text));
    }
    Document { span, tags, attrs }
}

/// The document as a `Value` (tests, and callers that inspect it).
pub fn to_document(span: &Span, allow_list: &HashSet<String>) -> Value {
    serde_json::to_value(document(span, allow_list)).unwrap_or(Value::Null)
}

/// Pairs serialized as one JSON object.
struct Fields<'a>(&'a [(String, String)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        ser.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let span = self.span;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("trace_id", &span.trace_id.to_hex())?;
        m.serialize_entry("span_id", &span.span_id.to_hex())?;
        if let Some(p) = span.parent_span_id {
            m.serialize_entry("parent_span_id", &p.to_hex())?;
        }
        m.serialize_entry("service", span.service_name())?;
        m.serialize_entry("operation", &span.name)?;
        m.serialize_entry("kind", span.kind.as_str())?;
        m.serialize_entry("status", status_text(span.status.code))?;
        m.serialize_entry("start_time", &format_rfc3339_nanos(span.start_ns))?;
        m.serialize_entry("duration_ns", &span.duration_ns())?;
        m.serialize_entry(TAGS, &Fields(&self.tags))?;
        m.serialize_entry(ATTRS, &Fields(&self.attrs))?;
        if !span.events.is_empty() {
            let names: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
            m.serialize_entry("event_names", &names)?;
        }
        m.serialize_entry("span", &SpanJson(span))?;
        m.end()
    }
}

/// One `_bulk` entry (action line and document line, each ending in '\n').
pub fn bulk_entry(
    prefix: &str,
    span: &Span,
    allow_list: &HashSet<String>,
    route_by_trace: bool,
) -> Result<Vec<u8>> {
    let mut meta = json!({
        "_index": daily_index(prefix, span.start_ns),
        "_id": doc_id(&span.trace_id, &span.span_id),
    });
    if route_by_trace {
        meta["routing"] = Value::from(span.trace_id.to_hex());
    }
    let mut out = serde_json::to_vec(&json!({ "index": meta }))
        .map_err(|e| Error::Internal(e.to_string()))?;
    out.push(b'\n');
    serde_json::to_writer(&mut out, &document(span, allow_list))
        .map_err(|e| Error::Internal(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

/// The span from a document's `_source`.
pub fn from_source(source: &Value) -> Result<Span> {
    span_from_json(
        source
            .get("span")
            .ok_or_else(|| corrupt("document without span"))?,
    )
}

#[cfg(test)]
mod tests {
    use super::super::span_json::tests::full_span;
    use super::*;

    #[test]
    fn indexed_fields_follow_search_semantics() {
        let span = full_span(1);
        let allow: HashSet<String> = ["s", "service.name"]
            .into_iter()
            .map(String::from)
            .collect();
        let doc = to_document(&span, &allow);
        assert_eq!(doc["service"], "api");
        assert_eq!(doc["status"], "ERROR");
        assert_eq!(doc["kind"], "server");
        assert_eq!(doc["duration_ns"], 100_000_000);
        assert_eq!(doc["start_time"], "2024-01-01T00:00:00.123456789Z");
        // The span attribute shadows the resource attribute of the same key.
        assert_eq!(doc["tags"]["s"], "héllo \"q\" \n");
        assert_eq!(doc["tags"]["service%2Ename"], "api");
        assert_eq!(doc["attrs"]["i"], i64::MIN.to_string());
        assert_eq!(doc["attrs"]["a"], "[1,\"x\",null]");
        assert!(doc["attrs"].get("service.name").is_none());
        assert_eq!(doc["event_names"], json!(["exception"]));
    }

    #[test]
    fn malformed_sources_are_errors_not_panics() {
        for bad in [
            json!({}),
            json!({"span": 1}),
            json!({"span": {"trace_id": "zz"}}),
            json!({"span": {"attributes": [{"k": "x"}]}}),
        ] {
            assert!(from_source(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bulk_entry_is_two_lines_with_routing() {
        let span = full_span(3);
        let e = bulk_entry("p", &span, &HashSet::new(), true).unwrap();
        let text = String::from_utf8(e).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let meta: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(meta["index"]["_index"], "p-spans-2024.01.01");
        assert_eq!(
            meta["index"]["_id"],
            format!("{}{}", span.trace_id, span.span_id)
        );
        assert_eq!(meta["index"]["routing"], span.trace_id.to_hex());
    }
}
