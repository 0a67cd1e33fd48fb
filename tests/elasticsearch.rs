//! The Elasticsearch tier against a real Elasticsearch on 127.0.0.1:9200
//! (`scripts/elasticsearch.sh start`; STRAND_ES_URL overrides). Every test
//! uses its own index prefix and cleans up after itself.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use elasticsearch::indices::{
    IndicesCreateParts, IndicesDeleteIndexTemplateParts, IndicesDeleteParts, IndicesGetMappingParts,
};
use serde_json::{json, Value};
use strand::actors::es_writer::start_es_writer;
use strand::config::{ElasticsearchConfig, IndexConfig};
use strand::elasticsearch::{janitor, EsStore};
use strand::metrics::ActorStats;
use strand::model::*;
use strand::store::memory::MemoryStore;
use strand::store::{SpanReader, SpanWriter};

const NS: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * NS;
const DAY: u64 = 24 * HOUR;

fn es_url() -> String {
    std::env::var("STRAND_ES_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into())
}

/// Fails (never skips) when Elasticsearch is not there.
async fn require_es() {
    let url = es_url();
    let ok = reqwest::Client::new()
        .get(format!("{url}/_cluster/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    assert!(
        ok,
        "Elasticsearch is not reachable at {url}: start it with `scripts/elasticsearch.sh start`"
    );
}

fn unique_prefix(test: &str) -> String {
    format!(
        "t-{test}-{}-{}",
        std::process::id(),
        now_ns() % 1_000_000_000
    )
}

fn es_config(prefix: &str) -> ElasticsearchConfig {
    ElasticsearchConfig {
        enabled: true,
        url: es_url(),
        index_prefix: prefix.to_string(),
        bulk_max_delay_ms: 50,
        request_timeout_ms: 10_000,
        ..Default::default()
    }
}

async fn cleanup(store: &EsStore, prefix: &str) {
    let pattern = format!("{prefix}-spans-*");
    let _ = store
        .client()
        .indices()
        .delete(IndicesDeleteParts::Index(&[&pattern]))
        .send()
        .await;
    let name = format!("{prefix}-spans");
    let _ = store
        .client()
        .indices()
        .delete_index_template(IndicesDeleteIndexTemplateParts::Name(&name))
        .send()
        .await;
}

/// Polls `f` until it yields `Some`, or fails after `timeout`.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Number of documents in the prefix's span indices.
async fn count_docs(store: &EsStore, prefix: &str) -> u64 {
    let pattern = format!("{prefix}-spans-*");
    let resp = store
        .client()
        .count(elasticsearch::CountParts::Index(&[&pattern]))
        .allow_no_indices(true)
        .send()
        .await
        .expect("count");
    let v: Value = resp.json().await.expect("count json");
    v["count"].as_u64().unwrap_or(0)
}

async fn wait_indexed(store: &EsStore, prefix: &str, n: u64) {
    poll(
        &format!("{n} documents in {prefix}"),
        Duration::from_secs(60),
        || async {
            let c = count_docs(store, prefix).await;
            assert!(c <= n, "more documents than written: {c} > {n}");
            (c == n).then_some(())
        },
    )
    .await;
    store.refresh().await.expect("refresh");
}

fn resource(service: &str, extra: Vec<KeyValue>) -> Arc<Resource> {
    let mut attributes = vec![KeyValue::new(
        "service.name",
        AttrValue::Str(service.into()),
    )];
    attributes.extend(extra);
    Arc::new(Resource {
        attributes,
        dropped_attributes_count: 0,
        schema_url: String::new(),
    })
}

/// A varied, deterministic data set: 3 services, several operations and
/// kinds, error and ok statuses, allow-listed and other tags, resource
/// tags, spans over the last two days.
fn dataset(now: u64, traces: usize) -> Vec<Span> {
    let services = ["api", "db", "web"];
    let ops = ["GET /a", "GET /b", "query", "render"];
    let mut spans = Vec::new();
    for t in 0..traces {
        let mut tid = [0u8; 16];
        tid[..8].copy_from_slice(&(t as u64 + 1).to_be_bytes());
        tid[8..].copy_from_slice(&now.to_be_bytes());
        let base = now - (t as u64 * 37 * 60 * NS) % (2 * DAY) - HOUR;
        for s in 0..(1 + t % 4) {
            let i = t * 7 + s;
            let mut attributes = vec![
                KeyValue::new("http.method", AttrValue::Str(["GET", "POST"][i % 2].into())),
                KeyValue::new("http.status_code", AttrValue::Int([200, 404, 500][i % 3])),
                KeyValue::new("user_id", AttrValue::Str(format!("u{}", i % 5))),
                KeyValue::new("custom.tag", AttrValue::Str(format!("c{}", i % 4))),
                KeyValue::new("flag", AttrValue::Bool(i % 2 == 0)),
            ];
            if i % 11 == 0 {
                attributes.push(KeyValue::new("error", AttrValue::Bool(i % 2 == 0)));
            }
            let start = base + s as u64 * 1_000_123;
            spans.push(Span {
                trace_id: TraceId(tid),
                span_id: SpanId((i as u64 + 1).to_be_bytes()),
                parent_span_id: (s > 0).then(|| SpanId((t as u64 * 7 + 1).to_be_bytes())),
                name: ops[i % ops.len()].into(),
                kind: SpanKind::from_i32((i % 5) as i32 + 1),
                start_ns: start,
                end_ns: start + (i as u64 % 9 + 1) * 1_000_000,
                attributes,
                status: Status {
                    code: StatusCode::from_i32((i % 3) as i32),
                    message: String::new(),
                },
                resource: resource(
                    services[i % 3],
                    vec![KeyValue::new(
                        "host.name",
                        AttrValue::Str(format!("h{}", i % 2)),
                    )],
                ),
                ..Default::default()
            });
        }
    }
    spans
}

#[actix_rt::test]
async fn round_trip_every_field() {
    require_es().await;
    let prefix = unique_prefix("roundtrip");
    let cfg = es_config(&prefix);
    let index = IndexConfig::default();
    let store = EsStore::connect(&cfg, &index).await.expect("connect");
    let dir = tempfile::tempdir().unwrap();
    let writer = start_es_writer(&cfg, &index, dir.path()).expect("writer");

    let all_types = vec![
        KeyValue::new("s", AttrValue::Str("héllo \"q\" \n".into())),
        KeyValue::new("b", AttrValue::Bool(true)),
        KeyValue::new("i", AttrValue::Int(i64::MIN)),
        KeyValue::new("big", AttrValue::Int(i64::MAX)),
        KeyValue::new("d", AttrValue::Double(0.1 + 0.2)),
        KeyValue::new("inf", AttrValue::Double(f64::INFINITY)),
        KeyValue::new("y", AttrValue::Bytes(vec![0, 255, 7])),
        KeyValue::new(
            "a",
            AttrValue::Array(vec![
                AttrValue::Int(1),
                AttrValue::Str("x".into()),
                AttrValue::Empty,
            ]),
        ),
        KeyValue::new(
            "m",
            AttrValue::Map(vec![KeyValue::new("inner", AttrValue::Double(-2.5e-300))]),
        ),
        KeyValue::new("e", AttrValue::Empty),
        KeyValue::new("http.method", AttrValue::Str("GET".into())),
        KeyValue::new("long", AttrValue::Str("z".repeat(5000))),
    ];
    let now = now_ns();
    let tid = TraceId([0xab; 16]);
    let root = Span {
        trace_id: tid,
        span_id: SpanId([1; 8]),
        parent_span_id: None,
        trace_state: "vendor=1".into(),
        flags: 0x301,
        name: "GET /users/{id}".into(),
        kind: SpanKind::Server,
        start_ns: now - HOUR + 123_456_789,
        end_ns: now - HOUR + 987_654_321,
        attributes: all_types.clone(),
        dropped_attributes_count: 3,
        events: vec![Event {
            time_ns: now - HOUR + 500_000_001,
            name: "exception".into(),
            attributes: all_types.clone(),
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 2,
        links: vec![Link {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([8; 8]),
            trace_state: "a=b".into(),
            attributes: all_types.clone(),
            dropped_attributes_count: 4,
            flags: 1,
        }],
        dropped_links_count: 5,
        status: Status {
            code: StatusCode::Error,
            message: "boom".into(),
        },
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new("service.name", AttrValue::Str("api".into()))],
            dropped_attributes_count: 6,
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        }),
        scope: Arc::new(Scope {
            name: "lib".into(),
            version: "1.0".into(),
            attributes: all_types,
            dropped_attributes_count: 7,
            schema_url: "u".into(),
        }),
    };
    // A child on the previous UTC day's index, to read across indices.
    let child = Span {
        span_id: SpanId([2; 8]),
        parent_span_id: Some(SpanId([1; 8])),
        start_ns: now - DAY - HOUR,
        end_ns: now - DAY,
        ..Span::default()
    };
    let child = Span {
        trace_id: tid,
        ..child
    };
    writer
        .write(vec![root.clone(), child.clone()])
        .await
        .expect("write");
    writer
        .write(vec![root.clone()])
        .await
        .expect("redelivery is idempotent");

    let got = poll(
        "the trace to be searchable",
        Duration::from_secs(60),
        || async {
            let spans = match store.trace(tid).await {
                Ok(s) => s,
                Err(e) if e.is_retryable() => return None,
                Err(e) => panic!("trace: {e}"),
            };
            (spans.len() >= 2).then_some(spans)
        },
    )
    .await;
    wait_indexed(&store, &prefix, 2).await;
    let got_again = store.trace(tid).await.expect("trace");
    assert_eq!(got_again.len(), 2, "redelivery must not duplicate");
    let mut got = got;
    got.sort_by_key(|s| s.span_id);
    assert_eq!(got[0], root);
    assert_eq!(got[1], child);
    assert!(store
        .trace(TraceId([0xcd; 16]))
        .await
        .expect("unknown trace")
        .is_empty());

    // Long values are searchable exactly.
    let q = SearchQuery {
        tags: vec![("long".into(), "z".repeat(5000))],
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.search(&q).await.unwrap().len(), 1);
    let q = SearchQuery {
        tags: vec![("long".into(), "z".repeat(4999))],
        limit: 10,
        ..Default::default()
    };
    assert!(store.search(&q).await.unwrap().is_empty());

    writer.shutdown().await;
    cleanup(&store, &prefix).await;
}

fn queries(now: u64) -> Vec<SearchQuery> {
    let q = |f: &dyn Fn(&mut SearchQuery)| {
        let mut q = SearchQuery {
            limit: 1000,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut out = vec![
        q(&|_| {}),
        q(&|q| q.service = Some("api".into())),
        q(&|q| q.service = Some("nope".into())),
        q(&|q| q.operation = Some("GET /a".into())),
        q(&|q| {
            q.service = Some("db".into());
            q.operation = Some("query".into());
        }),
        q(&|q| q.span_kind = Some(SpanKind::Client)),
        q(&|q| q.min_duration_ns = Some(5_000_000)),
        q(&|q| q.max_duration_ns = Some(3_000_000)),
        q(&|q| {
            q.min_duration_ns = Some(2_000_000);
            q.max_duration_ns = Some(4_000_000);
        }),
        q(&|q| q.start_ns = Some(now - 20 * HOUR)),
        q(&|q| {
            q.start_ns = Some(now - 30 * HOUR);
            q.end_ns = Some(now - 10 * HOUR);
        }),
        q(&|q| q.end_ns = Some(now - 26 * HOUR)),
        q(&|q| q.limit = 3),
        q(&|q| {
            q.service = Some("web".into());
            q.limit = 5;
        }),
        q(&|q| q.limit = 0),
    ];
    // Every allow-listed tag used by the data, an unlisted one, resource
    // tags and the pseudo-tags.
    for t in [
        tag("http.method", "POST"),
        tag("http.status_code", "404"),
        tag("user_id", "u3"),
        tag("custom.tag", "c2"),
        tag("flag", "true"),
        tag("host.name", "h1"),
        tag("service.name", "db"),
        tag("error", "true"),
        tag("error", "false"),
        tag("span.kind", "server"),
        tag("otel.status_code", "OK"),
        tag("otel.status_code", "UNSET"),
        tag("custom.tag", "missing"),
    ] {
        out.push(q(&|q| q.tags = vec![t.clone()]));
    }
    out.push(q(&|q| {
        q.service = Some("api".into());
        q.tags = vec![tag("http.method", "GET"), tag("custom.tag", "c0")];
        q.min_duration_ns = Some(1_000_000);
    }));
    out
}

#[actix_rt::test]
async fn search_agrees_with_memory_store() {
    require_es().await;
    let prefix = unique_prefix("search");
    // Several shards with trace-id routing: collapse and trace fetch must
    // still see every span.
    let cfg = ElasticsearchConfig {
        route_by_trace_id: true,
        number_of_shards: 3,
        ..es_config(&prefix)
    };
    let index = IndexConfig::default();
    let store = EsStore::connect(&cfg, &index).await.expect("connect");
    let dir = tempfile::tempdir().unwrap();
    let writer = start_es_writer(&cfg, &index, dir.path()).expect("writer");
    let now = now_ns();
    let spans = dataset(now, 120);
    let mem = MemoryStore::new();
    mem.write(spans.clone()).await.unwrap();
    for chunk in spans.chunks(50) {
        writer.write(chunk.to_vec()).await.expect("write");
    }
    wait_indexed(&store, &prefix, spans.len() as u64).await;

    for q in queries(now) {
        let want = mem.search(&q).await.unwrap();
        let got = store.search(&q).await.expect("search");
        assert_eq!(got, want, "query {q:?}");
        if q.limit == 1000
            && q.service.as_deref() != Some("nope")
            && q.tags.iter().all(|t| t.1 != "missing")
        {
            assert!(!want.is_empty(), "query should match something: {q:?}");
        }
    }
    for t in spans.iter().step_by(9).map(|s| s.trace_id) {
        let mut got = store.trace(t).await.expect("trace");
        let mut want = mem.trace(t).await.unwrap();
        got.sort_by_key(|s| s.span_id);
        want.sort_by_key(|s| s.span_id);
        assert_eq!(got, want);
    }
    assert_eq!(
        store.services().await.unwrap(),
        mem.services().await.unwrap()
    );
    for svc in [None, Some("api"), Some("nope")] {
        assert_eq!(
            store.operations(svc).await.unwrap(),
            mem.operations(svc).await.unwrap(),
            "{svc:?}"
        );
    }

    // Scan returns exactly the matching spans, page by page.
    let q = SearchQuery {
        service: Some("api".into()),
        limit: 1,
        ..Default::default()
    };
    let mut scanned = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan(&q, cursor.as_deref(), 7).await.expect("scan");
        assert!(page.spans.len() <= 7);
        scanned.extend(page.spans);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let key = |s: &Span| (s.trace_id, s.span_id);
    let got: BTreeSet<_> = scanned.iter().map(key).collect();
    let want: BTreeSet<_> = spans.iter().filter(|s| q.matches(s)).map(key).collect();
    assert_eq!(scanned.len(), want.len(), "scan repeated or skipped spans");
    assert_eq!(got, want);
    assert!(store.scan(&q, Some("not a cursor"), 7).await.is_err());

    writer.shutdown().await;
    cleanup(&store, &prefix).await;
}

#[actix_rt::test]
async fn many_distinct_keys_do_not_explode_the_mapping() {
    require_es().await;
    let prefix = unique_prefix("keys");
    let cfg = es_config(&prefix);
    let index = IndexConfig::default();
    let store = EsStore::connect(&cfg, &index).await.expect("connect");
    let dir = tempfile::tempdir().unwrap();
    let writer = start_es_writer(&cfg, &index, dir.path()).expect("writer");
    let now = now_ns();
    // 200 spans × 10 keys = 2,000 distinct attribute keys.
    let spans: Vec<Span> = (0..200u64)
        .map(|i| Span {
            trace_id: TraceId([(i % 251) as u8 + 1; 16]),
            span_id: SpanId((i + 1).to_be_bytes()),
            name: "op".into(),
            start_ns: now - HOUR + i,
            end_ns: now - HOUR + i + 10,
            attributes: (0..10)
                .map(|k| KeyValue::new(format!("key.{i}.{k}"), AttrValue::Int((i * 10 + k) as i64)))
                .collect(),
            resource: resource("many", vec![]),
            ..Default::default()
        })
        .collect();
    writer.write(spans.clone()).await.expect("write");
    wait_indexed(&store, &prefix, 200).await;

    let pattern = format!("{prefix}-spans-*");
    let resp = store
        .client()
        .indices()
        .get_mapping(IndicesGetMappingParts::Index(&[&pattern]))
        .send()
        .await
        .unwrap();
    let mappings: Value = resp.json().await.unwrap();
    fn leaf_fields(v: &Value) -> usize {
        v.get("properties")
            .and_then(Value::as_object)
            .map_or(1, |p| p.values().map(leaf_fields).sum())
    }
    for (name, m) in mappings.as_object().unwrap() {
        let n = leaf_fields(&m["mappings"]);
        assert!(n < 40, "index {name} has {n} mapped fields: {m}");
    }
    for s in spans.iter().step_by(13) {
        let k = &s.attributes[7];
        let q = SearchQuery {
            tags: vec![(k.key.clone(), k.value.as_text())],
            limit: 10,
            ..Default::default()
        };
        let hits = store.search(&q).await.unwrap();
        assert_eq!(hits.len(), 1, "{q:?}");
        assert_eq!(hits[0].trace_id, s.trace_id);
        assert_eq!(hits[0].start_ns, s.start_ns);
    }
    writer.shutdown().await;
    cleanup(&store, &prefix).await;
}

#[actix_rt::test]
async fn a_rejected_document_is_dead_lettered_alone() {
    require_es().await;
    let prefix = unique_prefix("reject");
    let cfg = es_config(&prefix);
    let index = IndexConfig::default();
    let store = EsStore::connect(&cfg, &index).await.expect("connect");
    let dir = tempfile::tempdir().unwrap();
    let writer = start_es_writer(&cfg, &index, dir.path()).expect("writer");
    let now = now_ns();
    let mut spans: Vec<Span> = dataset(now, 4)
        .into_iter()
        .map(|s| Span {
            start_ns: now - HOUR,
            end_ns: now - HOUR + 5,
            ..s
        })
        .collect();
    // A duration past the `long` range violates the mapping.
    let bad = Span {
        trace_id: TraceId([0xee; 16]),
        span_id: SpanId([0xee; 8]),
        start_ns: 0,
        end_ns: u64::MAX,
        name: "bad".into(),
        ..Default::default()
    };
    spans.insert(2, bad.clone());
    writer.write(spans.clone()).await.expect("write");

    let good = spans.len() as u64 - 1;
    wait_indexed(&store, &prefix, good).await;
    let line = poll("the dead letter", Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(writer.dead_letter_path()).unwrap_or_default();
        (!text.is_empty()).then_some(text)
    })
    .await;
    poll("the backlog to drain", Duration::from_secs(30), || async {
        (writer.pending().records == 0).then_some(())
    })
    .await;
    let text = std::fs::read_to_string(writer.dead_letter_path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "only the bad document: {line}");
    let v: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["id"], format!("{}{}", bad.trace_id, bad.span_id));
    assert_eq!(v["status"], 400);
    let reason = v["reason"].to_string();
    assert!(
        reason.contains("parsing_exception") || reason.contains("out of range"),
        "{reason}"
    );
    assert_eq!(v["document"]["span"]["end_ns"], json!(u64::MAX));
    for s in spans.iter().filter(|s| s.trace_id != bad.trace_id) {
        assert!(store.trace(s.trace_id).await.unwrap().contains(s));
    }
    assert!(store.trace(bad.trace_id).await.unwrap().is_empty());
    writer.shutdown().await;
    cleanup(&store, &prefix).await;
}

#[actix_rt::test]
async fn backlog_survives_an_unreachable_elasticsearch_and_a_restart() {
    require_es().await;
    let prefix = unique_prefix("outage");
    let index = IndexConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let now = now_ns();
    let spans = dataset(now, 30);
    {
        // Nothing listens on port 9; connections are refused.
        let down = ElasticsearchConfig {
            url: "http://127.0.0.1:9".into(),
            ..es_config(&prefix)
        };
        let writer = start_es_writer(&down, &index, dir.path())
            .expect("writer starts without elasticsearch");
        for chunk in spans.chunks(10) {
            writer
                .write(chunk.to_vec())
                .await
                .expect("write is durable while elasticsearch is down");
        }
        assert_eq!(writer.pending().records, spans.len() as u64);
        // A second writer may not share the backlog.
        assert!(start_es_writer(&down, &index, dir.path()).is_err());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            writer.pending().records,
            spans.len() as u64,
            "nothing can have been indexed"
        );
        writer.shutdown().await;
        assert!(
            writer.write(spans[..1].to_vec()).await.is_err(),
            "a shut-down writer refuses writes"
        );
    }
    let cfg = es_config(&prefix);
    let store = EsStore::connect(&cfg, &index).await.expect("connect");
    let writer =
        start_es_writer(&cfg, &index, dir.path()).expect("writer restarts over the same backlog");
    wait_indexed(&store, &prefix, spans.len() as u64).await;
    poll("the backlog to drain", Duration::from_secs(30), || async {
        (writer.pending().records == 0).then_some(())
    })
    .await;
    for s in spans.iter().step_by(5) {
        assert!(store.trace(s.trace_id).await.unwrap().contains(s));
    }
    assert!(std::fs::read_to_string(writer.dead_letter_path())
        .unwrap_or_default()
        .is_empty());
    writer.shutdown().await;
    cleanup(&store, &prefix).await;
}

#[actix_rt::test]
async fn a_failing_drain_loop_is_restarted_by_its_supervisor() {
    require_es().await;
    let prefix = unique_prefix("restart");
    // Elasticsearch refuses this template (shards > 1024): the drain loop
    // fails with a non-retryable error, stops, and is restarted.
    let cfg = ElasticsearchConfig {
        number_of_shards: 5000,
        ..es_config(&prefix)
    };
    let dir = tempfile::tempdir().unwrap();
    let stats = ActorStats::get("es_writer");
    let before = stats.restarts.load(std::sync::atomic::Ordering::Relaxed);
    let writer = start_es_writer(&cfg, &IndexConfig::default(), dir.path()).expect("writer");
    poll("a restart", Duration::from_secs(30), || async {
        (stats.restarts.load(std::sync::atomic::Ordering::Relaxed) > before).then_some(())
    })
    .await;
    writer
        .write(dataset(now_ns(), 1))
        .await
        .expect("writes stay durable meanwhile");
    writer.shutdown().await;
}

#[actix_rt::test]
async fn janitor_deletes_exactly_the_indices_past_retention() {
    require_es().await;
    let prefix = unique_prefix("janitor");
    let cfg = es_config(&prefix);
    let store = EsStore::connect(&cfg, &IndexConfig::default())
        .await
        .expect("connect");
    let now = now_ns();
    let mut names: Vec<String> = (0..10)
        .map(|d| strand::elasticsearch::daily_index(&prefix, now - d * DAY))
        .collect();
    names.push(format!("{prefix}-spans-2020.01.01-restored"));
    for name in &names {
        let resp = store
            .client()
            .indices()
            .create(IndicesCreateParts::Index(name))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status_code().is_success(),
            "create {name}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    let deleted = janitor::run_once(store.client(), &prefix, 7, now)
        .await
        .expect("janitor");
    let mut want_deleted: Vec<String> = names[7..10].to_vec();
    want_deleted.sort();
    assert_eq!(deleted, want_deleted);
    let left: BTreeSet<String> = janitor::list_indices(store.client(), &prefix)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut want_left: BTreeSet<String> = names[..7].iter().cloned().collect();
    want_left.insert(format!("{prefix}-spans-2020.01.01-restored"));
    assert_eq!(left, want_left);
    // A second pass has nothing to do.
    assert!(janitor::run_once(store.client(), &prefix, 7, now)
        .await
        .unwrap()
        .is_empty());
    cleanup(&store, &prefix).await;
}

#[actix_rt::test]
async fn conformance_suite() {
    require_es().await;
    let prefix = unique_prefix("conformance");
    let cfg = es_config(&prefix);
    let index = IndexConfig::default();
    let store = EsStore::connect(&cfg, &index).await.expect("connect");
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(start_es_writer(&cfg, &index, dir.path()).expect("writer"));
    // One document per (daily index, trace id, span id): redelivered spans
    // overwrite their document.
    let docs: BTreeSet<_> = common::fixtures::load_all()
        .iter()
        .map(|s| {
            (
                strand::elasticsearch::daily_index(&prefix, s.start_ns),
                s.trace_id,
                s.span_id,
            )
        })
        .collect();
    let n = docs.len() as u64;
    let (st, p) = (store.clone(), prefix.clone());
    common::conformance::run(writer.clone(), store.clone(), |_| async move {
        wait_indexed(&st, &p, n).await
    })
    .await;
    writer.shutdown().await;
    cleanup(&store, &prefix).await;
}
