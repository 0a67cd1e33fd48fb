//! `POST /api/transform`: OTLP JSON in, Jaeger JSON out, stored nowhere.
//! The Jaeger UI sends an uploaded OTLP file here to display it. The body
//! is one `TracesData` / `ExportTraceServiceRequest` object or, as the
//! Collector's file exporter writes, one such object per line.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::Value;

use super::jaeger::envelope;
use super::jaeger_json::{render_adjusted, JaegerTrace};
use crate::error::{Error, Result};
use crate::model::{dedup_spans, Span, TraceId};
use crate::otlp::{convert::spans_from_proto, json::decode_request};

/// Largest upload accepted (actix answers 413 above it).
pub const MAX_BODY_BYTES: usize = 64 << 20;

fn decode(body: &[u8]) -> Result<Vec<Span>> {
    let whole = decode_request(body);
    let requests = match whole {
        Ok(r) => vec![r],
        Err(e) => {
            // Not one object: perhaps JSON lines. Report the whole-body
            // error if a line fails too, since that is the usual case.
            let lines: Vec<&[u8]> = body
                .split(|b| *b == b'\n')
                .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
                .collect();
            if lines.len() < 2 {
                return Err(e);
            }
            let mut out = Vec::with_capacity(lines.len());
            for (i, l) in lines.iter().enumerate() {
                out.push(
                    decode_request(l)
                        .map_err(|e| Error::InvalidArgument(format!("line {}: {e}", i + 1)))?,
                );
            }
            out
        }
    };
    Ok(requests
        .iter()
        .flat_map(|r| spans_from_proto(&r.resource_spans))
        .collect())
}

/// Groups spans by trace and renders each as `/api/traces/{id}` would.
pub fn transform(body: &[u8]) -> Result<Vec<JaegerTrace>> {
    let spans = decode(body)?;
    if spans.is_empty() {
        return Err(Error::InvalidArgument(
            "the OTLP JSON holds no span with a valid trace and span id".into(),
        ));
    }
    let mut traces: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
    for s in spans {
        traces.entry(s.trace_id).or_default().push(s);
    }
    Ok(traces
        .into_iter()
        .map(|(id, mut spans)| {
            dedup_spans(&mut spans);
            render_adjusted(id, spans, false)
        })
        .collect())
}

pub async fn handler(body: web::Bytes) -> Result<HttpResponse> {
    let data = transform(&body)?;
    let total = data.len();
    Ok(envelope(data, total, Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"scopeSpans":[{"spans":[
        {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"GET /","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000005000000"},
        {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203332","parentSpanId":"b7ad6b7169203331","name":"db","kind":3,"startTimeUnixNano":"1700000000001000000","endTimeUnixNano":"1700000000002000000"},
        {"traceId":"1af7651916cd43dd8448eb211c80319c","spanId":"c7ad6b7169203331","name":"other","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000"}
    ]}]}]}"#;

    #[test]
    fn otlp_json_becomes_one_jaeger_trace_per_trace_id() {
        let out = serde_json::to_value(transform(ONE.as_bytes()).unwrap()).unwrap();
        assert_eq!(out.as_array().unwrap().len(), 2);
        let t = &out[0];
        assert_eq!(t["traceID"], "0af7651916cd43dd8448eb211c80319c");
        let spans = t["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0]["operationName"], "GET /");
        assert_eq!(spans[0]["startTime"], 1_700_000_000_000_000u64);
        assert_eq!(spans[0]["duration"], 5000);
        assert_eq!(spans[1]["references"][0]["spanID"], "b7ad6b7169203331");
        let pid = spans[0]["processID"].as_str().unwrap();
        assert_eq!(t["processes"][pid]["serviceName"], "shop");
    }

    #[test]
    fn json_lines_are_read_line_by_line() {
        let one_line = ONE.replace('\n', "");
        let body = format!("{one_line}\n\n{one_line}\n");
        let out = serde_json::to_value(transform(body.as_bytes()).unwrap()).unwrap();
        // The same spans twice: deduplicated per trace.
        assert_eq!(out.as_array().unwrap().len(), 2);
        assert_eq!(out[0]["spans"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_uploads_are_refused_with_the_reason() {
        let e = transform(b"{\"resourceSpans\": 7}").unwrap_err();
        assert!(e.to_string().contains("OTLP/JSON"), "{e}");
        let e = transform(b"{}\n{\"resourceSpans\":[}").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = transform(b"{}").unwrap_err();
        assert!(e.to_string().contains("no span"), "{e}");
    }
}
