//! The Kafka message unit: one message per trace (or per slice of a trace
//! too large for one message). Key = the 16 trace-id bytes, so all spans of
//! a trace land on one partition and one writer; value = an OTLP protobuf
//! `ExportTraceServiceRequest` holding only that trace's spans. Any OTLP
//! tool can read the topic.

use prost::Message;

use super::config::TopicEncoding;
use crate::model::{Span, TraceId};
use crate::otlp::convert::{spans_from_proto, spans_to_proto};
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;

/// One message to produce.
#[derive(Debug)]
pub struct Encoded {
    pub key: TraceId,
    pub value: Vec<u8>,
    pub spans: usize,
}

/// Groups spans by trace (in first-seen order) and encodes each group,
/// splitting a group whose encoding exceeds `max_bytes` into halves until
/// each part fits (a single span larger than that is sent alone, and the
/// broker decides).
pub fn encode_by_trace(spans: &[Span], max_bytes: usize) -> Vec<Encoded> {
    let mut order: Vec<TraceId> = Vec::new();
    let mut groups: std::collections::HashMap<TraceId, Vec<Span>> =
        std::collections::HashMap::new();
    for s in spans {
        groups
            .entry(s.trace_id)
            .or_insert_with(|| {
                order.push(s.trace_id);
                Vec::new()
            })
            .push(s.clone());
    }
    let mut out = Vec::with_capacity(order.len());
    for id in order {
        if let Some(group) = groups.remove(&id) {
            encode_group(id, &group, max_bytes, &mut out);
        }
    }
    out
}

fn encode_group(key: TraceId, spans: &[Span], max_bytes: usize, out: &mut Vec<Encoded>) {
    let value = encode(spans);
    if value.len() <= max_bytes || spans.len() <= 1 {
        out.push(Encoded {
            key,
            value,
            spans: spans.len(),
        });
        return;
    }
    let (a, b) = spans.split_at(spans.len() / 2);
    encode_group(key, a, max_bytes, out);
    encode_group(key, b, max_bytes, out);
}

pub fn encode(spans: &[Span]) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: spans_to_proto(spans),
    }
    .encode_to_vec()
}

/// Decodes one message value. Errors (the reason goes into the dead-letter
/// header) for anything strand's producer would not have written: bad
/// protobuf, no spans, malformed ids.
pub fn decode(value: &[u8]) -> Result<Vec<Span>, String> {
    let req = ExportTraceServiceRequest::decode(value)
        .map_err(|e| format!("not an OTLP ExportTraceServiceRequest: {e}"))?;
    checked_spans(req)
}

/// Decodes a message value of a topic with the given encoding (an extra
/// topic written by the OpenTelemetry Collector, or strand's own). The
/// Collector's `otlp_proto` is a `TracesData`, byte for byte an
/// `ExportTraceServiceRequest` (both: field 1 = repeated ResourceSpans).
pub fn decode_as(encoding: TopicEncoding, value: &[u8]) -> Result<Vec<Span>, String> {
    match encoding {
        TopicEncoding::OtlpProto => decode(value),
        TopicEncoding::OtlpJson => {
            let req = crate::otlp::json::decode_request(value)
                .map_err(|e| format!("not OTLP/JSON traces: {e}"))?;
            checked_spans(req)
        }
    }
}

fn checked_spans(req: ExportTraceServiceRequest) -> Result<Vec<Span>, String> {
    let expected: usize = req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    if expected == 0 {
        return Err("message holds no spans".into());
    }
    let spans = spans_from_proto(&req.resource_spans);
    if spans.len() != expected {
        return Err(format!(
            "{} of {expected} spans have malformed trace or span ids",
            expected - spans.len()
        ));
    }
    if let Some(s) = spans
        .iter()
        .find(|s| s.trace_id.is_zero() || s.span_id.is_zero())
    {
        return Err(format!(
            "span {} of trace {} has an all-zero id",
            s.span_id, s.trace_id
        ));
    }
    Ok(spans)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{AttrValue, KeyValue, Resource, SpanId};
    use std::sync::Arc;

    pub(crate) fn span(trace: u8, id: u64) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId((id + 1).to_be_bytes()),
            name: format!("op-{id}"),
            start_ns: 1_000 + id,
            end_ns: 2_000 + id,
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new("service.name", AttrValue::Str("svc".into()))],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn groups_by_trace_and_round_trips() {
        let spans = vec![span(1, 1), span(2, 2), span(1, 3)];
        let msgs = encode_by_trace(&spans, 1 << 20);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].key, TraceId([1; 16]));
        assert_eq!(msgs[0].spans, 2);
        let back = decode(&msgs[0].value).unwrap();
        assert_eq!(back, vec![spans[0].clone(), spans[2].clone()]);
    }

    #[test]
    fn large_traces_are_split_under_the_limit() {
        let spans: Vec<Span> = (0..200).map(|i| span(7, i)).collect();
        let msgs = encode_by_trace(&spans, 2_000);
        assert!(msgs.len() > 1);
        assert!(msgs
            .iter()
            .all(|m| m.value.len() <= 2_000 && m.key == TraceId([7; 16])));
        let total: usize = msgs.iter().map(|m| decode(&m.value).unwrap().len()).sum();
        assert_eq!(total, 200);
    }

    #[test]
    fn garbage_and_empty_messages_are_rejected_with_a_reason() {
        assert!(decode(b"\xff\xff\xff garbage")
            .unwrap_err()
            .contains("OTLP"));
        assert!(decode(&encode(&[])).unwrap_err().contains("no spans"));
        let mut bad = span(1, 1);
        bad.span_id = SpanId([0; 8]);
        assert!(decode(&encode(&[bad])).unwrap_err().contains("all-zero"));
    }

    #[test]
    fn collector_encodings_decode_to_the_same_spans() {
        let spans = vec![span(3, 1), span(4, 2)];
        // The Collector's otlp_proto value: TracesData, several traces in one.
        let proto = encode(&spans);
        assert_eq!(decode_as(TopicEncoding::OtlpProto, &proto).unwrap(), spans);
        let json = serde_json::to_vec(&crate::otlp::json::traces_to_otlp_json(&spans)).unwrap();
        assert_eq!(decode_as(TopicEncoding::OtlpJson, &json).unwrap(), spans);
        let err = decode_as(TopicEncoding::OtlpJson, &proto).unwrap_err();
        assert!(err.contains("OTLP/JSON"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }
    }
}
