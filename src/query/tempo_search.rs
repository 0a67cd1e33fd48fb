//! Tempo search (`GET /api/search`): TraceQL or legacy logfmt tags,
//! answered with Tempo's search result shape (trace metadata plus the
//! matching spans as spansets).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::params::{logfmt, Params};
use super::tempo::{seconds, text_error};
use super::traceql::{self, AttrScope, Query};
use super::traceql_eval::{lookup, TraceCtx};
use super::{clamp_limit, load_traces, summarize, QueryState, FETCH_CONCURRENCY};
use crate::error::{Error, Result};
use crate::model::{KeyValue, SearchQuery, Span, TraceId};
use crate::otlp::json::attribute_to_json as key_value;

/// Most traces one search loads to check conditions the store cannot.
pub const SEARCH_CANDIDATES: usize = 500;
/// Spans shown per matched spanset unless `spss` says otherwise.
pub const DEFAULT_SPSS: usize = 3;

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
        if let Some(v) = lookup(s, scope, &key) {
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

#[cfg(test)]
mod tests {
    use super::super::testutil::span;
    use super::*;

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
