//! Tempo search (`GET /api/search`): TraceQL or legacy logfmt tags,
//! answered with Tempo's search result shape (trace metadata plus the
//! matching spans as spansets).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::params::{logfmt, Params};
use super::tempo::{seconds, text_error};
use super::traceql::{self, AttrScope, Query};
use super::traceql_eval::{intrinsic_attr, lookup, TraceCtx};
use super::{clamp_limit, load_traces, summarize, QueryState, FETCH_CONCURRENCY};
use crate::error::{Error, Result};
use crate::model::{KeyValue, SearchQuery, Span, SpanReader, TraceId};
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
        store.end_ns = Some(e.saturating_add(999_999_999));
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

/// A matched span in Tempo's shape. Its `attributes` are those the query
/// mentions or selects, then `service.name`, as Tempo returns them.
fn span_json(s: &Span, q: &Query, attrs: &[(AttrScope, String)], ctx: &TraceCtx<'_>) -> Value {
    let mut shown: Vec<KeyValue> = Vec::new();
    let svc = (AttrScope::Resource, "service.name".to_string());
    for (scope, key) in attrs.iter().chain(std::iter::once(&svc)) {
        if let Some(v) = lookup(s, *scope, key) {
            if !shown.iter().any(|kv| &kv.key == key) {
                shown.push(KeyValue::new(key.clone(), v.clone()));
            }
        }
    }
    for kv in q
        .selected_intrinsics()
        .filter_map(|f| intrinsic_attr(f, s, ctx))
    {
        if !shown.iter().any(|k| k.key == kv.key) {
            shown.push(kv);
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
    // The TraceQL verdict is on the whole trace (`{a} && {b}`); the store
    // conditions (`tags=`, the time window) then apply per span.
    let matched: Vec<&Span> = s
        .traceql
        .matched(spans, &ctx)
        .into_iter()
        .filter(|sp| s.store.matches(sp))
        .collect();
    if matched.is_empty() {
        return None;
    }
    let attrs = s.traceql.attribute_fields();
    let set = json!({
        "spans": matched
            .iter()
            .take(s.spss)
            .map(|sp| span_json(sp, &s.traceql, &attrs, &ctx))
            .collect::<Vec<_>>(),
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
    run(state.reader.as_ref(), &state.cfg, req.query_string()).await
}

/// The search answer for a raw query string, over any reader: the one
/// path `/api/search` takes (parse, narrow, store search, exact check).
pub async fn run(
    reader: &dyn SpanReader,
    cfg: &crate::config::QueryConfig,
    query_string: &str,
) -> Result<Value> {
    let s = parse_search(&Params::parse(query_string)?, cfg)?;
    let ids: Vec<TraceId> = reader
        .search(&s.store)
        .await?
        .into_iter()
        .map(|h| h.trace_id)
        .collect();
    let mut traces = Vec::new();
    let mut inspected = 0usize;
    // Load a few traces at a time and stop once enough have matched.
    for chunk in ids.chunks(FETCH_CONCURRENCY * 2) {
        for (id, spans) in load_traces(reader, chunk).await? {
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
    fn select_shows_attributes_and_spansets_join_over_the_trace() {
        let cfg = crate::config::QueryConfig::default();
        // Percent-encodes every byte but letters and digits.
        let q: String =
            r#"{ resource.service.name = "a" } && { name = "child" } | select(span.k, status)"#
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
        let s = parse_search(&Params::parse(&format!("q={q}")).unwrap(), &cfg).unwrap();
        assert_eq!(s.store.service, None, "no narrowing across spansets");
        let mut child = span(1, 2, Some(1), "b", "child", 11_000_000, 1);
        child.attributes = vec![KeyValue::new("k", crate::model::AttrValue::Int(7))];
        let spans = vec![span(1, 1, None, "a", "root", 10_000_000, 5_000_000), child];
        let r = result(TraceId([1; 16]), &spans, &s).unwrap();
        let set = &r["spanSets"][0];
        assert_eq!(set["matched"], 2);
        let attrs = |i: usize| set["spans"][i]["attributes"].clone();
        assert_eq!(
            attrs(1),
            json!([
                {"key": "service.name", "value": {"stringValue": "b"}},
                {"key": "k", "value": {"intValue": "7"}},
                {"key": "status", "value": {"stringValue": "unset"}},
            ])
        );
        assert_eq!(attrs(0)[0]["key"], "service.name");
        // Without the root's service, the `&&` fails for the whole trace.
        assert!(result(TraceId([1; 16]), &spans[1..], &s).is_none());
    }

    #[test]
    fn bad_search_params_are_named() {
        let cfg = crate::config::QueryConfig::default();
        for (q, name) in [
            (
                "q=%7B%20.a%20%3D%201%20%7D%20%3E%3E%20%7B%7D",
                "structural operator `>>`",
            ),
            (
                "q=%7B%20.a%20%3D~%20%22(a%7B1000%7D)%7B1000%7D%22%20%7D",
                "regular expression",
            ),
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
