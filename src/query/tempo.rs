//! Grafana Tempo compatible endpoints, enough for Grafana's Tempo data
//! source: trace by id (v1 protobuf, v2 JSON or protobuf), search with
//! TraceQL or legacy tags, tag names and values, echo. Errors are plain
//! text, as Tempo answers them.

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use prost::Message;
use serde_json::{json, Value};

use super::otlp_json::{key_value, resource_spans};
use super::params::{bad, logfmt, Params};
use super::tags::{sample, Typed};
use super::traceql::{self, AttrScope, Query, TraceCtx};
use super::{clamp_limit, load_trace, load_traces, summarize, QueryState, FETCH_CONCURRENCY};
use crate::error::{Error, Result};
use crate::model::{KeyValue, SearchQuery, Span, TraceId};
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

/// Most traces one search loads to check conditions the store cannot.
pub const SEARCH_CANDIDATES: usize = 500;
/// Spans shown per matched spanset unless `spss` says otherwise.
pub const DEFAULT_SPSS: usize = 3;

pub fn text_error(e: &Error) -> HttpResponse {
    HttpResponse::build(e.http_status())
        .content_type("text/plain; charset=utf-8")
        .body(e.to_string())
}

fn protobuf(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/protobuf"))
        .body(body)
}

async fn fetch(raw_id: &str, state: &QueryState) -> Result<Vec<Span>> {
    let id = super::jaeger::parse_trace_id("traceID", raw_id)?;
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
    HttpResponse::Ok()
        .json(json!({ "trace": { "resourceSpans": resource_spans(&spans) }, "status": "complete" }))
}

pub async fn echo() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("echo")
}

fn seconds(p: &Params, key: &str) -> Result<Option<u64>> {
    p.u64(key)?
        .map(|s| {
            s.checked_mul(1_000_000_000)
                .ok_or_else(|| bad(key, &s.to_string(), "unix seconds"))
        })
        .transpose()
}

fn parse_q(p: &Params) -> Result<Option<Query>> {
    match p.get("q").map(str::trim).filter(|q| !q.is_empty()) {
        None => Ok(None),
        Some(q) => traceql::parse(q)
            .map(Some)
            .map_err(|e| Error::InvalidArgument(format!("parameter q: {e}"))),
    }
}

struct Search {
    store: SearchQuery,
    traceql: Query,
    limit: usize,
    spss: usize,
    trace_min_ns: Option<u64>,
    trace_max_ns: Option<u64>,
}

fn parse_search(p: &Params, cfg: &crate::config::QueryConfig) -> Result<Search> {
    let traceql = parse_q(p)?.unwrap_or_default();
    let mut store = SearchQuery {
        start_ns: seconds(p, "start")?,
        end_ns: seconds(p, "end")?,
        ..Default::default()
    };
    if let (Some(s), Some(e)) = (store.start_ns, store.end_ns) {
        if s > e {
            return Err(Error::InvalidArgument(
                "parameter start: must not be after end".into(),
            ));
        }
        // `end` names a whole second.
        store.end_ns = Some(e + 999_999_999);
    }
    for (k, v) in p.get("tags").map(logfmt).transpose()?.unwrap_or_default() {
        if k == "service.name" && store.service.is_none() {
            store.service = Some(v);
        } else {
            store.tags.push((k, v));
        }
    }
    traceql.narrow(&mut store);
    let limit = clamp_limit(cfg, p.u64("limit")?);
    store.limit = SEARCH_CANDIDATES.max(limit).min(cfg.max_limit);
    let spss = match p.u64("spss")? {
        None | Some(0) => DEFAULT_SPSS,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(1000),
    };
    let (trace_min_ns, trace_max_ns) =
        (p.duration_ns("minDuration")?, p.duration_ns("maxDuration")?);
    if let (Some(a), Some(b)) = (trace_min_ns, trace_max_ns) {
        if a > b {
            return Err(Error::InvalidArgument(
                "parameter minDuration: must not exceed maxDuration".into(),
            ));
        }
    }
    Ok(Search {
        store,
        traceql,
        limit,
        spss,
        trace_min_ns,
        trace_max_ns,
    })
}

fn span_json(s: &Span, attrs: &[(AttrScope, String)]) -> Value {
    let mut shown: Vec<KeyValue> = Vec::new();
    let svc = ("service.name".to_string(), AttrScope::Resource);
    for (scope, key) in attrs
        .iter()
        .map(|(s, k)| (*s, k.clone()))
        .chain(std::iter::once((svc.1, svc.0)))
    {
        if let Some(v) = traceql::lookup(s, scope, &key) {
            if !shown.iter().any(|kv| kv.key == key) {
                shown.push(KeyValue::new(key, v.clone()));
            }
        }
    }
    json!({
        "spanID": s.span_id.to_hex(),
        "name": s.name,
        "startTimeUnixNano": s.start_ns.to_string(),
        "durationNanos": s.duration_ns().to_string(),
        "attributes": shown.iter().map(key_value).collect::<Vec<_>>(),
    })
}

/// One search result, or `None` if the trace does not match.
fn result(id: TraceId, spans: &[Span], s: &Search) -> Option<Value> {
    let sum = summarize(id, spans);
    if s.trace_min_ns.is_some_and(|m| sum.duration_ns < m)
        || s.trace_max_ns.is_some_and(|m| sum.duration_ns > m)
    {
        return None;
    }
    let ctx = TraceCtx {
        root_service: &sum.root_service,
        root_name: &sum.root_name,
        duration_ns: sum.duration_ns,
    };
    let matched: Vec<&Span> = spans
        .iter()
        .filter(|sp| s.store.matches(sp) && s.traceql.matches(sp, &ctx))
        .collect();
    if matched.is_empty() {
        return None;
    }
    let attrs = s.traceql.attribute_fields();
    let set = json!({
        "spans": matched.iter().take(s.spss).map(|sp| span_json(sp, &attrs)).collect::<Vec<_>>(),
        "matched": matched.len(),
    });
    Some(json!({
        "traceID": id.to_hex(),
        "rootServiceName": sum.root_service,
        "rootTraceName": sum.root_name,
        "startTimeUnixNano": sum.start_ns.to_string(),
        "durationMs": sum.duration_ns / 1_000_000,
        "spanSet": set.clone(),
        "spanSets": [set],
    }))
}

/// `GET /api/search?q=<TraceQL>&tags=<logfmt>&minDuration=&maxDuration=&limit=&start=&end=&spss=`.
pub async fn search(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    match search_inner(&req, &state).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => text_error(&e),
    }
}

async fn search_inner(req: &HttpRequest, state: &QueryState) -> Result<Value> {
    let s = parse_search(&Params::parse(req.query_string())?, &state.cfg)?;
    let ids: Vec<TraceId> = state
        .reader
        .search(&s.store)
        .await?
        .into_iter()
        .map(|h| h.trace_id)
        .collect();
    let mut traces = Vec::new();
    let mut inspected = 0usize;
    // Load a few traces at a time and stop once enough have matched.
    for chunk in ids.chunks(FETCH_CONCURRENCY * 2) {
        for (id, spans) in load_traces(state.reader.as_ref(), chunk).await? {
            inspected += 1;
            if traces.len() < s.limit {
                traces.extend(result(id, &spans, &s));
            }
        }
        if traces.len() >= s.limit {
            break;
        }
    }
    Ok(json!({
        "traces": traces,
        "metrics": { "inspectedTraces": inspected, "inspectedBytes": "0", "completedJobs": 1, "totalJobs": 1 },
    }))
}

/// Intrinsics offered for autocomplete (those the TraceQL subset knows).
pub const INTRINSICS: [&str; 8] = [
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
];

async fn sample_for(
    req: &HttpRequest,
    state: &QueryState,
) -> Result<(Params, super::tags::Sample)> {
    let p = Params::parse(req.query_string())?;
    // An autocomplete `q` is often unfinished: use it when it parses.
    let filter = p.get("q").and_then(|q| traceql::parse(q).ok());
    let smp = sample(
        state.reader.as_ref(),
        seconds(&p, "start")?,
        seconds(&p, "end")?,
        filter.as_ref(),
    )
    .await?;
    Ok((p, smp))
}

fn reply(r: Result<Value>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => text_error(&e),
    }
}

/// `GET /api/search/tags`: attribute names of either scope.
pub async fn tags_v1(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let (_, smp) = sample_for(&req, &state).await?;
            let names: std::collections::BTreeSet<&String> =
                smp.resource.keys().chain(smp.span.keys()).collect();
            Ok(json!({ "tagNames": names }))
        }
        .await,
    )
}

/// `GET /api/v2/search/tags?scope=`: names by scope, with intrinsics.
pub async fn tags_v2(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let (p, smp) = sample_for(&req, &state).await?;
            let scope = p.get("scope").unwrap_or("all");
            let all = [
                ("resource", smp.resource.keys().cloned().collect::<Vec<_>>()),
                ("span", smp.span.keys().cloned().collect()),
                (
                    "intrinsic",
                    INTRINSICS.iter().map(|s| s.to_string()).collect(),
                ),
            ];
            if !matches!(scope, "all" | "resource" | "span" | "intrinsic") {
                return Err(bad("scope", scope, "resource, span, intrinsic or all"));
            }
            let scopes: Vec<Value> = all
                .into_iter()
                .filter(|(n, _)| scope == "all" || scope == *n)
                .map(|(n, tags)| json!({ "name": n, "tags": tags }))
                .collect();
            Ok(json!({ "scopes": scopes }))
        }
        .await,
    )
}

/// `GET /api/search/tag/{tag}/values`: values of an attribute in either
/// scope (plus span names for the legacy `name` tag), as strings.
pub async fn tag_values_v1(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> HttpResponse {
    reply(
        async {
            let (_, smp) = sample_for(&req, &state).await?;
            let tag = path.as_str();
            let mut values: std::collections::BTreeSet<&str> = smp
                .resource
                .get(tag)
                .into_iter()
                .chain(smp.span.get(tag))
                .flatten()
                .map(|t| t.value.as_str())
                .collect();
            if tag == "name" {
                values.extend(smp.names.iter().map(|t| t.value.as_str()));
            }
            Ok(json!({ "tagValues": values }))
        }
        .await,
    )
}

/// `GET /api/v2/search/tag/{tag}/values`: `tag` is a TraceQL field
/// (`resource.service.name`, `span.http.method`, `.x`, `name`, `status` ...).
pub async fn tag_values_v2(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> HttpResponse {
    reply(
        async {
            let tag = path.as_str();
            let field = traceql::field(tag)
                .map_err(|e| Error::InvalidArgument(format!("parameter tag: {e}")))?;
            let keywords = |v: &[&str]| {
                v.iter()
                    .map(|s| Typed {
                        ty: "keyword",
                        value: s.to_string(),
                    })
                    .collect::<Vec<_>>()
            };
            let values: Vec<Typed> = match &field {
                traceql::Field::Status => keywords(&["error", "ok", "unset"]),
                traceql::Field::Kind => keywords(&[
                    "unspecified",
                    "internal",
                    "server",
                    "client",
                    "producer",
                    "consumer",
                ]),
                traceql::Field::Duration
                | traceql::Field::TraceDuration
                | traceql::Field::StatusMessage => Vec::new(),
                f => {
                    let (_, smp) = sample_for(&req, &state).await?;
                    let set: std::collections::BTreeSet<Typed> = match f {
                        traceql::Field::Name => smp.names,
                        traceql::Field::RootServiceName => smp.root_services,
                        traceql::Field::RootName => smp.root_names,
                        traceql::Field::Attr(AttrScope::Resource, k) => {
                            smp.resource.get(k).cloned().unwrap_or_default()
                        }
                        traceql::Field::Attr(AttrScope::Span, k) => {
                            smp.span.get(k).cloned().unwrap_or_default()
                        }
                        traceql::Field::Attr(AttrScope::Any, k) => smp
                            .resource
                            .get(k)
                            .into_iter()
                            .chain(smp.span.get(k))
                            .flatten()
                            .cloned()
                            .collect(),
                        _ => Default::default(),
                    };
                    set.into_iter().collect()
                }
            };
            let out: Vec<Value> = values
                .into_iter()
                .map(|t| json!({ "type": t.ty, "value": t.value }))
                .collect();
            Ok(json!({ "tagValues": out }))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::super::testutil::span;
    use super::*;

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

    #[test]
    fn search_results_carry_spansets_and_honour_trace_duration() {
        let cfg = crate::config::QueryConfig::default();
        let p =
            Params::parse("q=%7B%20name%20%3D%20%22child%22%20%7D&minDuration=1ns&spss=1").unwrap();
        let s = parse_search(&p, &cfg).unwrap();
        assert_eq!(s.store.operation.as_deref(), Some("child"));
        let spans = vec![
            span(1, 1, None, "a", "root", 10_000_000, 5_000_000),
            span(1, 2, Some(1), "b", "child", 11_000_000, 1),
            span(1, 3, Some(1), "b", "child", 12_000_000, 1),
        ];
        let r = result(TraceId([1; 16]), &spans, &s).unwrap();
        assert_eq!(r["rootServiceName"], "a");
        assert_eq!(r["rootTraceName"], "root");
        assert_eq!(r["startTimeUnixNano"], "10000000");
        assert_eq!(r["durationMs"], 5);
        assert_eq!(r["spanSets"][0]["matched"], 2);
        assert_eq!(r["spanSets"][0]["spans"].as_array().unwrap().len(), 1);
        assert_eq!(r["spanSets"][0]["spans"][0]["durationNanos"], "1");
        let p = Params::parse("minDuration=1h").unwrap();
        assert!(result(TraceId([1; 16]), &spans, &parse_search(&p, &cfg).unwrap()).is_none());
    }

    #[test]
    fn bad_search_params_are_named() {
        let cfg = crate::config::QueryConfig::default();
        for (q, name) in [
            ("q=%7B%20.a%20%3D%201%20%7C%7C%20.b%20%3D%202%20%7D", "||"),
            ("start=x", "start"),
            ("tags=k", "tags"),
            ("maxDuration=fast", "maxDuration"),
            ("start=10&end=5", "start"),
        ] {
            let e = parse_search(&Params::parse(q).unwrap(), &cfg)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(name), "{q}: {e}");
        }
    }
}
