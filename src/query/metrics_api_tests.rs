use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::model::StatusCode;
use crate::query::metrics_api_compute::testutil::{key, point, S};
use crate::spanmetrics::BUCKETS;

/// A reader over hand-built points that merges them to the asked step, as
/// the contract says the store does, and records the queries.
pub(crate) struct Fake {
    pub series: Vec<(SeriesKey, Vec<Point>)>,
    pub min_step_ns: u64,
    pub asked: Mutex<Vec<RangeQuery>>,
}

impl Fake {
    pub fn new(series: Vec<(SeriesKey, Vec<Point>)>) -> Fake {
        Fake {
            series,
            min_step_ns: 10 * S,
            asked: Mutex::new(Vec::new()),
        }
    }
}

impl MetricsReader for Fake {
    fn range(&self, q: &RangeQuery) -> Result<Vec<(SeriesKey, Vec<Point>)>> {
        self.asked.lock().unwrap().push(q.clone());
        let start = q.start_ns - q.start_ns % q.step_ns;
        Ok(self
            .series
            .iter()
            .filter(|(k, _)| q.service.as_ref().is_none_or(|s| *s == k.service))
            .filter(|(k, _)| q.kinds.is_empty() || q.kinds.contains(&k.kind))
            .filter_map(|(k, pts)| {
                let mut merged: BTreeMap<u64, Point> = BTreeMap::new();
                for p in pts
                    .iter()
                    .filter(|p| p.start_ns >= start && p.start_ns < q.end_ns)
                {
                    let at = p.start_ns - p.start_ns % q.step_ns;
                    let m = merged.entry(at).or_insert_with(|| Point {
                        start_ns: at,
                        calls: 0,
                        errors: 0,
                        duration_sum_ns: 0,
                        buckets: [0; BUCKETS],
                        exemplars: [None; BUCKETS],
                    });
                    m.calls += p.calls;
                    m.errors += p.errors;
                    m.duration_sum_ns += p.duration_sum_ns;
                    for i in 0..BUCKETS {
                        m.buckets[i] += p.buckets[i];
                        m.exemplars[i] = p.exemplars[i].or(m.exemplars[i]);
                    }
                }
                (!merged.is_empty()).then(|| (k.clone(), merged.into_values().collect()))
            })
            .collect())
    }
    fn totals(&self) -> Result<Vec<(SeriesKey, Point)>> {
        Ok(Vec::new())
    }
    fn min_step_ns(&self) -> u64 {
        self.min_step_ns
    }
    fn services(&self) -> Result<Vec<String>> {
        Ok(self.series.iter().map(|(k, _)| k.service.clone()).collect())
    }
}

fn params(qs: &str) -> Result<MetricsParams> {
    parse_params(&Params::parse(qs)?, 10_000 * S, 86_400 * S)
}

fn err(r: Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(e @ Error::InvalidArgument(_)) => e.to_string(),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn defaults_follow_jaeger() {
    let q = params("service=a").unwrap();
    assert_eq!(q.services, ["a"]);
    assert!(!q.group_by_operation);
    assert_eq!(q.kinds, [SpanKind::Server]);
    assert_eq!(
        q.grid,
        Grid {
            start_ns: 10_000 * S - 3600 * S,
            step_ns: 5 * S,
            end_ns: 10_000 * S,
            rate_per_ns: 600 * S
        }
    );
    let q = params(
        "service=a&service=b&groupByOperation=True&spanKind=client&spanKind=SPAN_KIND_PRODUCER\
         &endTs=5000000&lookback=60000&step=1000&ratePer=30000",
    )
    .unwrap();
    assert_eq!(q.services, ["a", "b"]);
    assert!(q.group_by_operation);
    assert_eq!(q.kinds, [SpanKind::Client, SpanKind::Producer]);
    assert_eq!(q.grid.end_ns, 5000 * S);
    assert_eq!(q.grid.start_ns, 4940 * S);
    assert_eq!((q.grid.step_ns, q.grid.rate_per_ns), (S, 30 * S));
}

#[test]
fn bad_parameters_name_the_reason() {
    assert!(err(params("")).contains("service"));
    assert!(err(params("service=a&step=0")).contains("step"));
    assert!(err(params("service=a&step=-5")).contains("positive"));
    assert!(err(params("service=a&step=abc")).contains("step"));
    assert!(err(params("service=a&lookback=86400001")).contains("retention"));
    assert!(err(params("service=a&lookback=1e3")).contains("lookback"));
    assert!(err(params("service=a&ratePer=0")).contains("ratePer"));
    assert!(err(params("service=a&endTs=yesterday")).contains("endTs"));
    assert!(err(params("service=a&groupByOperation=maybe")).contains("groupByOperation"));
    assert!(err(params("service=a&spanKind=sideways")).contains("spanKind"));
    assert!(err(params("service=a&lookback=86400000&step=1")).contains("points"));
    let q = |s: &str| parse_quantile(&Params::parse(s).unwrap());
    assert_eq!(q("quantile=0.95").unwrap(), 0.95);
    assert_eq!(q("quantile=1").unwrap(), 1.0);
    for bad in [
        "",
        "quantile=0",
        "quantile=1.5",
        "quantile=-0.5",
        "quantile=NaN",
        "quantile=p95",
    ] {
        assert!(err(q(bad)).contains("quantile"), "{bad}");
    }
}

#[test]
fn timestamps_use_the_proto3_json_mapping() {
    assert_eq!(timestamp(1_622_711_526 * S), "2021-06-03T09:12:06Z");
    assert_eq!(
        timestamp(1_631_274_747_520_000_000),
        "2021-09-10T11:52:27.520Z"
    );
    assert_eq!(timestamp(1), "1970-01-01T00:00:00.000000001Z");
}

/// Two services, one with two operations and kinds, over a minute.
fn fake() -> Fake {
    let mut client = key("shop", "GET /cart", SpanKind::Client);
    client.status = StatusCode::Unset;
    Fake::new(vec![
        (
            key("shop", "GET /cart", SpanKind::Server),
            vec![
                point(1000, &[0.003, 0.003], 0),
                point(1010, &[0.004, 0.040], 1),
            ],
        ),
        (
            key("shop", "POST /pay", SpanKind::Server),
            vec![point(1020, &[0.3], 1)],
        ),
        (client, vec![point(1000, &[9.0; 5], 0)]),
        (
            key("other", "x", SpanKind::Server),
            vec![point(1000, &[1.0], 0)],
        ),
    ])
}

fn family_for(qs: &str, which: &str) -> Value {
    serde_json::to_value(metric_json(&fake(), qs, which, 2000 * S).unwrap()).unwrap()
}

fn doubles(m: &Value) -> Vec<Value> {
    m["metricPoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["gaugeValue"]["doubleValue"].clone())
        .collect()
}

/// endTs=1040 s, lookback 40 s, step = ratePer = 20 s: output times 1000,
/// 1020, 1040 covering [980, 1000), [1000, 1020), [1020, 1040).
const Q: &str = "service=shop&endTs=1040000&lookback=40000&step=20000&ratePer=20000";

#[test]
fn calls_are_rates_over_tiled_windows() {
    let v = family_for(Q, "calls");
    assert_eq!(v["name"], "service_call_rate");
    assert_eq!(v["type"], "GAUGE");
    let m = v["metrics"].as_array().unwrap();
    assert_eq!(m.len(), 1, "server kind only, one service: {v}");
    assert_eq!(
        m[0]["labels"],
        json!([{"name": "service_name", "value": "shop"}])
    );
    // Server calls: 4 in [1000, 1020), 1 in [1020, 1040).
    assert_eq!(doubles(&m[0]), [json!(0.0), json!(0.2), json!(0.05)]);
    let ts: Vec<&str> = m[0]["metricPoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(
        ts,
        [
            "1970-01-01T00:16:40Z",
            "1970-01-01T00:17:00Z",
            "1970-01-01T00:17:20Z"
        ]
    );
    // Every kind: the client calls count too.
    let all = family_for(&format!("{Q}&spanKind=server&spanKind=client"), "calls");
    assert_eq!(
        doubles(&all["metrics"][0]),
        [json!(0.0), json!(0.45), json!(0.05)]
    );
}

#[test]
fn errors_are_ratios_and_nan_without_calls() {
    let v = family_for(&format!("{Q}&groupByOperation=true"), "errors");
    assert_eq!(v["name"], "service_operation_error_rate");
    let m = v["metrics"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0]["labels"],
        json!([{"name": "service_name", "value": "shop"}, {"name": "operation", "value": "GET /cart"}])
    );
    assert_eq!(doubles(&m[0]), [json!("NaN"), json!(0.25), json!("NaN")]);
    assert_eq!(m[1]["labels"][1]["value"], "POST /pay");
    assert_eq!(doubles(&m[1]), [json!("NaN"), json!("NaN"), json!(1.0)]);
}

#[test]
fn latencies_are_milliseconds_within_the_bucket() {
    let v = family_for(&format!("{Q}&quantile=0.5"), "latencies");
    assert_eq!(v["name"], "service_latencies");
    assert_eq!(v["help"], "0.50th quantile latency, grouped by service");
    let d = doubles(&v["metrics"][0]);
    assert_eq!(d[0], json!("NaN"));
    // [1000, 1020): 3, 3, 4, 40 ms; the median rank 2 is in (2, 5] ms.
    let p50 = d[1].as_f64().unwrap();
    assert!((2.0..=5.0).contains(&p50), "{p50}");
    // [1020, 1040): one 300 ms call, in (200, 500] ms.
    let p = d[2].as_f64().unwrap();
    assert!((200.0..=500.0).contains(&p), "{p}");
    let e = metric_json(&fake(), Q, "latencies", 0).unwrap_err();
    assert!(e.to_string().contains("quantile"), "{e}");
}

#[test]
fn reads_each_service_once_at_the_window_step() {
    let f = fake();
    metric_json(&f, &format!("{Q}&service=other"), "calls", 0).unwrap();
    let asked = f.asked.lock().unwrap();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].service.as_deref(), Some("shop"));
    assert_eq!(asked[1].service.as_deref(), Some("other"));
    assert_eq!(asked[0].kinds, [SpanKind::Server]);
    assert_eq!(
        (asked[0].start_ns, asked[0].end_ns),
        (980 * S, 1040 * S + 1)
    );
    assert_eq!(asked[0].step_ns, 20 * S);
}

#[test]
fn no_series_is_an_empty_family() {
    let v = metric_json(&Fake::new(vec![]), "service=none", "calls", 2000 * S).unwrap();
    assert_eq!(serde_json::to_value(v).unwrap()["metrics"], json!([]));
    let r = minstep(&fake());
    assert_eq!(r.status(), 200);
}

#[test]
fn answers_match_the_fixture() {
    // tests/fixtures/metrics/calls-by-operation.json: the answer for these
    // points, written in the shape of Jaeger's documented example.
    let want: Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/metrics/calls-by-operation.json"
    ))
    .unwrap();
    let got = family_for(&format!("{Q}&groupByOperation=1"), "calls");
    assert_eq!(got, want);
}
