//! Grafana Tempo compatible endpoints, enough for Grafana's Tempo data
//! source: trace by id (v1 protobuf, v2 JSON or protobuf) and echo here;
//! search in `tempo_search`, tag names and values in `tags`. Errors are
//! plain text, as Tempo answers them.

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use prost::Message;
use serde_json::{json, Value};

use super::params::{bad, Params};
use super::{load_trace, QueryState};
use crate::error::{Error, Result};
use crate::model::Span;
use crate::otlp::convert::spans_to_proto;
use crate::otlp::proto::trace::v1::ResourceSpans;

/// tempopb.Trace: `repeated ResourceSpans batches = 1` (named
/// `resourceSpans` in newer Tempo; the wire format is the same).
#[derive(Clone, PartialEq, Message)]
pub struct TempoTrace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TraceByIdMetrics {
    #[prost(uint32, tag = "1")]
    pub failed_blocks: u32,
}

/// tempopb.TraceByIDResponse; `status` 0 = COMPLETE, 1 = PARTIAL.
#[derive(Clone, PartialEq, Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TempoTrace>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

pub fn text_error(e: &Error) -> HttpResponse {
    e.http_response("text/plain; charset=utf-8", e.to_string().into_bytes())
}

fn protobuf(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/protobuf"))
        .body(body)
}

async fn fetch(raw_id: &str, state: &QueryState) -> Result<Vec<Span>> {
    let id = super::params::parse_trace_id("traceID", raw_id)?;
    let spans = load_trace(state.reader.as_ref(), id).await?;
    if spans.is_empty() {
        return Err(Error::NotFound(format!("trace {id}")));
    }
    Ok(spans)
}

/// `GET /api/traces/{id}` with `Accept: application/protobuf`: tempopb.Trace.
pub async fn get_trace_v1_protobuf(raw_id: &str, state: &QueryState) -> HttpResponse {
    match fetch(raw_id, state).await {
        Ok(spans) => protobuf(
            TempoTrace {
                resource_spans: spans_to_proto(&spans),
            }
            .encode_to_vec(),
        ),
        Err(e) => text_error(&e),
    }
}

/// `GET /api/v2/traces/{id}`: JSON, or TraceByIDResponse protobuf.
pub async fn get_trace_v2(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> HttpResponse {
    let spans = match fetch(&path, &state).await {
        Ok(s) => s,
        Err(e) => return text_error(&e),
    };
    let wants_pb = req
        .headers()
        .get_all(ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/protobuf"));
    if wants_pb {
        let resp = TraceByIdResponse {
            trace: Some(TempoTrace {
                resource_spans: spans_to_proto(&spans),
            }),
            ..Default::default()
        };
        return protobuf(resp.encode_to_vec());
    }
    #[derive(serde::Serialize)]
    struct Answer {
        trace: crate::otlp::json::OtlpTraces,
        status: &'static str,
    }
    HttpResponse::Ok().json(Answer {
        trace: crate::otlp::json::traces_to_otlp_json(&spans),
        status: "complete",
    })
}

/// The Tempo API level answered by `/api/status/buildinfo`. Grafana gates
/// only gRPC streaming on it (search from 2.2.0, metrics from 2.7.0), which
/// strand does not serve, so it must stay below 2.2.0; 2.0 is the release
/// whose TraceQL spanset language strand evaluates (docs/API.md).
pub const TEMPO_API_VERSION: &str = "2.0.0";

/// The first Tempo version for which Grafana streams searches over gRPC.
pub const GRAFANA_STREAMING_FROM: &str = "2.2.0";

/// `GET /api/status/buildinfo`, in Tempo's shape.
pub async fn buildinfo() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "version": TEMPO_API_VERSION,
        "revision": concat!("strand-", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

pub async fn echo() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("echo")
}

pub fn seconds(p: &Params, key: &str) -> Result<Option<u64>> {
    p.u64(key)?
        .map(|s| {
            s.checked_mul(1_000_000_000)
                .ok_or_else(|| bad(key, &s.to_string(), "unix seconds"))
        })
        .transpose()
}

pub fn reply(r: Result<Value>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => text_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::span;
    use super::*;

    #[test]
    fn reported_version_keeps_grafana_off_grpc_streaming() {
        let v = |s: &str| -> Vec<u32> { s.split('.').map(|p| p.parse().unwrap()).collect() };
        assert!(v(TEMPO_API_VERSION) < v(GRAFANA_STREAMING_FROM));
        assert!(
            v(TEMPO_API_VERSION) >= vec![2, 0, 0],
            "TraceQL exists from 2.0"
        );
    }

    #[test]
    fn protobuf_messages_use_tempo_field_numbers() {
        let spans = vec![span(1, 1, None, "a", "root", 10, 5)];
        let trace = TempoTrace {
            resource_spans: spans_to_proto(&spans),
        };
        let resp = TraceByIdResponse {
            trace: Some(trace.clone()),
            ..Default::default()
        };
        let bytes = resp.encode_to_vec();
        // Field 1, wire type 2 (length-delimited) for both messages.
        assert_eq!(bytes[0], 0x0a);
        assert_eq!(trace.encode_to_vec()[0], 0x0a);
        let back = TraceByIdResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            back.trace.unwrap().resource_spans[0].scope_spans[0].spans[0].name,
            "root"
        );
    }
}
