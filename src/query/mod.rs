//! The query service (:16686): Jaeger v1 and api_v3 JSON, Grafana Tempo
//! compatible endpoints, the dependency graph, /metrics and health. It
//! reads through [`SpanReader`] only, so it serves the hot store,
//! Elasticsearch, or a merge of tiers alike. See docs/API.md.
//!
//! Roles: `jaeger` + `jaeger_json` (v1 API and its trace JSON), `apiv3` +
//! `apiv3_query` (Jaeger api_v3), `transform` (OTLP JSON upload → Jaeger JSON), `tempo`, `tempo_search`, `traceql`,
//! `traceql_eval`, `tags` (Tempo API), `skew`
//! (clock-skew adjustment), `deps` (dependency graph), `params` (query
//! string parsing), `health` (/metrics, /healthz, /readyz).

pub mod apiv3;
pub mod apiv3_query;
pub mod deps;
pub mod health;
pub mod internal;
pub mod internal_metrics;
pub mod jaeger;
pub mod jaeger_json;
pub mod metrics_api;
pub mod metrics_api_compute;
pub mod metrics_api_exemplars;
pub mod openmetrics;
pub mod params;
pub mod skew;
pub mod tags;
pub mod tags_sample;
pub mod tempo;
pub mod tempo_search;
pub mod traceql;
pub mod traceql_eval;
pub mod transform;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, Route};
use futures::stream::{self, StreamExt};

use crate::actors::tree::Health;
use crate::error::{Error, Result};
use crate::metrics::Counter;
use crate::model::{dedup_spans, Span, SpanId, SpanReader, TraceId};

/// Shared state of the query handlers (registered as `web::Data`).
pub struct QueryState {
    pub reader: Arc<dyn SpanReader>,
    pub cfg: crate::config::QueryConfig,
    /// Readiness and the supervision tree's state.
    pub health: Health,
    /// Span metrics (RED per service and operation), docs/METRICS.md.
    pub span_metrics: Arc<dyn crate::spanmetrics::MetricsReader>,
}

/// Traces fetched at once when a handler loads several (search results,
/// dependency scans): enough to overlap tier latency, few enough that one
/// request cannot monopolise the store.
pub const FETCH_CONCURRENCY: usize = 8;

/// Registers every route of the query API. Leaves `/`, `/static/*` and
/// `/api/export/*` to other modules.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let routes: Vec<(&str, Route)> = vec![
        // Jaeger v1 (the Jaeger UI's API)
        ("/api/traces/{traceID}", web::get().to(trace_v1)),
        ("/api/traces", web::get().to(jaeger::find_traces)),
        ("/api/services", web::get().to(jaeger::services)),
        (
            "/api/services/{service}/operations",
            web::get().to(jaeger::service_operations),
        ),
        ("/api/operations", web::get().to(jaeger::operations)),
        ("/api/dependencies", web::get().to(deps::dependencies)),
        // Jaeger api_v3 (OTLP JSON)
        ("/api/v3/traces/{traceID}", web::get().to(apiv3::get_trace)),
        ("/api/v3/traces", get_or_post().to(apiv3::find_traces)),
        ("/api/v3/services", web::get().to(apiv3::services)),
        ("/api/v3/operations", web::get().to(apiv3::operations)),
        (
            "/api/v3/trace-summaries",
            get_or_post().to(apiv3::trace_summaries),
        ),
        // Grafana Tempo data source
        (
            "/api/v2/traces/{traceID}",
            web::get().to(tempo::get_trace_v2),
        ),
        ("/api/search", web::get().to(tempo_search::search)),
        ("/api/search/tags", web::get().to(tags::tags_v1)),
        ("/api/v2/search/tags", web::get().to(tags::tags_v2)),
        (
            "/api/search/tag/{tag}/values",
            web::get().to(tags::tag_values_v1),
        ),
        (
            "/api/v2/search/tag/{tag}/values",
            web::get().to(tags::tag_values_v2),
        ),
        ("/api/echo", web::get().to(tempo::echo)),
        ("/api/status/buildinfo", web::get().to(tempo::buildinfo)),
        // Operations
        ("/metrics", web::get().to(health::metrics)),
        ("/healthz", web::get().to(health::healthz)),
        ("/readyz", web::get().to(health::readyz)),
    ];
    for (path, route) in routes {
        cfg.service(web::resource(path).wrap(from_fn(record)).route(route));
    }
    cfg.service(
        web::resource("/api/transform")
            .app_data(web::PayloadConfig::new(transform::MAX_BODY_BYTES))
            .wrap(from_fn(record))
            .route(web::post().to(transform::handler)),
    );
    cfg.service(
        web::resource("/api/admin/actors")
            .wrap(from_fn(record))
            .route(web::get().to(health::actors)),
    );
    cfg.configure(metrics_api::configure);
    cfg.configure(internal::configure);
    cfg.configure(internal_metrics::configure);
}

/// api_v3 searches come as GET (query string) or POST (JSON body).
fn get_or_post() -> Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Post()))
}

/// Counts requests and their latency per endpoint (the route pattern, so
/// label cardinality is bounded by the route table).
async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let endpoint = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let res = next.call(req).await;
    let code = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let labels = [("endpoint", endpoint.as_str())];
    Counter::new(
        "strand_query_requests_total",
        "query API requests by endpoint and HTTP status",
        &[("endpoint", &endpoint), ("code", &code.to_string())],
    )
    .inc();
    Counter::new(
        "strand_query_request_duration_microseconds_total",
        "query API time spent per endpoint (divide by requests for the mean)",
        &labels,
    )
    .add(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    res
}

/// `GET /api/traces/{traceID}`: Jaeger JSON, or Tempo's protobuf trace
/// when the client asks for protobuf (Grafana's Tempo data source does).
async fn trace_v1(
    req: actix_web::HttpRequest,
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> Result<actix_web::HttpResponse> {
    if params::wants_protobuf(&req) {
        return Ok(tempo::get_trace_v1_protobuf(&path, &state).await);
    }
    jaeger::get_trace(req, path, state).await
}

/// One trace, deduplicated (`model::dedup_spans`) and sorted by start;
/// empty if unknown.
pub async fn load_trace(reader: &dyn SpanReader, id: TraceId) -> Result<Vec<Span>> {
    let mut spans = reader.trace(id).await?;
    dedup_spans(&mut spans);
    Ok(spans)
}

/// Several traces, in the order given, skipping unknown ones and ones over
/// the size limit (a search or graph is not refused for one runaway trace;
/// fetching it by id says why); at most [`FETCH_CONCURRENCY`] fetches in
/// flight.
pub async fn load_traces(
    reader: &dyn SpanReader,
    ids: &[TraceId],
) -> Result<Vec<(TraceId, Vec<Span>)>> {
    let fetched: Vec<Result<(TraceId, Vec<Span>)>> = stream::iter(ids.iter().copied())
        .map(|id| async move { load_trace(reader, id).await.map(|t| (id, t)) })
        .buffered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::with_capacity(fetched.len());
    for r in fetched {
        let (id, spans) = match r {
            Err(Error::TooLarge(reason)) => {
                tracing::warn!(%reason, "trace left out of a multi-trace answer");
                continue;
            }
            r => r?,
        };
        if !spans.is_empty() {
            out.push((id, spans));
        }
    }
    Ok(out)
}

/// The trace's root: the earliest span without a parent; failing that
/// (root not received yet) the earliest span whose parent is missing.
pub fn root_span(spans: &[Span]) -> Option<&Span> {
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .min_by_key(|s| s.start_ns)
        .or_else(|| {
            spans
                .iter()
                .filter(|s| s.parent_span_id.is_some_and(|p| !ids.contains(&p)))
                .min_by_key(|s| s.start_ns)
        })
        .or_else(|| spans.iter().min_by_key(|s| s.start_ns))
}

/// What a search result list shows of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub root_service: String,
    pub root_name: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub span_count: usize,
    pub error_count: usize,
    pub services: Vec<String>,
}

pub fn summarize(trace_id: TraceId, spans: &[Span]) -> TraceSummary {
    let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
    let root = root_span(spans);
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service_name()).collect();
    TraceSummary {
        trace_id,
        root_service: root
            .map(|r| r.service_name().to_string())
            .unwrap_or_default(),
        root_name: root.map(|r| r.name.clone()).unwrap_or_default(),
        start_ns: start,
        duration_ns: end.saturating_sub(start),
        span_count: spans.len(),
        error_count: spans.iter().filter(|s| s.is_error()).count(),
        services: services.into_iter().map(str::to_string).collect(),
    }
}

/// The search limit a request asked for, defaulted and capped by config.
pub fn clamp_limit(cfg: &crate::config::QueryConfig, asked: Option<u64>) -> usize {
    match asked {
        None | Some(0) => cfg.default_limit,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(cfg.max_limit),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::model::{AttrValue, KeyValue, Resource, Scope};

    pub fn resource(svc: &str) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![KeyValue::new("service.name", AttrValue::Str(svc.into()))],
            ..Default::default()
        })
    }

    pub fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        svc: &str,
        name: &str,
        start_ns: u64,
        dur_ns: u64,
    ) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([0, 0, 0, 0, 0, 0, 0, id]),
            parent_span_id: parent.map(|p| SpanId([0, 0, 0, 0, 0, 0, 0, p])),
            name: name.into(),
            start_ns,
            end_ns: start_ns + dur_ns,
            resource: resource(svc),
            scope: Arc::new(Scope {
                name: "lib".into(),
                version: "1.0".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::span;
    use super::*;

    #[test]
    fn root_prefers_parentless_then_orphans() {
        let spans = vec![
            span(1, 2, Some(1), "b", "child", 5, 1),
            span(1, 1, None, "a", "root", 10, 5),
        ];
        assert_eq!(root_span(&spans).map(|s| s.name.as_str()), Some("root"));
        let orphans = vec![
            span(1, 3, Some(2), "c", "late", 9, 1),
            span(1, 2, Some(1), "b", "early", 5, 1),
            span(1, 4, Some(2), "c", "x", 1, 1),
        ];
        assert_eq!(root_span(&orphans).map(|s| s.name.as_str()), Some("early"));
        assert!(root_span(&[]).is_none());
    }

    #[test]
    fn summary_counts_services_and_errors() {
        let mut e = span(1, 2, Some(1), "b", "child", 12, 20);
        e.status.code = crate::model::StatusCode::Error;
        let s = summarize(TraceId([1; 16]), &[span(1, 1, None, "a", "root", 10, 5), e]);
        assert_eq!(
            (s.root_service.as_str(), s.root_name.as_str()),
            ("a", "root")
        );
        assert_eq!(
            (s.start_ns, s.duration_ns, s.span_count, s.error_count),
            (10, 22, 2, 1)
        );
        assert_eq!(s.services, vec!["a", "b"]);
    }
}
