//! The span-metrics endpoints over the real time-series store
//! (spanmetrics::store, on disk in a temporary directory) filled with
//! known points, in process: Jaeger's metrics API as the Jaeger UI asks it
//! (the Monitor tab's exact parameters), exact counts over tiled windows,
//! quantiles within a bucket, exemplars filtered and ordered, and
//! `/metrics/spans` parsed by prometheus_client's OpenMetrics parser.
//! Shapes: tests/fixtures/metrics/shapes.json.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::python;
use common::query::{app_over, get};
use common::shape::{assert_fits, load};
use serde_json::Value;
use strand::actors::tree::Health;
use strand::model::{SpanId, SpanKind, StatusCode, TraceId};
use strand::query::QueryState;
use strand::spanmetrics::config::SpanMetricsConfig;
use strand::spanmetrics::store::codec::Source;
use strand::spanmetrics::store::{MetricsStore, Options, SystemClock};
use strand::spanmetrics::{point, Exemplar, Point, SeriesKey, BUCKETS_SECONDS};

const SHAPES: &str = "metrics/shapes.json";
const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

fn key(op: &str, kind: SpanKind, status: StatusCode) -> SeriesKey {
    SeriesKey {
        service: "shop".into(),
        operation: op.into(),
        kind,
        status,
    }
}

/// A point with one call per duration (ns) and an exemplar (the last
/// duration's) when `trace` is given.
fn pt(start_ns: u64, durations: &[u64], errors: u64, trace: Option<u16>) -> Point {
    let mut p = point::empty(start_ns);
    for d in durations {
        p.calls += 1;
        p.duration_sum_ns += d;
        p.buckets[point::bucket_of(*d)] += 1;
    }
    p.errors = errors;
    if let (Some(t), Some(d)) = (trace, durations.last()) {
        let mut id = [0xa5; 16];
        id[..2].copy_from_slice(&t.to_be_bytes());
        p.exemplars[point::bucket_of(*d)] = Some(Exemplar {
            trace_id: TraceId(id),
            span_id: SpanId(id[..8].try_into().unwrap()),
            duration_ns: *d,
            time_ns: start_ns + S,
        });
    }
    p
}

struct Fixture {
    state: actix_web::web::Data<QueryState>,
    now_ms: u64,
    /// Calls and errors per (operation, kind).
    sent: BTreeMap<(String, SpanKind), (u64, u64)>,
    /// Durations (ns) per operation.
    durations: BTreeMap<String, Vec<u64>>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = MetricsStore::open(
        dir.path(),
        Options::from_config(&SpanMetricsConfig::default()),
        Arc::new(SystemClock),
    )
    .unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Ten minutes of 10 s points, starting 20 minutes ago.
    let base = (now_s / 60 - 20) * 60;
    let mut records = Vec::new();
    let mut sent: BTreeMap<(String, SpanKind), (u64, u64)> = BTreeMap::new();
    let mut durations: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut add = |op: &str, kind, status, p: Point| {
        let e = sent.entry((op.to_string(), kind)).or_default();
        e.0 += p.calls;
        e.1 += p.errors;
        let d = durations.entry(op.to_string()).or_default();
        for (i, c) in p.buckets.iter().enumerate() {
            // The bucket's midpoint stands for its calls.
            let hi = BUCKETS_SECONDS.get(i).copied().unwrap_or(1e4);
            let lo = if i == 0 { 0.0 } else { BUCKETS_SECONDS[i - 1] };
            d.extend(std::iter::repeat_n(
                ((lo + hi) / 2.0 * 1e9) as u64,
                *c as usize,
            ));
        }
        records.push((key(op, kind, status), p));
    };
    for i in 0..60u64 {
        let t = (base + 10 * i) * S;
        // 3 ms and 40 ms calls, one failing every fifth window.
        let cart: Vec<u64> = vec![3 * MS; 1 + (i % 3) as usize];
        add(
            "GET /cart",
            SpanKind::Server,
            StatusCode::Unset,
            pt(t, &cart, 0, (i % 4 == 0).then_some(i as u16 + 1)),
        );
        if i % 5 == 0 {
            add(
                "GET /cart",
                SpanKind::Server,
                StatusCode::Error,
                pt(t, &[40 * MS], 1, Some(100 + i as u16)),
            );
        }
        if i % 2 == 0 {
            add(
                "POST /pay",
                SpanKind::Server,
                StatusCode::Ok,
                pt(t, &[300 * MS, 700 * MS], 0, None),
            );
        }
        add(
            "call bank",
            SpanKind::Client,
            StatusCode::Unset,
            pt(t, &[250 * MS], 0, Some(200 + i as u16)),
        );
    }
    store.append(records, &Source::default()).unwrap();
    let health = Health::default();
    health.set_started(true);
    let state = actix_web::web::Data::new(QueryState {
        reader: Arc::new(strand::tiers::memory::MemoryStore::default()),
        cfg: Default::default(),
        health,
        span_metrics: store,
    });
    Fixture {
        state,
        now_ms: now_s * 1000,
        sent,
        durations,
        _dir: dir,
    }
}

/// Σ value × ratePer over each metric's points, by operation label.
fn tiled(family: &Value, rate_per_ms: u64, errors: Option<&Value>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (i, m) in family["metrics"].as_array().unwrap().iter().enumerate() {
        let op = m["labels"][1]["value"].as_str().unwrap_or("").to_string();
        let mut sum = 0.0;
        for (j, p) in m["metricPoints"].as_array().unwrap().iter().enumerate() {
            let calls =
                p["gaugeValue"]["doubleValue"].as_f64().unwrap() * rate_per_ms as f64 / 1000.0;
            sum += match errors {
                None => calls,
                Some(e) => e["metrics"][i]["metricPoints"][j]["gaugeValue"]["doubleValue"]
                    .as_f64()
                    .map_or(0.0, |r| r * calls),
            };
        }
        out.insert(op, sum.round() as u64);
    }
    out
}

#[actix_web::test]
async fn jaeger_ui_monitor_requests_over_the_store() {
    let f = fixture();
    let app = app_over!(f.state.clone());
    let fam = async |q: String| {
        let r = get!(&app, format!("/api/metrics/{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        assert!(r.content_type.starts_with("application/json"));
        let v = r.json();
        assert_fits(&v, &load(SHAPES, "family"));
        v
    };
    // Exactly what the Monitor tab sends (endTs now, 1 h, 1 min steps,
    // 10 min rate windows; server spans by default).
    let ui = format!(
        "endTs={}&lookback=3600000&step=60000&ratePer=600000",
        f.now_ms
    );
    for (which, name) in [
        ("latencies?quantile=0.95&", "service_latencies"),
        ("latencies?quantile=0.5&", "service_latencies"),
        ("calls?", "service_call_rate"),
        ("errors?", "service_error_rate"),
    ] {
        let v = fam(format!("{which}service=shop&{ui}")).await;
        assert_eq!(v["name"], name);
        let m = v["metrics"].as_array().unwrap();
        assert_eq!(m.len(), 1, "{v}");
        assert_eq!(
            m[0]["labels"][0],
            serde_json::json!({"name": "service_name", "value": "shop"})
        );
        assert_eq!(m[0]["metricPoints"].as_array().unwrap().len(), 61);
    }
    let ops = fam(format!("calls?service=shop&groupByOperation=true&{ui}")).await;
    assert_eq!(ops["name"], "service_operation_call_rate");
    let names: Vec<&str> = ops["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["labels"][1]["value"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["GET /cart", "POST /pay"], "server spans only");

    // Tiled windows: exact counts per operation, per kind.
    let w = 600_000;
    for kind in [SpanKind::Server, SpanKind::Client] {
        let q = format!(
            "service=shop&groupByOperation=true&spanKind={}&endTs={}&lookback={}&step={w}&ratePer={w}",
            kind.as_str(),
            f.now_ms,
            3 * w
        );
        let calls = fam(format!("calls?{q}")).await;
        let errors = fam(format!("errors?{q}")).await;
        let want: BTreeMap<String, (u64, u64)> = f
            .sent
            .iter()
            .filter(|((_, k), _)| *k == kind)
            .map(|((op, _), v)| (op.clone(), *v))
            .collect();
        let got_calls = tiled(&calls, w, None);
        let got_errors = tiled(&calls, w, Some(&errors));
        let want_calls: BTreeMap<String, u64> =
            want.iter().map(|(o, v)| (o.clone(), v.0)).collect();
        let want_errors: BTreeMap<String, u64> =
            want.iter().map(|(o, v)| (o.clone(), v.1)).collect();
        assert_eq!(got_calls, want_calls, "{kind:?}");
        assert_eq!(got_errors, want_errors, "{kind:?}");
    }

    // One window over everything: each quantile within a bucket.
    for q in [0.5, 0.9, 0.99] {
        let v = fam(format!(
            "latencies?service=shop&groupByOperation=1&spanKind=server&spanKind=client&quantile={q}\
             &endTs={}&lookback={w}&step={w}&ratePer=1800000",
            f.now_ms
        ))
        .await;
        for m in v["metrics"].as_array().unwrap() {
            let op = m["labels"][1]["value"].as_str().unwrap();
            let got = m["metricPoints"][1]["gaugeValue"]["doubleValue"]
                .as_f64()
                .unwrap();
            let mut d = f.durations[op].clone();
            d.sort();
            let truth = d[((q * d.len() as f64).ceil() as usize).max(1) - 1];
            let (gi, ti) = (
                point::bucket_of((got * MS as f64) as u64),
                point::bucket_of(truth),
            );
            assert!(gi.abs_diff(ti) <= 1, "{op} p{q}: {got} ms vs {truth} ns");
        }
    }

    let r = get!(&app, "/api/metrics/minstep");
    let v = r.json();
    assert_fits(&v, &load(SHAPES, "minstep"));
    assert_eq!(v["data"], 10_000);
}

#[actix_web::test]
async fn exemplars_over_the_store() {
    let f = fixture();
    let app = app_over!(f.state.clone());
    let ex = async |q: String| {
        let r = get!(&app, format!("/api/metrics/exemplars?{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        let v = r.json();
        assert_fits(&v, &load(SHAPES, "exemplars"));
        v["exemplars"].as_array().unwrap().clone()
    };
    let window = format!("endTs={}&lookback=3600000", f.now_ms);
    let all = ex(format!("service=shop&{window}")).await;
    // GET /cart: 15 (every 4th window) + 12 errors; call bank: 60.
    assert_eq!(all.len(), 15 + 12 + 60);
    let times: Vec<u64> = all
        .iter()
        .map(|e| e["timestampMs"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let cart = ex(format!("service=shop&operation=GET%20%2Fcart&{window}")).await;
    assert_eq!(cart.len(), 27);
    for e in &cart {
        let le = e["bucketLeMs"].as_f64().unwrap();
        let d = e["durationMs"].as_f64().unwrap();
        assert!(d <= le + 1e-9 && (d == 3.0 || d == 40.0), "{e}");
    }
    let client = ex(format!("service=shop&spanKind=client&{window}")).await;
    assert_eq!(client.len(), 60);
    assert!(client.iter().all(|e| e["operation"] == "call bank"));
    // Only the last 5 minutes: the data ended 10 minutes ago.
    let recent = ex(format!("service=shop&endTs={}&lookback=300000", f.now_ms)).await;
    assert!(recent.is_empty(), "{recent:?}");
}

#[actix_web::test]
async fn openmetrics_over_the_store_parses() {
    let f = fixture();
    let app = app_over!(f.state.clone());
    let r = get!(&app, "/metrics/spans");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = r.text();
    assert!(text.ends_with("# EOF\n"));
    let file = f._dir.path().join("spans.txt");
    std::fs::write(&file, &text).unwrap();
    let parsed = python::run_json(
        "openmetrics_parse.py",
        &[&format!("file://{}", file.display())],
    );
    let families = parsed["families"].as_array().unwrap();
    let mut calls: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut exemplars = 0;
    for fam in families {
        for s in fam["samples"].as_array().unwrap() {
            let l = &s["labels"];
            if s["name"] == "traces_span_metrics_calls_total" {
                let kind = l["span_kind"].as_str().unwrap().to_string();
                *calls
                    .entry((l["span_name"].as_str().unwrap().into(), kind))
                    .or_default() += s["value"].as_f64().unwrap();
            }
            if let Some(e) = s["exemplar"].as_object() {
                let trace = e["labels"]["trace_id"].as_str().unwrap();
                assert_eq!(trace.len(), 32);
                assert_eq!(e["labels"]["span_id"].as_str().unwrap(), &trace[..16]);
                exemplars += 1;
            }
        }
    }
    let want: BTreeMap<(String, String), f64> = f
        .sent
        .iter()
        .map(|((op, k), v)| {
            let kind = format!("SPAN_KIND_{}", k.as_str().to_uppercase());
            ((op.clone(), kind), v.0 as f64)
        })
        .collect();
    assert_eq!(calls, want);
    // One exemplar per (series, bucket) that kept one: GET /cart unset and
    // error, call bank.
    assert_eq!(exemplars, 3, "{text}");
    assert!(text.contains(r#"status_code="STATUS_CODE_ERROR""#));
}
