//! `strand loadgen --protocol zipkin`: the same generated requests, sent
//! as Zipkin v2 JSON to `POST /api/v2/spans`. Each (patched) OTLP request
//! is rendered as Zipkin JSON just before it is sent: the generator pays
//! for the rendering, the server's CPU is what benchmarks compare.

use prost::Message as _;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::proto::common::v1::{any_value, KeyValue};

/// An OTLP protobuf request as a Zipkin v2 JSON list of spans.
pub fn to_zipkin_json(otlp: &[u8]) -> Result<Vec<u8>> {
    let req = ExportTraceServiceRequest::decode(otlp)
        .map_err(|e| Error::Internal(format!("loadgen request: {e}")))?;
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(text)
            .unwrap_or_default();
        for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            let mut tags: Map<String, Value> = s
                .attributes
                .iter()
                .map(|a| (a.key.clone(), Value::String(text(a))))
                .collect();
            if s.status.as_ref().is_some_and(|st| st.code == 2) {
                let message = s
                    .status
                    .as_ref()
                    .map(|st| st.message.clone())
                    .unwrap_or_default();
                tags.insert("error".into(), Value::String(message));
            }
            let kind = match s.kind {
                2 => Some("SERVER"),
                3 => Some("CLIENT"),
                4 => Some("PRODUCER"),
                5 => Some("CONSUMER"),
                _ => None,
            };
            let mut span = json!({
                "traceId": hex::encode(&s.trace_id),
                "id": hex::encode(&s.span_id),
                "name": s.name,
                "timestamp": s.start_time_unix_nano / 1_000,
                "duration": s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1_000,
                "localEndpoint": { "serviceName": service },
                "tags": tags,
                "annotations": s.events.iter().map(|e| json!({
                    "timestamp": e.time_unix_nano / 1_000, "value": e.name,
                })).collect::<Vec<_>>(),
            });
            if !s.parent_span_id.is_empty() {
                span["parentId"] = Value::String(hex::encode(&s.parent_span_id));
            }
            if let Some(k) = kind {
                span["kind"] = Value::String(k.into());
            }
            out.push(span);
        }
    }
    serde_json::to_vec(&out).map_err(|e| Error::Internal(format!("zipkin json: {e}")))
}

fn text(a: &KeyValue) -> String {
    match a.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::{build_request_pool, TopologyConfig};
    use crate::otlp::convert::spans_from_proto;

    #[test]
    fn renders_what_the_zipkin_receiver_reads_back() {
        let cfg = TopologyConfig {
            services: 4,
            depth: 2,
            fanout: 2,
            attributes: 4,
            error_rate: 0.5,
            span_bytes: 200,
        };
        let pool = build_request_pool(&cfg, 1, 64, 7);
        let otlp = &pool.requests[0].bytes;
        let body = to_zipkin_json(otlp).unwrap();
        let back = crate::ingest::zipkin::decode_json(&body).unwrap();
        let want = spans_from_proto(
            &ExportTraceServiceRequest::decode(otlp.as_ref())
                .unwrap()
                .resource_spans,
        );
        let got = spans_from_proto(&back.resource_spans);
        assert_eq!(got.len(), want.len());
        for w in &want {
            let g = got
                .iter()
                .find(|g| g.span_id == w.span_id)
                .expect("span kept");
            assert_eq!(
                (g.trace_id, g.parent_span_id),
                (w.trace_id, w.parent_span_id)
            );
            assert_eq!(g.start_ns / 1_000, w.start_ns / 1_000);
            assert_eq!(g.resource.service_name(), w.resource.service_name());
            assert_eq!(g.kind, w.kind);
        }
    }
}
