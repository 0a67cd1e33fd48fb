//! Hot-store benchmarks: ingest (OTLP decode + WAL encode + append + index),
//! sealing, trace-by-id lookup and tag search over sealed segments.
//! Kept short: `cargo bench --bench store` takes about a minute.
//!
//! With `STRAND_BENCH_CATALOG_SPANS=<n>` it runs only the catalog bench
//! instead (scripts/bench-catalog.sh): `n` spans written straight into a
//! hot store, then `/api/dependencies` and tag-values latency (p50/p99)
//! through the query API's HTTP service, next to the sampling path they
//! replaced.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use prost::Message;
use rand::{Rng, SeedableRng};

use strand::config::{IndexConfig, StorageConfig};
use strand::index::IndexBuilder;
use strand::model::*;
use strand::otlp::convert;
use strand::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use strand::store::hot::Batch;
use strand::store::HotStore;

const BATCH: usize = 1000;

/// Realistic spans: 20 services, 10-span traces, 8 attributes, some events.
fn gen(rng: &mut rand::rngs::StdRng, n: usize, t0: u64) -> Vec<Span> {
    let resources: Vec<Arc<Resource>> = (0..20)
        .map(|i| {
            Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AttrValue::Str(format!("service-{i}"))),
                    KeyValue::new("host.name", AttrValue::Str(format!("host-{}", i % 7))),
                    KeyValue::new("deployment.environment", AttrValue::Str("prod".into())),
                ],
                ..Default::default()
            })
        })
        .collect();
    let scope = Arc::new(Scope {
        name: "io.opentelemetry.http".into(),
        version: "1.2.3".into(),
        ..Default::default()
    });
    let mut out = Vec::with_capacity(n);
    let mut trace = TraceId(rng.gen());
    for i in 0..n {
        if i % 10 == 0 {
            trace = TraceId(rng.gen());
        }
        let start = t0 + i as u64 * 1000;
        out.push(Span {
            trace_id: trace,
            span_id: SpanId(rng.gen()),
            parent_span_id: (i % 10 != 0).then(|| SpanId(rng.gen())),
            name: format!("GET /api/v1/resource/{}", rng.gen_range(0..50)),
            kind: SpanKind::from_i32(rng.gen_range(1..4)),
            start_ns: start,
            end_ns: start + rng.gen_range(1000..5_000_000),
            attributes: vec![
                KeyValue::new("http.request.method", AttrValue::Str("GET".into())),
                KeyValue::new(
                    "http.response.status_code",
                    AttrValue::Int([200, 200, 200, 404, 500][rng.gen_range(0..5)]),
                ),
                KeyValue::new("http.route", AttrValue::Str("/api/v1/resource/:id".into())),
                KeyValue::new(
                    "user_id",
                    AttrValue::Str(format!("user-{}", rng.gen_range(0..10_000))),
                ),
                KeyValue::new("net.peer.name", AttrValue::Str("10.0.0.1".into())),
                KeyValue::new("thread.id", AttrValue::Int(rng.gen_range(0..64))),
                KeyValue::new("retry", AttrValue::Bool(false)),
                KeyValue::new("payload.size", AttrValue::Int(rng.gen_range(0..100_000))),
            ],
            events: if i % 5 == 0 {
                vec![Event {
                    time_ns: start + 10,
                    name: "cache.miss".into(),
                    ..Default::default()
                }]
            } else {
                vec![]
            },
            status: Status {
                code: if rng.gen_ratio(1, 50) {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                message: String::new(),
            },
            resource: resources[(i / 10) % resources.len()].clone(),
            scope: scope.clone(),
            ..Default::default()
        });
    }
    out
}

fn storage(dir: &std::path::Path) -> StorageConfig {
    StorageConfig {
        dir: dir.to_path_buf(),
        fsync: false,
        segment_max_spans: usize::MAX,
        ..Default::default()
    }
}

/// Ingest: decode an OTLP request, encode its WAL record, append + index.
fn append(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let req = ExportTraceServiceRequest {
        resource_spans: convert::spans_to_proto(&gen(&mut rng, BATCH, 1)),
    }
    .encode_to_vec();
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("append", |b| {
        b.iter_custom(|iters| {
            let mut dir = tempfile::tempdir().unwrap();
            let mut store = HotStore::open(&storage(dir.path()), &IndexConfig::default()).unwrap();
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                if store.unsealed_spans() >= 200_000 {
                    // Bound memory: start over (untimed).
                    drop(store);
                    dir = tempfile::tempdir().unwrap();
                    store = HotStore::open(&storage(dir.path()), &IndexConfig::default()).unwrap();
                }
                let t = Instant::now();
                let decoded = ExportTraceServiceRequest::decode(req.as_slice()).unwrap();
                let spans = convert::spans_from_proto(&decoded.resource_spans);
                store.commit(0, vec![Batch::new(spans)]).unwrap();
                elapsed += t.elapsed();
            }
            elapsed
        })
    });
    // Where the time goes: each stage alone.
    let spans = convert::spans_from_proto(
        &ExportTraceServiceRequest::decode(req.as_slice())
            .unwrap()
            .resource_spans,
    );
    g.bench_function("append/decode_only", |b| {
        b.iter(|| {
            convert::spans_from_proto(
                &ExportTraceServiceRequest::decode(req.as_slice())
                    .unwrap()
                    .resource_spans,
            )
        })
    });
    g.bench_function("append/wal_encode_only", |b| {
        b.iter(|| Batch::new(spans.clone()))
    });
    g.bench_function("append/commit_only", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let mut store = HotStore::open(&storage(dir.path()), &IndexConfig::default()).unwrap();
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                if store.unsealed_spans() >= 200_000 {
                    drop(store);
                    store = HotStore::open(&storage(dir.path()), &IndexConfig::default()).unwrap();
                    let _ = store.rotate(0);
                }
                let batch = Batch::new(spans.clone());
                let t = Instant::now();
                store.commit(0, vec![batch]).unwrap();
                elapsed += t.elapsed();
            }
            elapsed
        })
    });
    g.finish();
}

fn seal(c: &mut Criterion) {
    const N: usize = 50_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let spans = gen(&mut rng, N, 1);
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("seal", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let store = HotStore::open(&storage(dir.path()), &IndexConfig::default()).unwrap();
                store.commit(0, vec![Batch::new(spans.clone())]).unwrap();
                let seg = store.rotate(0).unwrap().unwrap();
                let t = Instant::now();
                store.seal(&seg).unwrap();
                elapsed += t.elapsed();
            }
            elapsed
        })
    });
    g.finish();
}

/// Index build alone: trace table, Bloom filter, postings and time bounds
/// for one segment's spans (the part of append and seal that is indexing).
fn index_build(c: &mut Criterion) {
    const N: usize = 50_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let spans = gen(&mut rng, N, 1);
    let keys = IndexConfig::default().attribute_keys;
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("index_build", |b| {
        b.iter(|| {
            let mut builder = IndexBuilder::new(&keys);
            spans.iter().for_each(|s| builder.add(s));
            black_box(builder.finish())
        })
    });
    g.finish();
}

const PER: usize = 100_000;

/// A store of `segments` sealed segments of `PER` spans, and some of its
/// trace ids.
fn query_store(segments: usize) -> (tempfile::TempDir, Arc<HotStore>, Vec<TraceId>) {
    let dir = tempfile::tempdir().unwrap();
    let store = HotStore::open(&storage(dir.path()), &IndexConfig::default()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut ids = Vec::new();
    for s in 0..segments {
        let spans = gen(&mut rng, PER, 1_000_000_000 + (s * PER) as u64 * 1000);
        ids.extend(spans.iter().step_by(97).map(|s| s.trace_id));
        for chunk in spans.chunks(10_000) {
            store.commit(0, vec![Batch::new(chunk.to_vec())]).unwrap();
        }
        let seg = store.rotate(0).unwrap().unwrap();
        store.seal(&seg).unwrap();
    }
    (dir, store, ids)
}

/// Trace lookup and tag search over sealed segments.
fn query(c: &mut Criterion) {
    let segments: usize = std::env::var("STRAND_BENCH_SEGMENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    // Built only if a query bench is selected.
    let built = std::cell::OnceCell::new();
    let get = || built.get_or_init(|| query_store(segments));
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function(
        format!("trace_id_lookup/{}k_spans", segments * PER / 1000),
        |b| {
            let (_, store, ids) = get();
            b.iter(|| {
                i = (i + 7919) % ids.len();
                let t = store.trace_sync(ids[i]).unwrap();
                assert_eq!(t.len(), 10);
                black_box(t)
            })
        },
    );
    let q = SearchQuery {
        service: Some("service-3".into()),
        tags: vec![("http.response.status_code".into(), "500".into())],
        limit: 20,
        ..Default::default()
    };
    g.bench_function(
        format!("tag_search/{}k_spans", segments * PER / 1000),
        |b| {
            let (_, store, _) = get();
            b.iter(|| {
                let hits = store.search_sync(&q).unwrap();
                assert_eq!(hits.len(), 20);
                black_box(hits)
            })
        },
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = append, seal, index_build, query
}
fn main() {
    if let Some(n) = std::env::var("STRAND_BENCH_CATALOG_SPANS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        catalog::run(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

mod catalog {
    use super::*;
    use actix_web::{test, web, App};
    use strand::actors::tree::Health;
    use strand::query::QueryState;

    const SERVICES: usize = 500;
    const TRACE_SPANS: usize = 10;
    /// Spans are spread over this much time before now.
    const SPREAD_NS: u64 = 22 * 3600 * 1_000_000_000;

    /// Traces of 10 spans: a root and a call tree over a fixed topology of
    /// services, with attributes of low and high cardinality.
    fn traces(
        rng: &mut rand::rngs::StdRng,
        first: usize,
        n: usize,
        t0: u64,
        step: u64,
        res: &[Arc<Resource>],
    ) -> Vec<Span> {
        let mut out = Vec::with_capacity(n);
        let mut ids = [SpanId::default(); TRACE_SPANS];
        let mut trace = TraceId::default();
        let mut root_svc = 0;
        for i in first..first + n {
            let j = i % TRACE_SPANS;
            if j == 0 {
                trace = TraceId(rng.gen());
                root_svc = rng.gen_range(0..SERVICES / 10);
            }
            ids[j] = SpanId(rng.gen());
            let parent = (j > 0).then(|| ids[rng.gen_range(0..j)]);
            let svc = (root_svc + j * 37) % SERVICES;
            let start = t0 + i as u64 * step;
            out.push(Span {
                trace_id: trace,
                span_id: ids[j],
                parent_span_id: parent,
                name: format!("op-{}", rng.gen_range(0..20)),
                start_ns: start,
                end_ns: start + rng.gen_range(1000..5_000_000),
                attributes: vec![
                    KeyValue::new(
                        "http.route",
                        AttrValue::Str(format!("/api/v1/r{}", rng.gen_range(0..50))),
                    ),
                    KeyValue::new(
                        "http.response.status_code",
                        AttrValue::Int([200, 200, 404, 500][rng.gen_range(0..4)]),
                    ),
                    KeyValue::new(
                        "user_id",
                        AttrValue::Str(format!("user-{}", rng.gen_range(0..100_000))),
                    ),
                ],
                status: Status {
                    code: if rng.gen_ratio(1, 50) {
                        StatusCode::Error
                    } else {
                        StatusCode::Unset
                    },
                    message: String::new(),
                },
                resource: res[svc].clone(),
                ..Default::default()
            });
        }
        out
    }

    fn load(store: &HotStore, n: usize) {
        let res: Vec<Arc<Resource>> = (0..SERVICES)
            .map(|i| {
                Arc::new(Resource {
                    attributes: vec![
                        KeyValue::new("service.name", AttrValue::Str(format!("service-{i:03}"))),
                        KeyValue::new("host.name", AttrValue::Str(format!("host-{}", i % 40))),
                    ],
                    ..Default::default()
                })
            })
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let t0 = now_ns() - SPREAD_NS;
        let step = SPREAD_NS / n as u64;
        let seg = 200_000;
        let started = Instant::now();
        let mut done = 0;
        while done < n {
            let m = seg.min(n - done);
            let spans = traces(&mut rng, done, m, t0, step, &res);
            for chunk in spans.chunks(10_000) {
                store.commit(0, vec![Batch::new(chunk.to_vec())]).unwrap();
            }
            let frozen = store.rotate(0).unwrap().unwrap();
            store.seal(&frozen).unwrap();
            done += m;
        }
        eprintln!(
            "loaded {n} spans into {} sealed segments in {:.1}s",
            store.sealed_ids().len(),
            started.elapsed().as_secs_f64()
        );
    }

    fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i].as_secs_f64() * 1000.0
    }

    pub fn run(n: usize) {
        let dir = tempfile::tempdir().unwrap();
        let store = HotStore::open(&storage(dir.path()), &IndexConfig::default()).unwrap();
        load(&store, n);
        let now_s = now_ns() / 1_000_000_000;
        let day_ms = 86_400_000;
        let cases: Vec<(String, String, usize)> = vec![
            ("dependencies (graph), 1 day".into(), format!("/api/dependencies?endTs={}&lookback={day_ms}", now_s * 1000), 200),
            ("dependencies (old: newest 1,000 traces), 1 day".into(), format!("/api/dependencies?endTs={}&lookback={day_ms}&strategy=sample", now_s * 1000), 20),
            ("tag values span.http.route (catalog), 1 day".into(), format!("/api/v2/search/tag/span.http.route/values?start={}&end={now_s}", now_s - 86_400), 200),
            ("tag values span.http.route (old: sample), 1 day".into(), format!("/api/v2/search/tag/span.http.route/values?start={}&end={now_s}&strategy=sample", now_s - 86_400), 20),
            ("tag values resource.service.name (catalog), last hour".into(), "/api/v2/search/tag/resource.service.name/values".into(), 200),
            ("tag values resource.service.name (old: sample), last hour".into(), "/api/v2/search/tag/resource.service.name/values?strategy=sample".into(), 20),
        ];
        actix_web::rt::System::new().block_on(async move {
            let reader = strand::tiers::compose(strand::tiers::Parts {
                hot: Some(store.clone()),
                ..Default::default()
            })
            .unwrap()
            .reader
            .unwrap();
            let health = Health::default();
            health.set_started(true);
            let state = web::Data::new(QueryState {
                reader,
                cfg: Default::default(),
                health,
                span_metrics: Arc::new(strand::spanmetrics::empty::NoMetrics::default()),
            });
            let app = test::init_service(
                App::new()
                    .app_data(state)
                    .configure(strand::query::configure),
            )
            .await;
            println!("| request | answer | first ms | p50 ms | p99 ms | requests |");
            println!("| --- | --- | --- | --- | --- | --- |");
            for (name, uri, iters) in cases {
                let mut times = Vec::with_capacity(iters);
                let mut size = String::new();
                for _ in 0..iters + 2 {
                    let t = Instant::now();
                    let resp =
                        test::call_service(&app, test::TestRequest::get().uri(&uri).to_request())
                            .await;
                    assert!(resp.status().is_success(), "{uri}: {}", resp.status());
                    let body = test::read_body(resp).await;
                    times.push(t.elapsed());
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let items = v
                        .get("data")
                        .or(v.get("tagValues"))
                        .and_then(|d| d.as_array())
                        .map_or(0, |a| a.len());
                    size = format!("{items} items");
                }
                // The first request fills the sealed-segment caches; the
                // next one is warm-up too.
                let first = times[0].as_secs_f64() * 1000.0;
                times.drain(..2);
                println!(
                    "| {name} | {size} | {first:.1} | {:.2} | {:.2} | {iters} |",
                    pct(times.clone(), 0.5),
                    pct(times, 0.99)
                );
            }
        });
    }
}
