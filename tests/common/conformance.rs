//! The storage conformance suite: the same JSON fixtures and the same checks
//! for every tier (hot store, Elasticsearch). Expected answers come from
//! `MemoryStore`, the reference semantics, fed the same spans; each check
//! also asserts the answer is non-trivial, so a tier that returns nothing
//! (or everything) cannot pass by accident.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use strand::model::{SearchQuery, Span, SpanKind, TagCatalog, TraceId};
use strand::model::{SpanReader, SpanWriter};

use super::fixtures;
use super::store::{memory_with, scan_all, MemoryStore};

/// How the spans under test are laid out over the tier's parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Every part that holds a trace holds all of it (one store, or
    /// copies of the same traffic): the dependency graph must be exact.
    Whole,
    /// Spans of one trace split between parts (a test construction): an
    /// edge whose parent and child sit in different parts cannot be
    /// seen, so the graph must only be a subset of the reference.
    Split,
}

/// Runs every check. `settle` is awaited after writing, for tiers whose
/// writes become searchable asynchronously (it should poll, not sleep).
/// Returns the spans written.
pub async fn run<F, Fut>(
    writer: Arc<dyn SpanWriter>,
    reader: Arc<dyn SpanReader>,
    settle: F,
) -> Vec<Span>
where
    F: FnOnce(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with(writer, reader, settle, Layout::Whole).await
}

/// [`run`] for a given [`Layout`].
pub async fn run_with<F, Fut>(
    writer: Arc<dyn SpanWriter>,
    reader: Arc<dyn SpanReader>,
    settle: F,
    layout: Layout,
) -> Vec<Span>
where
    F: FnOnce(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let spans = fixtures::load_all();
    let reference = memory_with(spans.clone()).await;
    writer
        .write(spans.clone())
        .await
        .expect("tier accepts the fixtures");
    settle(spans.len()).await;

    check_fetch_by_id(&spans, reader.as_ref()).await;
    check_searches(&spans, &reference, reader.as_ref()).await;
    check_services_and_operations(&reference, reader.as_ref()).await;
    check_scan(&spans, reader.as_ref()).await;
    check_traceql(&spans, reader.as_ref()).await;
    check_catalog(&spans, &reference, reader.as_ref()).await;
    check_dependencies(&spans, &reference, reader.as_ref(), layout).await;
    spans
}

fn window(spans: &[Span]) -> (u64, u64) {
    let min = spans.iter().map(|s| s.start_ns).min().unwrap();
    let max = spans.iter().map(|s| s.start_ns).max().unwrap();
    (min - 1, max + 1)
}

/// Far before the fixtures (a day earlier than their first span).
fn empty_window(spans: &[Span]) -> (u64, u64) {
    let (from, _) = window(spans);
    let day = 86_400_000_000_000;
    (from - 2 * day, from - day)
}

async fn check_catalog(spans: &[Span], reference: &MemoryStore, reader: &dyn SpanReader) {
    let (from, to) = window(spans);
    let want = reference.tag_catalog(from, to).await.unwrap();
    let got = reader.tag_catalog(from, to).await.expect("tag catalog");
    assert!(want.services.len() >= 3 && !want.span.is_empty() && !want.resource.is_empty());
    assert_eq!(
        got.services, want.services,
        "services with their span names"
    );
    assert_eq!(
        got.resource, want.resource,
        "resource keys and typed values"
    );
    assert_eq!(got.span, want.span, "span keys and typed values");
    assert_eq!(got.root_services, want.root_services);
    assert_eq!(got.root_names, want.root_names);
    check_per_service(&want, &got);
    let (from, to) = empty_window(spans);
    assert!(reader
        .tag_catalog(from, to)
        .await
        .unwrap()
        .services
        .is_empty());
}

/// Each service's own keys and values: exactly the reference's when the
/// tier says it has them for the window; otherwise (a window Elasticsearch
/// answers for, whatever the layout) only real ones.
fn check_per_service(want: &TagCatalog, got: &TagCatalog) {
    assert!(want.per_service_complete(), "the reference computes them");
    let real = &want.by_service.union();
    assert!(
        real.len() >= 3 && real.values().any(|a| !a.span.is_empty()),
        "fixture sanity: services with attributes"
    );
    if got.per_service_complete() {
        assert_eq!(
            got.by_service.union(),
            *real,
            "per-service keys and typed values"
        );
        return;
    }
    for (svc, a) in &got.by_service.union() {
        let r = real
            .get(svc)
            .unwrap_or_else(|| panic!("{svc} is a real service"));
        for (dict, rdict) in [(&a.resource, &r.resource), (&a.span, &r.span)] {
            for (k, v) in dict {
                let rv = rdict.get(k).unwrap_or_else(|| panic!("{svc}: {k} is real"));
                assert!(
                    v.values.keys().all(|x| rv.values.contains_key(x)),
                    "{svc}.{k}"
                );
            }
        }
    }
}

/// For tiers that must keep per-service data (no Elasticsearch in the
/// window): the catalog of the fixtures' window says it is complete and
/// matches the reference. Run after [`run`] wrote `spans` (what it returned).
pub async fn check_per_service_complete(reader: &dyn SpanReader, spans: &[Span]) {
    let reference = memory_with(spans.to_vec()).await;
    let (from, to) = window(spans);
    let got = reader.tag_catalog(from, to).await.expect("tag catalog");
    assert!(
        got.per_service_complete(),
        "this tier keeps per-service data"
    );
    check_per_service(&reference.tag_catalog(from, to).await.unwrap(), &got);
}

async fn check_dependencies(
    spans: &[Span],
    reference: &MemoryStore,
    reader: &dyn SpanReader,
    layout: Layout,
) {
    let (from, to) = window(spans);
    let want = reference.dependencies(from, to).await.unwrap();
    let got = reader.dependencies(from, to).await.expect("dependencies");
    assert!(
        !want.edges.is_empty(),
        "fixture sanity: the fixtures have calls"
    );
    match layout {
        Layout::Whole => assert_eq!(got, want, "every call, exact counts"),
        Layout::Split => {
            for (edge, c) in &got.edges {
                assert!(want.edges.contains_key(edge), "{edge:?} is a real edge");
                assert!(c.errors <= c.calls);
            }
        }
    }
    let (from, to) = empty_window(spans);
    assert!(reader
        .dependencies(from, to)
        .await
        .unwrap()
        .edges
        .is_empty());
}

fn sorted(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_by_key(|s| (s.span_id, s.start_ns));
    v.dedup_by_key(|s| (s.span_id, s.start_ns));
    v
}

async fn check_fetch_by_id(spans: &[Span], reader: &dyn SpanReader) {
    let ids: BTreeSet<TraceId> = spans.iter().map(|s| s.trace_id).collect();
    assert!(ids.len() >= 4, "fixtures hold several traces");
    for id in ids {
        let want = sorted(spans.iter().filter(|s| s.trace_id == id).cloned().collect());
        let got = sorted(reader.trace(id).await.expect("trace fetch"));
        assert_eq!(got, want, "trace {id} comes back with every field intact");
    }
    let unknown = reader
        .trace(TraceId([0xEE; 16]))
        .await
        .expect("unknown id is not an error");
    assert!(unknown.is_empty());
}

/// The queries every tier must answer like the reference.
fn queries(spans: &[Span]) -> Vec<(&'static str, SearchQuery)> {
    let min = spans.iter().map(|s| s.start_ns).min().unwrap();
    let max = spans.iter().map(|s| s.start_ns).max().unwrap();
    let q = |f: &dyn Fn(&mut SearchQuery)| {
        let mut q = SearchQuery {
            limit: 20,
            start_ns: Some(min - 1),
            end_ns: Some(max + 1),
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let tag = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    vec![
        ("service", q(&|q| q.service = Some("frontend".into()))),
        (
            "service+operation",
            q(&|q| {
                q.service = Some("payment".into());
                q.operation = Some("Charge".into());
            }),
        ),
        (
            "operation across services",
            q(&|q| q.operation = Some("Charge".into())),
        ),
        ("span kind", q(&|q| q.span_kind = Some(SpanKind::Consumer))),
        ("error pseudo-tag", q(&|q| q.tags = tag("error", "true"))),
        (
            "indexed: http.request.method",
            q(&|q| q.tags = tag("http.request.method", "GET")),
        ),
        (
            "indexed: http.response.status_code (int)",
            q(&|q| q.tags = tag("http.response.status_code", "500")),
        ),
        (
            "indexed: http.route",
            q(&|q| q.tags = tag("http.route", "/search")),
        ),
        (
            "indexed: rpc.service",
            q(&|q| q.tags = tag("rpc.service", "PaymentService")),
        ),
        (
            "indexed: db.system",
            q(&|q| q.tags = tag("db.system", "redis")),
        ),
        ("indexed: user_id", q(&|q| q.tags = tag("user_id", "u-42"))),
        (
            "indexed: enduser.id",
            q(&|q| q.tags = tag("enduser.id", "svc-billing")),
        ),
        (
            "unindexed span tag",
            q(&|q| q.tags = tag("payment.currency", "EUR")),
        ),
        (
            "unindexed bool tag",
            q(&|q| q.tags = tag("cache.hit", "false")),
        ),
        (
            "resource tag",
            q(&|q| q.tags = tag("deployment.environment", "prod")),
        ),
        (
            "non-ASCII service",
            q(&|q| q.service = Some("Zürich-gateway".into())),
        ),
        (
            "two tags on one span",
            q(&|q| {
                q.tags = vec![
                    ("rpc.service".into(), "PaymentService".into()),
                    ("retry.count".into(), "2".into()),
                ]
            }),
        ),
        (
            "tags split across spans do not match",
            q(&|q| {
                q.tags = vec![
                    ("db.system".into(), "postgresql".into()),
                    ("user_id".into(), "u-42".into()),
                ]
            }),
        ),
        (
            "min duration",
            q(&|q| q.min_duration_ns = Some(1_000_000_000)),
        ),
        ("max duration", q(&|q| q.max_duration_ns = Some(5_000_000))),
        (
            "duration band",
            q(&|q| {
                q.min_duration_ns = Some(40_000_000);
                q.max_duration_ns = Some(100_000_000);
            }),
        ),
        (
            "time window prunes older traces",
            q(&|q| q.start_ns = Some(min + 30_000_000_000)),
        ),
        (
            "time window prunes newer traces",
            q(&|q| q.end_ns = Some(min + 30_000_000_000)),
        ),
        (
            "empty window",
            q(&|q| {
                q.start_ns = Some(max + 10);
                q.end_ns = Some(max + 20);
            }),
        ),
        ("limit keeps the newest", q(&|q| q.limit = 2)),
        ("no match", q(&|q| q.tags = tag("user_id", "nobody"))),
    ]
}

async fn check_searches(spans: &[Span], reference: &MemoryStore, reader: &dyn SpanReader) {
    let total: BTreeSet<TraceId> = spans.iter().map(|s| s.trace_id).collect();
    for (name, q) in queries(spans) {
        let want = reference.search(&q).await.unwrap();
        let got = reader
            .search(&q)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ids = |h: &[strand::model::TraceHit]| h.iter().map(|h| h.trace_id).collect::<Vec<_>>();
        assert_eq!(
            ids(&got),
            ids(&want),
            "query {name:?}: same traces, newest first"
        );
        // The suite must discriminate: only the designated queries may be
        // empty, and none may return every trace unless limited.
        let expect_empty = matches!(
            name,
            "tags split across spans do not match" | "empty window" | "no match"
        );
        assert_eq!(want.is_empty(), expect_empty, "fixture sanity for {name:?}");
        if !name.starts_with("limit") && name != "service" && !name.starts_with("time window") {
            assert!(
                want.len() < total.len(),
                "fixture sanity: {name:?} must not match every trace"
            );
        }
    }
}

async fn check_services_and_operations(reference: &MemoryStore, reader: &dyn SpanReader) {
    assert_eq!(
        reader.services().await.unwrap(),
        reference.services().await.unwrap()
    );
    for svc in [Some("payment"), Some("worker"), None] {
        let mut got = reader.operations(svc).await.unwrap();
        got.sort();
        let want = reference.operations(svc).await.unwrap();
        assert_eq!(got, want, "operations of {svc:?}");
    }
}

async fn check_scan(spans: &[Span], reader: &dyn SpanReader) {
    let min = spans.iter().map(|s| s.start_ns).min().unwrap();
    let max = spans.iter().map(|s| s.start_ns).max().unwrap();
    let q = SearchQuery {
        start_ns: Some(min),
        end_ns: Some(max),
        service: Some("frontend".into()),
        ..Default::default()
    };
    let got = scan_all(reader, &q, 1).await;
    let want: Vec<Span> = spans.iter().filter(|s| q.matches(s)).cloned().collect();
    assert!(want.len() >= 2);
    assert_eq!(
        sorted(got),
        sorted(want),
        "scan returns exactly the matching spans"
    );
}

/// TraceQL searches, each matching some fixture traces but not all.
const TRACEQL: [&str; 16] = [
    r#"{ resource.service.name =~ "pay.*|work.*" }"#,
    r#"{ resource.service.name = "payment" && name = "Charge" && status = error }"#,
    r#"{ (span.db.system = "redis" || span.db.system = "postgresql") }"#,
    "{ span.http.response.status_code >= 500 }",
    "{ duration > 100ms && kind = internal }",
    r#"{ resource.service.name = "frontend" } && { span.db.system = "redis" }"#,
    r#"{ resource.service.name = "billing" } || { span.ok = true }"#,
    r#"{ span.cache.hit = false && resource.service.name = "search" }"#,
    r#"{ name =~ "GET.*" && span.http.request.method = "GET" }"#,
    r#"{ rootServiceName = "frontend" && traceDuration < 1s }"#,
    "{ span.ratio < 0.5 && span.big > 9007199254740992 }",
    r#"{ .deployment.environment = "prod" && span.user_id = "u-42" }"#,
    "{ span.payment.amount > 99 } | select(span.payment.currency)",
    "{ status = ok }",
    r#"{ span.messaging.system = "kafka" && kind = consumer }"#,
    r#"{ resource.service.name = "Zürich-gateway" && span.note =~ "naïve.*" }"#,
];

/// TraceQL through the query layer's own search path (parse, narrow the
/// store search, store search on this tier, exact check) finds exactly the
/// traces the evaluator finds over every fixture trace: narrowing on any
/// tier must never lose a match.
async fn check_traceql(spans: &[Span], reader: &dyn SpanReader) {
    use strand::query::{summarize, tempo_search, traceql, traceql_eval::TraceCtx};
    let mut traces: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
    for s in spans {
        traces.entry(s.trace_id).or_default().push(s.clone());
    }
    let min = spans.iter().map(|s| s.start_ns).min().unwrap() / 1_000_000_000;
    let max = spans.iter().map(|s| s.start_ns).max().unwrap() / 1_000_000_000;
    let cfg = strand::config::QueryConfig::default();
    for q in TRACEQL {
        let parsed = traceql::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let want: BTreeSet<String> = traces
            .iter()
            .filter(|(id, spans)| {
                let sum = summarize(**id, spans);
                let ctx = TraceCtx {
                    root_service: &sum.root_service,
                    root_name: &sum.root_name,
                    duration_ns: sum.duration_ns,
                };
                !parsed.matched(spans, &ctx).is_empty()
            })
            .map(|(id, _)| id.to_hex())
            .collect();
        assert!(
            !want.is_empty() && want.len() < traces.len(),
            "fixture sanity: {q} matches some traces, not all ({want:?})"
        );
        let qs = format!(
            "q={}&start={}&end={}&limit=100",
            super::http::enc(q),
            min - 1,
            max + 1
        );
        let v = tempo_search::run(reader, &cfg, &qs)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        let got: BTreeSet<String> = v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want, "TraceQL {q}");
    }
}
