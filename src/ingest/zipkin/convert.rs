//! Zipkin v2 spans → an OTLP export request (docs/INGEST.md, "Zipkin").
//! Spans are grouped into one resource per local service name and one
//! scope per `otel.scope.name` tag, following the OpenTelemetry Collector's
//! Zipkin receiver for attribute names.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::proto;
use crate::error::Result;
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::proto::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use crate::otlp::proto::resource::v1::Resource;
use crate::otlp::proto::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use crate::pipeline::sampling::FORCE_KEEP_KEY;

/// The service name of spans without a local endpoint name (as OTel SDKs
/// name an unnamed service).
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// On a shared server span re-identified by strand: the span id it was
/// sent with (the client's), hex.
pub const SHARED_ID_KEY: &str = "zipkin.shared_span_id";

const SCOPE_NAME_TAGS: [&str; 2] = ["otel.scope.name", "otel.library.name"];
const SCOPE_VERSION_TAGS: [&str; 2] = ["otel.scope.version", "otel.library.version"];
const STATUS_CODE_TAG: &str = "otel.status_code";
const STATUS_DESCRIPTION_TAG: &str = "otel.status_description";

type Scopes = BTreeMap<(String, String), Vec<Span>>;
/// (trace id, span id, local service) of a shared span → its new id.
type SharedIds = HashMap<(Vec<u8>, Vec<u8>, String), Vec<u8>>;

/// Converts spans; never fails today (decoding already checked the
/// input), `Result` so the receiver treats both decoders alike.
pub fn to_otlp(mut spans: Vec<proto::Span>) -> Result<ExportTraceServiceRequest> {
    for z in &mut spans {
        // A 64-bit trace id is the low half of a 128-bit one (Zipkin's
        // left-padding), so mixed-width reporters of a trace agree.
        if z.trace_id.len() == 8 {
            z.trace_id.splice(0..0, [0u8; 8]);
        }
    }
    let shared = shared_ids(&spans);
    let mut services: BTreeMap<String, Scopes> = BTreeMap::new();
    for z in spans {
        let service = service_of(&z).to_string();
        let (otlp, scope) = span_of(z, &service, &shared);
        services
            .entry(service)
            .or_default()
            .entry(scope)
            .or_default()
            .push(otlp);
    }
    let resource_spans = services
        .into_iter()
        .map(|(service, scopes)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", string(service))],
                ..Default::default()
            }),
            scope_spans: scopes
                .into_iter()
                .map(|((name, version), spans)| ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name,
                        version,
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    Ok(ExportTraceServiceRequest { resource_spans })
}

fn service_of(z: &proto::Span) -> &str {
    z.local_endpoint
        .as_ref()
        .map(|e| e.service_name.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(UNKNOWN_SERVICE)
}

/// (trace id, span id, service) of each shared span → the id strand gives
/// it. A shared server span reuses its client's id; strand's identity in a
/// trace is (span id, start), so the halves would otherwise be siblings
/// under the client's parent instead of client → server.
fn shared_ids(spans: &[proto::Span]) -> SharedIds {
    spans
        .iter()
        .filter(|z| z.shared && z.id.len() == 8)
        .map(|z| {
            let key = (z.trace_id.clone(), z.id.clone(), service_of(z).to_string());
            (key, derived_id(&z.trace_id, &z.id))
        })
        .collect()
}

/// A stable id for the server half: a hash of (trace id, span id), so a
/// resent span gets the same id (and deduplicates) on every receiver.
pub fn derived_id(trace_id: &[u8], id: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(trace_id.len() + id.len() + 7);
    input.extend_from_slice(trace_id);
    input.extend_from_slice(id);
    input.extend_from_slice(b"/shared");
    let h = xxhash_rust::xxh3::xxh3_64(&input).max(1);
    h.to_be_bytes().to_vec()
}

fn span_of(z: proto::Span, service: &str, shared: &SharedIds) -> (Span, (String, String)) {
    let mut tags: Vec<(String, String)> = z.tags.into_iter().collect();
    tags.sort();
    let mut scope = (String::new(), String::new());
    let mut status_code: Option<String> = None;
    let mut status_description = String::new();
    let mut error: Option<String> = None;
    let mut attributes = Vec::with_capacity(tags.len() + 4);
    for (k, v) in tags {
        match k.as_str() {
            k if SCOPE_NAME_TAGS.contains(&k) => scope.0 = v,
            k if SCOPE_VERSION_TAGS.contains(&k) => scope.1 = v,
            STATUS_CODE_TAG => status_code = Some(v),
            STATUS_DESCRIPTION_TAG => status_description = v,
            // The status carries it (Jaeger's view shows `error=true`).
            "error" => error = Some(v),
            _ => attributes.push(kv(&k, string(v))),
        }
    }
    let mut insert = |key: &str, value: any_value::Value| {
        // Tags win over derived attributes of the same name.
        if !attributes.iter().any(|a| a.key == key) {
            attributes.push(kv(key, value));
        }
    };
    if let Some(e) = &z.local_endpoint {
        if let Some(ip) = ip_text(e) {
            insert("net.host.ip", string(ip));
        }
        if e.port > 0 {
            insert("net.host.port", any_value::Value::IntValue(e.port.into()));
        }
    }
    if let Some(e) = &z.remote_endpoint {
        if !e.service_name.is_empty() {
            insert("peer.service", string(e.service_name.clone()));
        }
        if let Some(ip) = ip_text(e) {
            insert("net.peer.ip", string(ip));
        }
        if e.port > 0 {
            insert("net.peer.port", any_value::Value::IntValue(e.port.into()));
        }
    }
    if z.debug {
        insert(FORCE_KEEP_KEY, any_value::Value::IntValue(1));
    }
    let (mut span_id, mut parent_span_id) = (z.id, z.parent_id);
    if z.shared {
        if let Some(new) = shared.get(&(z.trace_id.clone(), span_id.clone(), service.to_string())) {
            insert(SHARED_ID_KEY, string(hex::encode(&span_id)));
            parent_span_id = std::mem::replace(&mut span_id, new.clone());
        }
    } else if let Some(new) = shared.get(&(
        z.trace_id.clone(),
        parent_span_id.clone(),
        service.to_string(),
    )) {
        // A child recorded by the same service as a shared server span
        // (in the same request) descends from the server half.
        parent_span_id = new.clone();
    }
    let start = z.timestamp.saturating_mul(1_000);
    let kind = match proto::span::Kind::try_from(z.kind) {
        Ok(proto::span::Kind::Client) => span::SpanKind::Client,
        Ok(proto::span::Kind::Server) => span::SpanKind::Server,
        Ok(proto::span::Kind::Producer) => span::SpanKind::Producer,
        Ok(proto::span::Kind::Consumer) => span::SpanKind::Consumer,
        _ => span::SpanKind::Internal,
    };
    let otlp = Span {
        trace_id: z.trace_id,
        span_id,
        parent_span_id,
        name: z.name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(z.duration.saturating_mul(1_000)),
        attributes,
        events: z
            .annotations
            .into_iter()
            .map(|a| span::Event {
                time_unix_nano: a.timestamp.saturating_mul(1_000),
                name: a.value,
                ..Default::default()
            })
            .collect(),
        status: status(status_code.as_deref(), status_description, error),
        ..Default::default()
    };
    (otlp, scope)
}

/// `otel.status_code` (with `otel.status_description`, or the `error` tag's
/// value, as message) when present, else an `error` tag means an error
/// status whose message is the tag's value.
fn status(code: Option<&str>, description: String, error: Option<String>) -> Option<Status> {
    use crate::otlp::proto::trace::v1::status::StatusCode;
    let (code, message) = match code.map(str::to_ascii_uppercase).as_deref() {
        // OTel's Zipkin exporters put the description in the error tag.
        Some("ERROR") if description.is_empty() => (
            StatusCode::Error,
            error.filter(|e| e != "true").unwrap_or_default(),
        ),
        Some("ERROR") => (StatusCode::Error, description),
        Some("OK") => (StatusCode::Ok, description),
        Some(_) => (StatusCode::Unset, description),
        None => match error {
            Some(e) => {
                let message = if e.is_empty() || e.eq_ignore_ascii_case("true") {
                    String::new()
                } else {
                    e
                };
                (StatusCode::Error, message)
            }
            None => return None,
        },
    };
    Some(Status {
        code: code as i32,
        message,
    })
}

fn ip_text(e: &proto::Endpoint) -> Option<String> {
    if let Ok(b) = <[u8; 4]>::try_from(e.ipv4.as_slice()) {
        return Some(Ipv4Addr::from(b).to_string());
    }
    <[u8; 16]>::try_from(e.ipv6.as_slice())
        .ok()
        .map(|b| Ipv6Addr::from(b).to_string())
}

fn string(s: String) -> any_value::Value {
    any_value::Value::StringValue(s)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
