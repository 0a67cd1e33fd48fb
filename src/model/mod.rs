//! The span model every stage shares: OTLP decodes into it, the hot store
//! and Elasticsearch persist it, the query API renders it.

use std::fmt;
use std::sync::Arc;

pub mod catalog;
mod storage;
/// The sampling fallback of the catalog and graph defaults.
pub mod storage_sampling {
    pub use super::storage::{sample_traces, SAMPLE_GRAPH_TRACES, SAMPLE_TRACES};
}
pub use catalog::{EdgeCounts, Graph, KeyValues, TagCatalog};
pub use storage::{
    dedup_spans, sample_traces, sort_hits, top_hits, Operation, ScanPage, SpanReader, SpanWriter,
    TraceHit, MAX_TRACE_SPANS,
};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

macro_rules! hex_id {
    ($t:ident, $n:expr) => {
        impl $t {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// Parses lower- or upper-case hex. Shorter input is left-padded
            /// with zeros, as Jaeger does for 64-bit trace ids.
            pub fn from_hex(s: &str) -> Option<Self> {
                if s.is_empty() || s.len() > $n * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let padded = format!("{:0>width$}", s, width = $n * 2);
                let mut out = [0u8; $n];
                hex::decode_to_slice(padded, &mut out).ok()?;
                Some($t(out))
            }
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                <[u8; $n]>::try_from(b).ok().map($t)
            }
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|b| *b == 0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}
hex_id!(TraceId, 16);
hex_id!(SpanId, 8);

/// An OTLP AnyValue.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
    Map(Vec<KeyValue>),
    Empty,
}

impl AttrValue {
    /// The value as search compares it: tags are matched on this text form.
    pub fn as_text(&self) -> String {
        match self {
            AttrValue::Str(s) => s.clone(),
            AttrValue::Bool(b) => b.to_string(),
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Double(d) => d.to_string(),
            AttrValue::Bytes(b) => {
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)
            }
            AttrValue::Array(_) | AttrValue::Map(_) => {
                serde_json::to_string(&self.to_json()).unwrap_or_default()
            }
            AttrValue::Empty => String::new(),
        }
    }

    /// Plain JSON rendering (used for Jaeger tags of complex type).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            AttrValue::Str(s) => Value::from(s.clone()),
            AttrValue::Bool(b) => Value::from(*b),
            AttrValue::Int(i) => Value::from(*i),
            AttrValue::Double(d) => Value::from(*d),
            AttrValue::Bytes(_) => Value::from(self.as_text()),
            AttrValue::Array(a) => Value::Array(a.iter().map(|v| v.to_json()).collect()),
            AttrValue::Map(m) => Value::Object(
                m.iter()
                    .map(|kv| (kv.key.clone(), kv.value.to_json()))
                    .collect(),
            ),
            AttrValue::Empty => Value::Null,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    pub key: String,
    pub value: AttrValue,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: AttrValue) -> Self {
        KeyValue {
            key: key.into(),
            value,
        }
    }
}

pub fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AttrValue> {
    attrs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// OTLP span kind, numbered as in the proto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum SpanKind {
    #[default]
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    pub fn from_i32(v: i32) -> SpanKind {
        match v {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
    /// Lower-case name, as Jaeger's `span.kind` tag and `spanKind` parameter use.
    pub fn as_str(&self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
    pub fn parse(s: &str) -> Option<SpanKind> {
        Some(
            match s.to_ascii_lowercase().trim_start_matches("span_kind_") {
                "unspecified" | "" => SpanKind::Unspecified,
                "internal" => SpanKind::Internal,
                "server" => SpanKind::Server,
                "client" => SpanKind::Client,
                "producer" => SpanKind::Producer,
                "consumer" => SpanKind::Consumer,
                _ => return None,
            },
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum StatusCode {
    #[default]
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    pub fn from_i32(v: i32) -> StatusCode {
        match v {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Resource {
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub schema_url: String,
}

impl Resource {
    /// `service.name`, or OTel's documented fallback.
    pub fn service_name(&self) -> &str {
        match find_attr(&self.attributes, "service.name") {
            Some(AttrValue::Str(s)) if !s.is_empty() => s,
            _ => "unknown_service",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Scope {
    pub name: String,
    pub version: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub schema_url: String,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Event {
    pub time_ns: u64,
    pub name: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Status {
    pub code: StatusCode,
    pub message: String,
}

/// One span with its resource and scope. Resource and scope are shared by
/// the spans of one OTLP ResourceSpans/ScopeSpans, hence the `Arc`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<Event>,
    pub dropped_events_count: u32,
    pub links: Vec<Link>,
    pub dropped_links_count: u32,
    pub status: Status,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

impl Span {
    pub fn service_name(&self) -> &str {
        self.resource.service_name()
    }
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
    pub fn is_error(&self) -> bool {
        self.status.code == StatusCode::Error
    }
    /// Looks a key up in span attributes first, then resource attributes.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        find_attr(&self.attributes, key).or_else(|| find_attr(&self.resource.attributes, key))
    }
}

/// A search over stored spans, with Jaeger's semantics: a trace matches when
/// one of its spans satisfies every condition at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub span_kind: Option<SpanKind>,
    /// key → value; matched against span attributes, then resource
    /// attributes, on the value's text form. The pseudo-tags `error=true`
    /// and `span.kind=<kind>` match the span's status and kind.
    pub tags: Vec<(String, String)>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    /// Inclusive window on span start time, nanoseconds since the epoch.
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub limit: usize,
}

impl SearchQuery {
    /// Whether one span satisfies every condition (the reference semantics
    /// that indexed search must agree with).
    pub fn matches(&self, span: &Span) -> bool {
        if let Some(s) = &self.service {
            if span.service_name() != s {
                return false;
            }
        }
        if let Some(op) = &self.operation {
            if &span.name != op {
                return false;
            }
        }
        if let Some(k) = self.span_kind {
            if span.kind != k {
                return false;
            }
        }
        let d = span.duration_ns();
        if self.min_duration_ns.is_some_and(|m| d < m)
            || self.max_duration_ns.is_some_and(|m| d > m)
        {
            return false;
        }
        if self.start_ns.is_some_and(|s| span.start_ns < s)
            || self.end_ns.is_some_and(|e| span.start_ns > e)
        {
            return false;
        }
        self.tags.iter().all(|(k, v)| tag_matches(span, k, v))
    }
}

/// Tag semantics shared by every tier.
pub fn tag_matches(span: &Span, key: &str, value: &str) -> bool {
    match key {
        "error" if span.attr("error").is_none() => (value == "true") == span.is_error(),
        "span.kind" => span.kind.as_str() == value,
        "otel.status_code" => match span.status.code {
            StatusCode::Error => value == "ERROR",
            StatusCode::Ok => value == "OK",
            StatusCode::Unset => value == "UNSET",
        },
        _ => span.attr(key).is_some_and(|v| v.as_text() == value),
    }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_round_trip_and_pad() {
        let t = TraceId::from_hex("0102").unwrap();
        assert_eq!(t.0[15], 2);
        assert_eq!(t.0[14], 1);
        assert_eq!(TraceId::from_hex(&t.to_hex()), Some(t));
        assert!(TraceId::from_hex("xyz").is_none());
        assert!(SpanId::from_hex(&"a".repeat(17)).is_none());
    }

    #[test]
    fn search_matches_span_then_resource_attrs() {
        let span = Span {
            name: "GET /a".into(),
            start_ns: 100,
            end_ns: 300,
            attributes: vec![KeyValue::new("http.status_code", AttrValue::Int(500))],
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new("service.name", AttrValue::Str("api".into()))],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut q = SearchQuery {
            service: Some("api".into()),
            ..Default::default()
        };
        q.tags.push(("http.status_code".into(), "500".into()));
        q.tags.push(("service.name".into(), "api".into()));
        assert!(q.matches(&span));
        q.min_duration_ns = Some(201);
        assert!(!q.matches(&span));
    }
}
