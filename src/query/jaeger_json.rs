//! Jaeger v1 trace JSON.
//!
//! OTLP concepts without a Jaeger field become tags the way the OTel
//! Collector's Jaeger translator writes them: `span.kind`,
//! `otel.status_code` / `otel.status_description`, `error=true`,
//! `otel.scope.name` / `otel.scope.version`, `w3c.tracestate`; the parent
//! becomes a CHILD_OF reference and links FOLLOWS_FROM references.

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::skew;
use crate::model::{AttrValue, KeyValue, Resource, Span, SpanKind, StatusCode, TraceId};

// The answer is serialised straight from the spans through borrowed views:
// building a `serde_json::Value` tree first cost most of a search answer's
// time (a BTreeMap per span, tag and log, each built and dropped).

/// One Jaeger tag.
#[derive(Serialize)]
struct Tag<'a> {
    key: &'a str,
    #[serde(rename = "type")]
    ty: &'static str,
    value: TagValue<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum TagValue<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    Double(f64),
}

fn tag<'a>(key: &'a str, v: &'a AttrValue) -> Tag<'a> {
    let (ty, value) = match v {
        AttrValue::Str(s) => ("string", TagValue::Str(Cow::Borrowed(s))),
        AttrValue::Bool(b) => ("bool", TagValue::Bool(*b)),
        AttrValue::Int(i) => ("int64", TagValue::Int(*i)),
        AttrValue::Double(d) if d.is_finite() => ("float64", TagValue::Double(*d)),
        AttrValue::Bytes(_) => ("binary", TagValue::Str(Cow::Owned(v.as_text()))),
        // NaN/Inf have no JSON number; arrays and maps become JSON text.
        _ => ("string", TagValue::Str(Cow::Owned(v.as_text()))),
    };
    Tag { key, ty, value }
}

fn text<'a>(key: &'a str, v: &'a str) -> Tag<'a> {
    Tag {
        key,
        ty: "string",
        value: TagValue::Str(Cow::Borrowed(v)),
    }
}

fn tags<'a>(kvs: impl IntoIterator<Item = &'a KeyValue>) -> Vec<Tag<'a>> {
    kvs.into_iter().map(|kv| tag(&kv.key, &kv.value)).collect()
}

fn span_tags(s: &Span) -> Vec<Tag<'_>> {
    let mut out = tags(&s.attributes);
    let has = |k: &str| s.attributes.iter().any(|kv| kv.key == k);
    let mut add = |t: Tag<'static>| {
        if !has(t.key) {
            out.push(t);
        }
    };
    if s.kind != SpanKind::Unspecified {
        add(text("span.kind", s.kind.as_str()));
    }
    match s.status.code {
        StatusCode::Unset => {}
        StatusCode::Ok => add(text("otel.status_code", "OK")),
        StatusCode::Error => {
            add(text("otel.status_code", "ERROR"));
            add(Tag {
                key: "error",
                ty: "bool",
                value: TagValue::Bool(true),
            });
        }
    }
    for (key, v) in [
        ("otel.status_description", &s.status.message),
        ("otel.scope.name", &s.scope.name),
        ("otel.scope.version", &s.scope.version),
        ("w3c.tracestate", &s.trace_state),
    ] {
        if !v.is_empty() && !has(key) {
            out.push(text(key, v));
        }
    }
    out
}

#[derive(Serialize)]
struct Reference {
    #[serde(rename = "refType")]
    ref_type: &'static str,
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Serialize)]
struct Log<'a> {
    timestamp: u64,
    fields: Vec<Tag<'a>>,
}

#[derive(Serialize)]
struct SpanView<'a> {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(rename = "operationName")]
    operation_name: &'a str,
    references: Vec<Reference>,
    flags: u32,
    #[serde(rename = "startTime")]
    start_time: u64,
    duration: u64,
    tags: Vec<Tag<'a>>,
    logs: Vec<Log<'a>>,
    #[serde(rename = "processID")]
    process_id: String,
    warnings: Option<&'a [String]>,
}

fn span_view<'a>(s: &'a Span, process: usize, warnings: Option<&'a [String]>) -> SpanView<'a> {
    let mut references = Vec::with_capacity(s.links.len() + 1);
    if let Some(p) = s.parent_span_id {
        references.push(Reference {
            ref_type: "CHILD_OF",
            trace_id: s.trace_id.to_hex(),
            span_id: p.to_hex(),
        });
    }
    references.extend(s.links.iter().map(|l| Reference {
        ref_type: "FOLLOWS_FROM",
        trace_id: l.trace_id.to_hex(),
        span_id: l.span_id.to_hex(),
    }));
    let logs = s
        .events
        .iter()
        .map(|e| {
            let mut fields = Vec::with_capacity(e.attributes.len() + 1);
            fields.push(text("event", &e.name));
            fields.extend(tags(&e.attributes));
            Log {
                timestamp: e.time_ns / 1000,
                fields,
            }
        })
        .collect();
    SpanView {
        trace_id: s.trace_id.to_hex(),
        span_id: s.span_id.to_hex(),
        operation_name: &s.name,
        references,
        flags: s.flags & 0xff,
        start_time: s.start_ns / 1000,
        duration: s.duration_ns() / 1000,
        tags: span_tags(s),
        logs,
        process_id: format!("p{}", process + 1),
        warnings,
    }
}

/// `processes`: one per distinct resource, numbered in first-seen order.
struct Processes<'a>(Vec<&'a Resource>);

impl Serialize for Processes<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Process<'a> {
            #[serde(rename = "serviceName")]
            service_name: &'a str,
            tags: Vec<Tag<'a>>,
        }
        let mut m = ser.serialize_map(Some(self.0.len()))?;
        for (i, r) in self.0.iter().enumerate() {
            let rest = r.attributes.iter().filter(|kv| kv.key != "service.name");
            let p = Process {
                service_name: r.service_name(),
                tags: tags(rest),
            };
            m.serialize_entry(&format!("p{}", i + 1), &p)?;
        }
        m.end()
    }
}

/// One trace as Jaeger v1 JSON; serialises without an intermediate tree.
/// `warnings[i]` belongs to `spans[i]` (may be shorter).
#[derive(Debug)]
pub struct JaegerTrace {
    id: TraceId,
    spans: Vec<Span>,
    warnings: Vec<Vec<String>>,
}

impl JaegerTrace {
    pub fn new(id: TraceId, spans: Vec<Span>, warnings: Vec<Vec<String>>) -> JaegerTrace {
        JaegerTrace {
            id,
            spans,
            warnings,
        }
    }
}

impl Serialize for JaegerTrace {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            #[serde(rename = "traceID")]
            trace_id: String,
            spans: Vec<SpanView<'a>>,
            processes: Processes<'a>,
            warnings: Option<()>,
        }
        let mut processes: Vec<&Resource> = Vec::new();
        let mut spans = Vec::with_capacity(self.spans.len());
        for (i, s) in self.spans.iter().enumerate() {
            let r = &*s.resource;
            let pi = match processes
                .iter()
                .position(|p| std::ptr::eq(*p, r) || **p == *r)
            {
                Some(p) => p,
                None => {
                    processes.push(r);
                    processes.len() - 1
                }
            };
            let w = self
                .warnings
                .get(i)
                .filter(|w| !w.is_empty())
                .map(Vec::as_slice);
            spans.push(span_view(s, pi, w));
        }
        View {
            trace_id: self.id.to_hex(),
            spans,
            processes: Processes(processes),
            warnings: None,
        }
        .serialize(ser)
    }
}

/// A trace after clock-skew adjustment (unless `raw`).
pub fn render_adjusted(id: TraceId, mut spans: Vec<Span>, raw: bool) -> JaegerTrace {
    if raw {
        return JaegerTrace::new(id, spans, Vec::new());
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
    JaegerTrace::new(id, spans, warnings)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::span;
    use super::*;
    use crate::model::{Event, Link, SpanId};
    use serde_json::{json, Value};

    fn json(t: &JaegerTrace) -> Value {
        serde_json::to_value(t).unwrap()
    }

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
        let v = json(&JaegerTrace::new(
            TraceId([1; 16]),
            vec![root, child],
            vec![vec![], vec!["w".into()]],
        ));
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
        let v = json(&render_adjusted(TraceId([1; 16]), spans.clone(), false));
        assert_eq!(v["spans"][1]["startTime"], 1400);
        assert!(v["spans"][1]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("+1400µs"));
        let raw = json(&render_adjusted(TraceId([1; 16]), spans, true));
        assert_eq!(raw["spans"][1]["startTime"], 0);
    }
}
