//! Hand-made OTLP protobuf requests, and posting them over OTLP/HTTP.

use prost::Message;

pub use strand::otlp::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub use strand::otlp::proto::common::v1::{any_value, AnyValue, KeyValue};
use strand::otlp::proto::resource::v1::Resource;
pub use strand::otlp::proto::trace::v1::Span;
use strand::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans};

pub fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        key_strindex: 0,
    }
}

/// One resource (`service.name` = `service`) holding `spans` in one scope.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue(service.into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A trace id from two halves, so senders can number their traces.
pub fn trace_id(hi: u64, lo: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hi.to_be_bytes());
    id[8..].copy_from_slice(&lo.to_be_bytes());
    id
}

/// `n` 1 ms server spans of one trace starting now, named `op-<i>`, with
/// span ids from `first_span_id` on and the same `attributes` each.
pub fn spans_now(
    trace_id: [u8; 16],
    n: u64,
    first_span_id: u64,
    attributes: Vec<KeyValue>,
) -> Vec<Span> {
    let now = strand::model::now_ns();
    (0..n)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: (first_span_id + i).to_be_bytes().to_vec(),
            name: format!("op-{i}"),
            kind: 2,
            start_time_unix_nano: now + i,
            end_time_unix_nano: now + i + 1_000_000,
            attributes: attributes.clone(),
            ..Default::default()
        })
        .collect()
}

/// POSTs an encoded request to `http` (`http://host:port`) + `/v1/traces`.
pub async fn post(
    client: &reqwest::Client,
    http: &str,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
}

/// Status of posting `req` (0 when the request did not get an answer).
pub async fn post_status(
    client: &reqwest::Client,
    http: &str,
    req: &ExportTraceServiceRequest,
) -> u16 {
    match post(client, http, req.encode_to_vec()).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}
