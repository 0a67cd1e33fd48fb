//! Jaeger api_v3 over HTTP: OTLP JSON traces wrapped as `{"result": ...}`,
//! errors as `{"error": {"httpCode", "message"}}` like Jaeger's gateway,
//! plus trace summaries for result lists.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::params::{bad, Params};
use super::{clamp_limit, load_trace, load_traces, summarize, QueryState, TraceSummary};
use crate::error::{Error, Result};
use crate::model::{now_ns, SearchQuery, Span, SpanKind, TraceId};

pub fn v3_error(e: &Error) -> HttpResponse {
    let body =
        json!({ "error": { "httpCode": e.http_status().as_u16(), "message": e.to_string() } });
    e.http_response("application/json", body.to_string().into_bytes())
}

fn reply(r: Result<Value>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => v3_error(&e),
    }
}

fn result(spans: &[Span]) -> Value {
    json!({ "result": crate::otlp::json::traces_to_otlp_json(spans) })
}

/// `GET /api/v3/traces/{trace_id}`.
pub async fn get_trace(path: web::Path<String>, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let id = super::params::parse_trace_id("trace_id", &path)?;
            let spans = load_trace(state.reader.as_ref(), id).await?;
            if spans.is_empty() {
                return Err(Error::NotFound(format!("trace {id}")));
            }
            Ok(result(&spans))
        }
        .await,
    )
}

/// The `query.*` parameters of FindTraces as a [`SearchQuery`]. Unlike
/// Jaeger, the time bounds are optional: the end defaults to now and the
/// start to one hour before the end.
pub fn search_query(p: &Params, cfg: &crate::config::QueryConfig) -> Result<SearchQuery> {
    let depth = match p.u64("query.search_depth")? {
        Some(n) => Some(n),
        None => p.u64("query.num_traces")?,
    };
    let mut q = SearchQuery {
        service: p.get("query.service_name").map(str::to_string),
        operation: p.get("query.operation_name").map(str::to_string),
        min_duration_ns: p.duration_ns("query.duration_min")?,
        max_duration_ns: p.duration_ns("query.duration_max")?,
        limit: clamp_limit(cfg, depth),
        ..Default::default()
    };
    if let Some(raw) = p.get("query.attributes") {
        let map: serde_json::Map<String, Value> = serde_json::from_str(raw).map_err(|_| {
            bad(
                "query.attributes",
                raw,
                "a JSON object of attribute to value",
            )
        })?;
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(bad(
                        "query.attributes",
                        raw,
                        "a JSON object of attribute to string value",
                    ))
                }
            };
            q.tags.push((k, v));
        }
    }
    if let (Some(a), Some(b)) = (q.min_duration_ns, q.max_duration_ns) {
        if a > b {
            return Err(Error::InvalidArgument(
                "parameter query.duration_min: must not exceed query.duration_max".into(),
            ));
        }
    }
    let end = p.rfc3339_ns("query.start_time_max")?.unwrap_or_else(now_ns);
    let start = p
        .rfc3339_ns("query.start_time_min")?
        .unwrap_or(end.saturating_sub(super::jaeger::DEFAULT_LOOKBACK_NS));
    if start > end {
        return Err(Error::InvalidArgument(
            "parameter query.start_time_min: must not be after query.start_time_max".into(),
        ));
    }
    q.start_ns = Some(start);
    q.end_ns = Some(end);
    Ok(q)
}

async fn find(req: &HttpRequest, state: &QueryState) -> Result<Vec<(TraceId, Vec<Span>)>> {
    let q = search_query(&Params::parse(req.query_string())?, &state.cfg)?;
    let ids: Vec<TraceId> = state
        .reader
        .search(&q)
        .await?
        .into_iter()
        .map(|h| h.trace_id)
        .collect();
    load_traces(state.reader.as_ref(), &ids).await
}

/// `GET /api/v3/traces?query.*=`: every span of every matching trace.
pub async fn find_traces(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let traces = find(&req, &state).await?;
            let spans: Vec<Span> = traces.into_iter().flat_map(|(_, s)| s).collect();
            Ok(result(&spans))
        }
        .await,
    )
}

pub fn summary_json(s: &TraceSummary) -> Value {
    json!({
        "traceID": s.trace_id.to_hex(),
        "rootServiceName": s.root_service,
        "rootSpanName": s.root_name,
        "startTime": s.start_ns / 1000,
        "duration": s.duration_ns / 1000,
        "spanCount": s.span_count,
        "errorCount": s.error_count,
        "services": s.services,
    })
}

/// `GET /api/v3/trace-summaries?query.*=`: one summary per matching trace,
/// newest first.
pub async fn trace_summaries(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let traces = find(&req, &state).await?;
            let list: Vec<Value> = traces
                .iter()
                .map(|(id, spans)| summary_json(&summarize(*id, spans)))
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
            let list: std::collections::BTreeSet<_> = ops
                .into_iter()
                .filter(|o| kind.is_none_or(|k| o.kind == k))
                .collect();
            let out: Vec<Value> = list
                .into_iter()
                .map(|o| json!({ "name": o.name, "spanKind": super::jaeger::kind_name(o.kind) }))
                .collect();
            Ok(json!({ "operations": out }))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_params_parse_rfc3339_and_go_durations() {
        let cfg = crate::config::QueryConfig::default();
        let p = Params::parse("query.service_name=a&query.start_time_min=2024-01-02T03:04:05Z&query.start_time_max=2024-01-02T04:04:05Z&query.duration_min=1ms&query.search_depth=7&query.attributes=%7B%22k%22%3A1%7D").unwrap();
        let q = search_query(&p, &cfg).unwrap();
        assert_eq!(q.service.as_deref(), Some("a"));
        assert_eq!(q.start_ns, Some(1_704_164_645_000_000_000));
        assert_eq!(q.end_ns, Some(1_704_168_245_000_000_000));
        assert_eq!((q.min_duration_ns, q.limit), (Some(1_000_000), 7));
        assert_eq!(q.tags, vec![("k".to_string(), "1".to_string())]);
        for (s, name) in [
            ("query.start_time_min=yesterday", "query.start_time_min"),
            ("query.duration_max=1y", "query.duration_max"),
            ("query.search_depth=many", "query.search_depth"),
            ("query.attributes=%5B%5D", "query.attributes"),
            ("query.start_time_min=2024-01-02T05:00:00Z&query.start_time_max=2024-01-02T04:00:00Z", "query.start_time_min"),
        ] {
            let e = search_query(&Params::parse(s).unwrap(), &cfg).unwrap_err().to_string();
            assert!(e.contains(name), "{s}: {e}");
        }
    }
}
