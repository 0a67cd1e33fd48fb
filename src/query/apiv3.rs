//! Jaeger api_v3 over HTTP: OTLP JSON traces wrapped as `{"result": ...}`,
//! errors as `{"error": {"httpCode", "message"}}` like Jaeger's gateway,
//! plus trace summaries for result lists.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::params::{bad, Params};
use super::{apiv3_query, load_trace, load_traces, skew, summarize, QueryState};
use crate::error::{Error, Result};
use crate::model::{Span, SpanId, SpanKind, TraceId};

pub fn v3_error(e: &Error) -> HttpResponse {
    let body =
        json!({ "error": { "httpCode": e.http_status().as_u16(), "message": e.to_string() } });
    e.http_response("application/json", body.to_string().into_bytes())
}

fn reply<T: serde::Serialize>(r: Result<T>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => v3_error(&e),
    }
}

/// `{"result": <OTLP JSON>}`.
#[derive(serde::Serialize)]
struct V3Result {
    result: crate::otlp::json::OtlpTraces,
}

fn result(spans: &[Span]) -> V3Result {
    V3Result {
        result: crate::otlp::json::traces_to_otlp_json(spans),
    }
}

/// `GET /api/v3/traces/{trace_id}[?raw_traces=true]`: skew-adjusted unless
/// raw, as Jaeger does.
pub async fn get_trace(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> HttpResponse {
    reply(
        async {
            let id = super::params::parse_trace_id("trace_id", &path)?;
            let p = Params::parse(req.query_string())?;
            let raw = p.bool("raw_traces")? || p.bool("rawTraces")?;
            let mut spans = load_trace(state.reader.as_ref(), id).await?;
            if spans.is_empty() {
                return Err(Error::NotFound(format!("trace {id}")));
            }
            if !raw {
                skew::adjust(&mut spans);
            }
            Ok(result(&spans))
        }
        .await,
    )
}

/// The matching traces of a GET (query string) or POST (JSON body)
/// search, with `raw_traces`.
async fn find(
    req: &HttpRequest,
    body: Option<&[u8]>,
    state: &QueryState,
) -> Result<(Vec<(TraceId, Vec<Span>)>, bool)> {
    let given = match body {
        Some(b) => apiv3_query::from_body(b)?,
        None => apiv3_query::from_params(&Params::parse(req.query_string())?)?,
    };
    let s = given.search(&state.cfg)?;
    let ids: Vec<TraceId> = state
        .reader
        .search(&s.query)
        .await?
        .into_iter()
        .map(|h| h.trace_id)
        .collect();
    Ok((load_traces(state.reader.as_ref(), &ids).await?, s.raw))
}

/// `GET /api/v3/traces?query.*=` and `POST /api/v3/traces`: every span of
/// every matching trace, skew-adjusted unless `raw_traces`.
pub async fn find_traces(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<QueryState>,
) -> HttpResponse {
    reply(
        async {
            let (traces, raw) = find(&req, post_body(&req, &body), &state).await?;
            let mut spans = Vec::new();
            for (_, mut t) in traces {
                if !raw {
                    skew::adjust(&mut t);
                }
                spans.extend(t);
            }
            Ok(result(&spans))
        }
        .await,
    )
}

fn post_body<'a>(req: &HttpRequest, body: &'a web::Bytes) -> Option<&'a [u8]> {
    (req.method() == actix_web::http::Method::POST).then_some(body.as_ref())
}

/// One `TraceSummary` of api_v3 (jaeger-idl `api_v3/query_service.proto`),
/// in proto3 JSON: 64-bit times as decimal strings, services sorted by
/// name with their span and error counts.
pub fn summary_json(id: TraceId, spans: &[Span]) -> Value {
    let s = summarize(id, spans);
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    let orphans = spans
        .iter()
        .filter(|s| s.parent_span_id.is_some_and(|p| !ids.contains(&p)))
        .count();
    let mut services: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for sp in spans {
        let e = services.entry(sp.service_name()).or_default();
        e.0 += 1;
        e.1 += usize::from(sp.is_error());
    }
    let services: Vec<Value> = services
        .into_iter()
        .map(|(name, (n, err))| json!({ "name": name, "spanCount": n, "errorSpanCount": err }))
        .collect();
    json!({
        "traceId": s.trace_id.to_hex(),
        "rootServiceName": s.root_service,
        "rootOperationName": s.root_name,
        "minStartTimeUnixNano": s.start_ns.to_string(),
        "maxEndTimeUnixNano": (s.start_ns + s.duration_ns).to_string(),
        "spanCount": s.span_count,
        "errorSpanCount": s.error_count,
        "orphanSpanCount": orphans,
        "services": services,
    })
}

/// `GET /api/v3/trace-summaries?query.*=` and `POST`: one summary per
/// matching trace, newest first.
pub async fn trace_summaries(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<QueryState>,
) -> HttpResponse {
    reply(
        async {
            let (traces, _) = find(&req, post_body(&req, &body), &state).await?;
            let list: Vec<Value> = traces
                .iter()
                .map(|(id, spans)| summary_json(*id, spans))
                .collect();
            Ok(json!({ "summaries": list }))
        }
        .await,
    )
}

pub async fn services(state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let mut s = state.reader.services().await?;
            s.sort();
            s.dedup();
            Ok(json!({ "services": s }))
        }
        .await,
    )
}

fn v3_kind(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => SpanKind::Internal.as_str(),
        k => k.as_str(),
    }
}

/// `GET /api/v3/operations?service=&span_kind=`.
pub async fn operations(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let p = Params::parse(req.query_string())?;
            let kind = p
                .get("span_kind")
                .map(|k| SpanKind::parse(k).ok_or_else(|| bad("span_kind", k, "a span kind")))
                .transpose()?;
            let ops = state.reader.operations(p.get("service")).await?;
            // OpenTelemetry reads an unspecified kind as internal, and so
            // does Jaeger's api_v3: one name per (operation, kind).
            let kind = kind.map(v3_kind);
            let list: BTreeSet<(String, &str)> = ops
                .into_iter()
                .map(|o| (o.name, v3_kind(o.kind)))
                .filter(|(_, k)| kind.is_none_or(|want| *k == want))
                .collect();
            let out: Vec<Value> = list
                .into_iter()
                .map(|(name, kind)| json!({ "name": name, "spanKind": kind }))
                .collect();
            Ok(json!({ "operations": out }))
        }
        .await,
    )
}
