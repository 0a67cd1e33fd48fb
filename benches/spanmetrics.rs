//! Span-metrics query bench: the 24 h Monitor view of one service with 200
//! operations, over a real `MetricsStore` on disk.
//!
//! The store holds 25.5 h of points for (service `shop`) × 200 operations ×
//! (server kind) × (status Unset, Error) at 10 s, written as the flusher
//! writes them and then tidied by the store's own janitor at the defaults:
//! hours that ended more than 6 h ago are 1 min files, the closed hours
//! since are compacted 10 s files, and the current hour (30 minutes in) is
//! the raw file of one block per 1 s flush. A fixed clock keeps that
//! layout the same whatever the time of day the bench runs.
//!
//! Timed are the requests ui/monitor.js makes for "Last 24 hours" (step
//! 30 min, `ratePer` = step, span kind server): `minstep`; `calls`,
//! `errors` and `latencies` p50/p95/p99, grouped by operation and not; then
//! `exemplars` — each through the query API's HTTP service in process
//! (reader range, compute, JSON body), and the whole view, sequentially and
//! with the ten metric requests concurrent as the page sends them. Prints
//! p50/p99 per request and per view (`STRAND_BENCH_VIEW_ITERS` requests,
//! default 30, fewer once a row has taken 40 s), then runs criterion over
//! single requests.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{test, web, App};
use criterion::Criterion;

use strand::actors::tree::Health;
use strand::model::{SpanId, SpanKind, StatusCode, TraceId};
use strand::query::QueryState;
use strand::spanmetrics::config::SpanMetricsConfig;
use strand::spanmetrics::store::codec::Source;
use strand::spanmetrics::store::{Clock, MetricsStore, Options};
use strand::spanmetrics::{point, Exemplar, MetricsReader, Point, SeriesKey};

const NS: u64 = 1_000_000_000;
const OPERATIONS: usize = 200;
const SERVICE: &str = "shop";
const RES_S: u64 = 10;
/// Hours written before "now"'s hour (24 h of lookback + the window before it).
const HOURS: u64 = 25;
/// Into the current hour, which is still one raw file of 1 s flushes.
const INTO_HOUR_S: u64 = 1800;
/// Time per row of the p50/p99 table before it stops short of
/// `STRAND_BENCH_VIEW_ITERS` (at least 5 requests, 3 views).
const BUDGET: Duration = Duration::from_secs(40);

struct Fixed(u64);

impl Clock for Fixed {
    fn now_ns(&self) -> u64 {
        self.0
    }
}

fn key(op: usize, status: StatusCode) -> SeriesKey {
    SeriesKey {
        service: SERVICE.into(),
        operation: format!("GET /api/v1/op-{op:03}"),
        kind: SpanKind::Server,
        status,
    }
}

/// One series' point for a window (or a 1 s share of it, `share` of 10):
/// calls over three buckets that depend on the operation, errors on the
/// Error series, an exemplar in the slowest bucket.
fn pt(op: usize, status: StatusCode, window_s: u64, share: u64, seq: u64) -> Point {
    let mut p = point::empty(window_s * NS);
    let base = 2 + (op as u64 % 9);
    let (calls, slow) = match status {
        StatusCode::Error => (1 + (window_s / RES_S + op as u64) % 2, 1),
        _ => (base * 10 / share, 1 + base / 4),
    };
    let fast_ns = 400_000 + (op as u64 % 50) * 100_000;
    let b0 = point::bucket_of(fast_ns);
    let b1 = point::bucket_of(fast_ns * 8);
    let b2 = point::bucket_of(fast_ns * 60);
    p.calls = calls + slow;
    if status == StatusCode::Error {
        p.errors = p.calls;
    }
    p.buckets[b0] += calls / 2 + 1;
    p.buckets[b1] += calls - calls / 2 - 1 + slow - 1;
    p.buckets[b2] += 1;
    p.duration_sum_ns = calls * fast_ns * 3 + slow * fast_ns * 30;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    id[8..12].copy_from_slice(&(op as u32).to_be_bytes());
    p.exemplars[b2] = Some(Exemplar {
        trace_id: TraceId(id),
        span_id: SpanId(seq.to_le_bytes()),
        duration_ns: fast_ns * 60,
        time_ns: (window_s + 1) * NS,
    });
    p
}

struct Fixture {
    store: Arc<MetricsStore>,
    now_s: u64,
    _dir: tempfile::TempDir,
}

fn fill() -> Fixture {
    let real_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hour = real_s / 3600 * 3600 - 3600;
    let now_s = hour + INTO_HOUR_S;
    let dir = tempfile::tempdir().unwrap();
    let store = MetricsStore::open(
        dir.path(),
        Options::from_config(&SpanMetricsConfig::default()),
        Arc::new(Fixed(now_s * NS)),
    )
    .unwrap();
    let statuses = [StatusCode::Unset, StatusCode::Error];
    let started = Instant::now();
    let mut seq = 0u64;
    let mut points = 0usize;
    // Closed hours: one append per hour (the janitor compacts them into the
    // same file as the 1 s flushes would give).
    for h in (1..=HOURS).rev() {
        let h0 = hour - h * 3600;
        let mut recs = Vec::with_capacity(360 * OPERATIONS * 2);
        for w in (h0..h0 + 3600).step_by(RES_S as usize) {
            for op in 0..OPERATIONS {
                for s in statuses {
                    seq += 1;
                    recs.push((key(op, s), pt(op, s, w, 1, seq)));
                }
            }
        }
        points += recs.len();
        store.append(recs, &Source::default()).unwrap();
    }
    // The current hour: a block per 1 s flush, each with every series'
    // share of its window.
    for w in (hour..now_s).step_by(RES_S as usize) {
        for _ in 0..RES_S {
            let mut recs = Vec::with_capacity(OPERATIONS * 2);
            for op in 0..OPERATIONS {
                for s in statuses {
                    seq += 1;
                    recs.push((key(op, s), pt(op, s, w, RES_S, seq)));
                }
            }
            points += recs.len();
            store.append(recs, &Source::default()).unwrap();
        }
    }
    let report = store.run_janitor().unwrap();
    let mut tiers = [0usize; 3];
    let mut bytes = 0u64;
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if let Some(t) = name
            .strip_prefix('t')
            .and_then(|r| r[..1].parse::<usize>().ok())
        {
            tiers[t] += 1;
            bytes += std::fs::metadata(&p).unwrap().len();
        }
    }
    eprintln!(
        "filled {points} points (1 service × {OPERATIONS} operations × 2 statuses) in {:.1}s; \
         janitor {report:?}; files: {} at 10 s, {} at 1 min, {} at 1 h; {:.1} MiB",
        started.elapsed().as_secs_f64(),
        tiers[0],
        tiers[1],
        tiers[2],
        bytes as f64 / 1048576.0
    );
    Fixture {
        store,
        now_s,
        _dir: dir,
    }
}

/// The view's requests, as ui/monitor.js `load` builds them for "Last 24
/// hours" of a whole service: the charts' family (`groupByOperation=false`,
/// step = ratePer = 30 min) and the operations table's (grouped, step =
/// ratePer = lookback), each calls, errors and latencies p50/p95/p99.
fn requests(now_s: u64) -> Vec<(String, String)> {
    let lookback = 86_400_000u64;
    let chart_step = 1_800_000u64;
    let end = now_s * 1000;
    let q = |grouped: bool, step: u64| {
        format!(
            "service={SERVICE}&groupByOperation={grouped}&spanKind=server&endTs={end}\
             &lookback={lookback}&step={step}&ratePer={step}"
        )
    };
    let mut v = vec![("minstep".to_string(), "/api/metrics/minstep".to_string())];
    for (fam, grouped, step) in [("chart", false, chart_step), ("table", true, lookback)] {
        v.push((
            format!("{fam}: calls"),
            format!("/api/metrics/calls?{}", q(grouped, step)),
        ));
        v.push((
            format!("{fam}: errors"),
            format!("/api/metrics/errors?{}", q(grouped, step)),
        ));
        for (name, quantile) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            v.push((
                format!("{fam}: latencies {name}"),
                format!(
                    "/api/metrics/latencies?{}&quantile={quantile}",
                    q(grouped, step)
                ),
            ));
        }
    }
    v.push((
        "exemplars".into(),
        format!(
            "/api/metrics/exemplars?service={SERVICE}&spanKind=server&endTs={end}&lookback={lookback}"
        ),
    ));
    v
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn state(store: Arc<MetricsStore>) -> web::Data<QueryState> {
    let health = Health::default();
    health.set_started(true);
    web::Data::new(QueryState {
        reader: Arc::new(strand::tiers::memory::MemoryStore::new()),
        cfg: Default::default(),
        health,
        span_metrics: store,
    })
}

fn main() {
    let fx = fill();
    let reqs = requests(fx.now_s);
    let iters: usize = std::env::var("STRAND_BENCH_VIEW_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let sys = actix_web::rt::System::new();
    let app = sys.block_on(test::init_service(
        App::new()
            .app_data(state(fx.store.clone()))
            .configure(strand::query::configure),
    ));
    // One request: status checked, body read whole (its size returned).
    let call = |uri: &str| {
        let app = &app;
        let uri = uri.to_string();
        async move {
            let resp =
                test::call_service(app, test::TestRequest::get().uri(&uri).to_request()).await;
            assert!(resp.status().is_success(), "{uri}: {}", resp.status());
            test::read_body(resp).await.len()
        }
    };
    // The first view after start: every file read, nothing cached yet.
    let cold = Instant::now();
    sys.block_on(async {
        for (_, uri) in &reqs {
            black_box(call(uri).await);
        }
    });
    let cold = cold.elapsed().as_secs_f64() * 1000.0;
    let (entries, bytes) = fx.store.read_cache_usage();
    println!(
        "first whole view, sequential: {cold:.1} ms; read cache after it: {entries} entries, {:.1} MiB",
        bytes as f64 / 1048576.0
    );
    // Sanity: the chart family has the service's one series with a point
    // per output time; the table's a series per operation (statuses folded
    // together) with a point at the range's start and end.
    sys.block_on(async {
        for (i, series, points) in [(1, 1, 49), (6, OPERATIONS, 2)] {
            let req = test::TestRequest::get().uri(&reqs[i].1).to_request();
            let resp = test::call_service(&app, req).await;
            let v: serde_json::Value =
                serde_json::from_slice(&test::read_body(resp).await).unwrap();
            let metrics = v["metrics"].as_array().unwrap();
            assert_eq!(metrics.len(), series, "{}", reqs[i].0);
            let n = metrics[0]["metricPoints"].as_array().unwrap().len();
            assert_eq!(n, points, "{}", reqs[i].0);
        }
    });
    println!("| request | body | p50 ms | p99 ms | max ms | requests |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, uri) in &reqs {
        let mut times = Vec::with_capacity(iters);
        let mut size = 0;
        let began = Instant::now();
        for i in 0..iters + 2 {
            let t = Instant::now();
            size = sys.block_on(call(uri));
            if i >= 2 {
                times.push(t.elapsed());
            }
            if times.len() >= 5 && began.elapsed() > BUDGET {
                break;
            }
        }
        let max = times.iter().max().unwrap().as_secs_f64() * 1000.0;
        println!(
            "| {name} | {:.1} KiB | {:.2} | {:.2} | {max:.2} | {} |",
            size as f64 / 1024.0,
            pct(times.clone(), 0.5),
            pct(times.clone(), 0.99),
            times.len()
        );
    }
    let sequential = || {
        sys.block_on(async {
            for (_, uri) in &reqs {
                black_box(call(uri).await);
            }
        })
    };
    // As the page: minstep, the ten metric requests at once, exemplars.
    let concurrent = || {
        sys.block_on(async {
            black_box(call(&reqs[0].1).await);
            let n = reqs.len() - 1;
            let all = futures::future::join_all(reqs[1..n].iter().map(|(_, u)| call(u))).await;
            black_box(all);
            black_box(call(&reqs[n].1).await);
        })
    };
    let views: [(&str, &dyn Fn()); 2] = [
        ("whole view, sequential", &sequential),
        ("whole view, as the page sends it", &concurrent),
    ];
    for (name, f) in views {
        let mut times = Vec::with_capacity(iters);
        let began = Instant::now();
        for i in 0..iters / 3 + 1 {
            let t = Instant::now();
            f();
            if i >= 1 {
                times.push(t.elapsed());
            }
            if times.len() >= 3 && began.elapsed() > BUDGET {
                break;
            }
        }
        let max = times.iter().max().unwrap().as_secs_f64() * 1000.0;
        println!(
            "| {name} | | {:.1} | {:.1} | {max:.1} | {} |",
            pct(times.clone(), 0.5),
            pct(times.clone(), 0.99),
            times.len()
        );
    }
    // The reader alone (file reads + decode + slotting) for the charts'
    // family, and the same through the previous read path (every record
    // decoded whole, nothing cached): the baseline of the same run.
    {
        let reader: &dyn MetricsReader = fx.store.as_ref();
        let end = fx.now_s * NS;
        let q = strand::spanmetrics::RangeQuery {
            service: Some(SERVICE.into()),
            kinds: vec![SpanKind::Server],
            start_ns: end - 86_400 * NS - 1800 * NS,
            end_ns: end + 1,
            step_ns: 1800 * NS,
        };
        let want = fx.store.range_reference(&q).unwrap();
        assert_eq!(reader.range(&q).unwrap(), want, "the same answer");
        let mut rows = Vec::new();
        for (name, baseline) in [
            ("this read path", false),
            ("previous read path (baseline)", true),
        ] {
            let mut times = Vec::with_capacity(iters);
            let mut n = 0;
            let began = Instant::now();
            for _ in 0..iters {
                let t = Instant::now();
                let r = if baseline {
                    fx.store.range_reference(&q).unwrap()
                } else {
                    reader.range(&q).unwrap()
                };
                times.push(t.elapsed());
                n = r.iter().map(|(_, p)| p.len()).sum::<usize>();
                if times.len() >= 3 && began.elapsed() > BUDGET {
                    break;
                }
            }
            let p50 = pct(times.clone(), 0.5);
            println!(
                "| reader range alone, {name} ({n} points out) | | {p50:.2} | {:.2} | | {} |",
                pct(times.clone(), 0.99),
                times.len()
            );
            rows.push(p50);
        }
        println!(
            "reader range, previous / this (p50): {:.0}x",
            rows[1] / rows[0]
        );
    }

    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("monitor_24h_200_ops");
        for (name, uri) in reqs
            .iter()
            .filter(|(n, _)| n == "chart: calls" || n == "table: latencies p99" || n == "exemplars")
        {
            g.bench_function(name.replace(": ", "_").replace(' ', "_"), |b| {
                b.iter(|| sys.block_on(call(uri)))
            });
        }
        g.finish();
    }
    c.final_summary();
}
