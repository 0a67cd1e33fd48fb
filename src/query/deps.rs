//! The service dependency graph (`GET /api/dependencies`): an edge
//! parent → child for every span whose parent span belongs to another
//! service, counted per call, with the calls whose child span failed.
//!
//! Answered from the tiers' graphs (`SpanReader::dependencies`): the hot
//! store counts edges as spans are written, bucketed by the minute of the
//! child's start, so a window's graph covers all of its stored traffic
//! (what the edge tracker can miss is in docs/STORAGE.md). The previous
//! computation, from the newest [`MAX_TRACES`] traces of the window, stays
//! reachable with `strategy=sample` (for comparison) and is what the
//! Elasticsearch tier does for its part.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::jaeger::envelope;
use super::params::{bad, Params};
use super::{load_traces, QueryState};
use crate::error::{Error, Result};
use crate::model::catalog::{EdgeCounts, Graph};
use crate::model::{SearchQuery, Span, SpanId, TraceId};

/// Most traces one sampled dependency request scans.
pub const MAX_TRACES: usize = 1000;
/// Jaeger's default `lookback`: one day.
pub const DEFAULT_LOOKBACK_MS: u64 = 86_400_000;
const CHUNK: usize = 64;

/// Adds one trace's cross-service calls to `graph` (the sampling path:
/// every call of a sampled trace counts, whatever its child's start).
pub fn add_trace(graph: &mut Graph, spans: &[Span]) {
    let by_id: HashMap<SpanId, &Span> = spans.iter().map(|s| (s.span_id, s)).collect();
    for child in spans {
        let Some(parent) = child.parent_span_id.and_then(|p| by_id.get(&p)) else {
            continue;
        };
        let (ps, cs) = (parent.service_name(), child.service_name());
        if ps != cs {
            let errors = u64::from(child.is_error());
            graph.add(ps, cs, EdgeCounts { calls: 1, errors });
        }
    }
}

pub fn to_json(graph: &Graph) -> Vec<Value> {
    graph
        .edges
        .iter()
        .map(|((p, c), e)| json!({ "parent": p, "child": c, "callCount": e.calls, "errorCount": e.errors }))
        .collect()
}

/// The old computation: the newest [`MAX_TRACES`] traces with a span in
/// the window, loaded a chunk at a time.
pub async fn sampled(state: &QueryState, start: u64, end: u64) -> Result<Graph> {
    let q = SearchQuery {
        start_ns: Some(start),
        end_ns: Some(end),
        limit: MAX_TRACES,
        ..Default::default()
    };
    let ids: Vec<TraceId> = state
        .reader
        .search(&q)
        .await?
        .into_iter()
        .map(|h| h.trace_id)
        .collect();
    let mut graph = Graph::default();
    for chunk in ids.chunks(CHUNK) {
        for (_, spans) in load_traces(state.reader.as_ref(), chunk).await? {
            add_trace(&mut graph, &spans);
        }
    }
    Ok(graph)
}

/// `GET /api/dependencies?endTs=<ms>&lookback=<ms>[&strategy=graph|sample]`.
pub async fn dependencies(req: HttpRequest, state: web::Data<QueryState>) -> Result<HttpResponse> {
    let p = Params::parse(req.query_string())?;
    let ms_to_ns = |key: &str, v: u64| {
        v.checked_mul(1_000_000)
            .ok_or_else(|| bad(key, &v.to_string(), "milliseconds"))
    };
    let end = match p.u64("endTs")? {
        Some(ms) => ms_to_ns("endTs", ms)?,
        None => crate::model::now_ns(),
    };
    let lookback = ms_to_ns(
        "lookback",
        p.u64("lookback")?.unwrap_or(DEFAULT_LOOKBACK_MS),
    )?;
    if lookback == 0 {
        return Err(Error::InvalidArgument(
            "parameter lookback: must be positive".into(),
        ));
    }
    let start = end.saturating_sub(lookback);
    let graph = match p.get("strategy") {
        None | Some("graph") => state.reader.dependencies(start, end).await?,
        Some("sample") => sampled(&state, start, end).await?,
        Some(other) => return Err(bad("strategy", other, "graph or sample")),
    };
    let data = to_json(&graph);
    let total = data.len();
    let errors = if graph.truncated {
        json!([{ "code": 0, "msg": format!("graph truncated at {} edges", crate::model::catalog::MAX_EDGES) }])
    } else {
        Value::Null
    };
    Ok(envelope(Value::Array(data), total, errors))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::span;
    use super::*;
    use crate::model::StatusCode;

    #[test]
    fn counts_cross_service_calls_and_errors() {
        let mut failed = span(1, 3, Some(2), "db", "select", 3, 1);
        failed.status.code = StatusCode::Error;
        let t1 = vec![
            span(1, 1, None, "front", "GET", 0, 10),
            span(1, 2, Some(1), "api", "call", 1, 5),
            failed,
            span(1, 4, Some(2), "db", "insert", 4, 1),
            span(1, 5, Some(1), "front", "render", 6, 1), // same service: no edge
            span(1, 6, Some(99), "cache", "get", 7, 1),   // parent missing: no edge
        ];
        let t2 = vec![
            span(2, 1, None, "front", "GET", 0, 10),
            span(2, 2, Some(1), "api", "call", 1, 5),
        ];
        let mut g = Graph::default();
        add_trace(&mut g, &t1);
        add_trace(&mut g, &t2);
        assert_eq!(g.edges.len(), 2);
        assert_eq!(
            g.edges[&("front".to_string(), "api".to_string())],
            EdgeCounts {
                calls: 2,
                errors: 0
            }
        );
        assert_eq!(
            g.edges[&("api".to_string(), "db".to_string())],
            EdgeCounts {
                calls: 2,
                errors: 1
            }
        );
        assert_eq!(
            to_json(&g)[0],
            json!({"parent": "api", "child": "db", "callCount": 2, "errorCount": 1})
        );
    }

    #[test]
    fn empty_and_single_service_traces_give_no_edges() {
        let mut g = Graph::default();
        add_trace(&mut g, &[]);
        add_trace(
            &mut g,
            &[
                span(1, 1, None, "a", "x", 0, 1),
                span(1, 2, Some(1), "a", "y", 0, 1),
            ],
        );
        assert!(g.edges.is_empty());
    }
}
