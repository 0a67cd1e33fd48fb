//! Span metrics served for real: `strand serve` with head sampling at 10%
//! takes a known workload from the OpenTelemetry Python SDK
//! (tests/span_metrics_workload.py: per service, operation and kind, the
//! exact calls, errors and durations), and Jaeger's metrics API
//! (`/api/metrics/*`, as the Jaeger UI calls it) and `/metrics/spans`
//! (parsed by prometheus_client's OpenMetrics parser,
//! tests/openmetrics_parse.py) report 100% of that traffic: counts and
//! errors exactly, quantiles within one bucket of the true value, and
//! exemplars that are traces strand really stored. Shapes are checked
//! against tests/fixtures/metrics/shapes.json.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::http::{enc, get, get_json, get_text};
use common::jaeger::trace_spans;
use common::process::Strand;
use common::python;
use common::shape::{assert_fits, load};
use common::span_metrics::parse_exposition;
use common::wait;
use serde_json::Value;
use strand::spanmetrics::{BUCKETS, BUCKETS_SECONDS};

const SHAPES: &str = "metrics/shapes.json";
/// The window of the exact checks: step = ratePer = W, so windows tile.
const W: u64 = 600_000;
const WITHIN: Duration = Duration::from_secs(90);

/// One series as the workload sent it.
#[derive(Clone, Debug)]
struct Sent {
    service: String,
    name: String,
    kind: String,
    calls: u64,
    errors: u64,
    durations_ms: Vec<f64>,
}

fn sent_series(v: &Value) -> Vec<Sent> {
    v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Sent {
            service: s["service"].as_str().unwrap().into(),
            name: s["name"].as_str().unwrap().into(),
            kind: s["kind"].as_str().unwrap().into(),
            calls: s["calls"].as_u64().unwrap(),
            errors: s["errors"].as_u64().unwrap(),
            durations_ms: s["durations_ms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_f64().unwrap())
                .collect(),
        })
        .collect()
}

fn bucket_of(seconds: f64) -> usize {
    BUCKETS_SECONDS
        .iter()
        .position(|b| seconds <= *b)
        .unwrap_or(BUCKETS - 1)
}

/// The q quantile of the values sent: the ⌈q·n⌉-th smallest.
fn true_quantile(durations: &[f64], q: f64) -> f64 {
    let mut d = durations.to_vec();
    d.sort_by(f64::total_cmp);
    let k = ((q * d.len() as f64).ceil() as usize).clamp(1, d.len());
    d[k - 1]
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// (service, span_name, span_kind, status_code) → value, for one sample
/// name of a parsed exposition.
type Labels = (String, String, String, String);

fn by_labels(families: &Value, sample: &str) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    for f in families.as_array().unwrap() {
        for s in f["samples"].as_array().unwrap() {
            if s["name"] != sample {
                continue;
            }
            let l = &s["labels"];
            let key = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            out.insert(
                (
                    key("service_name"),
                    key("span_name"),
                    key("span_kind"),
                    key("status_code"),
                ),
                s["value"].as_f64().unwrap(),
            );
        }
    }
    out
}

/// What `/metrics/spans` must say for the workload: calls per series and
/// status (errors are the STATUS_CODE_ERROR series).
fn expected_calls(sent: &[Sent]) -> BTreeMap<Labels, f64> {
    let mut want = BTreeMap::new();
    for s in sent {
        let kind = format!("SPAN_KIND_{}", s.kind.to_uppercase());
        let key = |status: &str| {
            (
                s.service.clone(),
                s.name.clone(),
                kind.clone(),
                status.into(),
            )
        };
        if s.errors > 0 {
            want.insert(key("STATUS_CODE_ERROR"), s.errors as f64);
        }
        if s.calls > s.errors {
            want.insert(key("STATUS_CODE_UNSET"), (s.calls - s.errors) as f64);
        }
    }
    want
}

/// Σ value × W/1000 over the points of each metric of a calls or errors
/// family, by (service, operation label or "").
fn tiled_counts(family: &Value, errors_of: Option<&Value>) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for (i, m) in family["metrics"].as_array().unwrap().iter().enumerate() {
        let labels = &m["labels"];
        let service = labels[0]["value"].as_str().unwrap().to_string();
        let op = labels
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "operation")
            .map(|l| l["value"].as_str().unwrap().to_string())
            .unwrap_or_default();
        let points = m["metricPoints"].as_array().unwrap();
        let mut sum = 0.0;
        for (j, p) in points.iter().enumerate() {
            let rate = p["gaugeValue"]["doubleValue"].as_f64().unwrap_or(0.0);
            let calls = rate * (W as f64 / 1000.0);
            sum += match errors_of {
                None => calls,
                // The error family: ratio × the calls of the same window
                // (NaN where there were none).
                Some(err) => {
                    let ratio = &err["metrics"][i]["metricPoints"][j]["gaugeValue"]["doubleValue"];
                    ratio.as_f64().map_or(0.0, |r| r * calls)
                }
            };
        }
        out.insert((service, op), sum.round() as u64);
    }
    out
}

async fn family(s: &Strand, which: &str, q: &str) -> Value {
    let url = format!("{}/api/metrics/{which}?{q}", s.query);
    let (code, v) = get_json(&url).await;
    assert_eq!(code, 200, "{url}: {v}");
    assert_fits(&v, &load(SHAPES, "family"));
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn sampled_traffic_is_counted_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start(dir.path(), "[sampling]\nratio = 0.1\nkeep_errors = false\n");
    let out = python::run_json(
        "span_metrics_workload.py",
        &[&format!("{}/v1/traces", s.http)],
    );
    assert_eq!(
        out["failures"],
        serde_json::json!([]),
        "exports failed: {out}"
    );
    let sent = sent_series(&out);
    let want = expected_calls(&sent);

    // /metrics/spans: exactly the calls sent, per series and status.
    let mut last = BTreeMap::new();
    let complete = wait::eventually(WITHIN, async || {
        let (code, text) = get_text(&format!("{}/metrics/spans", s.query)).await;
        assert_eq!(code, 200);
        last = scrape_calls(&text);
        last == want
    })
    .await;
    assert!(
        complete,
        "calls_total never matched:\n got {last:?}\nwant {want:?}"
    );
    let r = get(&format!("{}/metrics/spans", s.query)).await;
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(r.text().await.unwrap().ends_with("# EOF\n"));

    let parsed = parse_exposition(&s.query);
    let families = &parsed["families"];
    assert_eq!(by_labels(families, "traces_span_metrics_calls_total"), want);
    check_histograms(families, &sent);
    check_openmetrics_exemplars(&s, families).await;

    // Sampling really dropped traces: far fewer stored than sent.
    let stored = stored_traces(&s).await;
    let sent_traces = out["traces"].as_u64().unwrap();
    assert!(
        stored > 0 && stored < sent_traces / 2,
        "stored {stored} of {sent_traces} traces"
    );

    check_jaeger_counts(&s, &sent).await;
    check_latencies(&s, &sent).await;
    check_exemplar_api(&s).await;

    let (code, v) = get_json(&format!("{}/api/metrics/minstep", s.query)).await;
    assert_eq!(code, 200);
    assert_fits(&v, &load(SHAPES, "minstep"));
    assert_eq!(v["data"], 10_000, "the store's 10 s resolution: {v}");
}

/// calls_total lines of an exposition, parsed just enough to poll on.
fn scrape_calls(text: &str) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("traces_span_metrics_calls_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let get = |k: &str| {
            let at = labels.find(&format!("{k}=\"")).map(|i| i + k.len() + 2)?;
            let end = labels[at..].find('"')? + at;
            Some(labels[at..end].to_string())
        };
        let (Some(a), Some(b), Some(c), Some(d)) = (
            get("service_name"),
            get("span_name"),
            get("span_kind"),
            get("status_code"),
        ) else {
            continue;
        };
        out.insert((a, b, c, d), value.parse().unwrap_or(f64::NAN));
    }
    out
}

/// Every bucket count is exact (no duration sits on a bound), `_count` is
/// the calls and `_sum` the sum of durations.
fn check_histograms(families: &Value, sent: &[Sent]) {
    let fam = families
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "traces_span_metrics_duration_seconds")
        .expect("duration family");
    assert_eq!(fam["type"], "histogram");
    assert_eq!(fam["unit"], "seconds");
    for s in sent {
        let kind = format!("SPAN_KIND_{}", s.kind.to_uppercase());
        let mut want = [0u64; BUCKETS];
        for d in &s.durations_ms {
            want[bucket_of(d / 1000.0)] += 1;
        }
        let mut got = [0u64; BUCKETS];
        let mut count = 0.0;
        let mut sum = 0.0;
        for sample in fam["samples"].as_array().unwrap() {
            let l = &sample["labels"];
            if l["service_name"] != s.service.as_str()
                || l["span_name"] != s.name.as_str()
                || l["span_kind"] != kind.as_str()
            {
                continue;
            }
            let v = sample["value"].as_f64().unwrap();
            match sample["name"].as_str().unwrap() {
                "traces_span_metrics_duration_seconds_bucket" => {
                    let le = l["le"].as_str().unwrap();
                    let i = if le == "+Inf" {
                        BUCKETS - 1
                    } else {
                        let b: f64 = le.parse().unwrap();
                        BUCKETS_SECONDS
                            .iter()
                            .position(|x| (x - b).abs() < 1e-12)
                            .unwrap()
                    };
                    got[i] += v as u64; // cumulative, summed over statuses
                }
                "traces_span_metrics_duration_seconds_count" => count += v,
                "traces_span_metrics_duration_seconds_sum" => sum += v,
                _ => {}
            }
        }
        let cumulative: Vec<u64> = want
            .iter()
            .scan(0, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect();
        assert_eq!(
            got.to_vec(),
            cumulative,
            "{}/{}/{}",
            s.service,
            s.name,
            s.kind
        );
        assert_eq!(count, s.calls as f64, "{}/{}", s.service, s.name);
        let want_sum: f64 = s.durations_ms.iter().sum::<f64>() / 1000.0;
        assert!(
            (sum - want_sum).abs() < 1e-3,
            "{}/{}: sum {sum} vs {want_sum}",
            s.service,
            s.name
        );
    }
}

/// Each exemplar is a stored trace whose span has the bucket's service,
/// operation and a duration inside the bucket.
async fn check_openmetrics_exemplars(s: &Strand, families: &Value) {
    let mut seen = 0;
    for f in families.as_array().unwrap() {
        for sample in f["samples"].as_array().unwrap() {
            let Some(e) = sample["exemplar"].as_object() else {
                continue;
            };
            assert_eq!(
                sample["name"],
                "traces_span_metrics_duration_seconds_bucket"
            );
            let l = &sample["labels"];
            let trace = e["labels"]["trace_id"].as_str().unwrap();
            let span_id = e["labels"]["span_id"].as_str().unwrap();
            let dur_s = e["value"].as_f64().unwrap();
            let le = l["le"].as_str().unwrap();
            let i = if le == "+Inf" {
                BUCKETS - 1
            } else {
                bucket_of(le.parse().unwrap())
            };
            assert_eq!(
                bucket_of(dur_s),
                i,
                "exemplar {dur_s}s on the bucket le={le}"
            );
            assert!(
                e["timestamp"].as_f64().is_some(),
                "exemplar timestamp: {sample}"
            );
            let span = stored_span(s, trace, span_id).await;
            assert_eq!(span["operationName"], l["span_name"], "{sample}");
            let micros = span["duration"].as_f64().unwrap();
            assert!(
                (micros - dur_s * 1e6).abs() <= 1.0,
                "{micros} µs vs {dur_s} s"
            );
            seen += 1;
        }
    }
    assert!(seen >= 3, "only {seen} exemplars in /metrics/spans");
}

async fn stored_span(s: &Strand, trace: &str, span_id: &str) -> Value {
    let spans = trace_spans(&s.query, trace).await;
    spans
        .into_iter()
        .find(|x| x["spanID"] == span_id)
        .unwrap_or_else(|| panic!("exemplar span {span_id} not in stored trace {trace}"))
}

async fn stored_traces(s: &Strand) -> u64 {
    let mut n = 0;
    for svc in ["checkout", "payments"] {
        let url = format!(
            "{}/api/traces?service={svc}&limit=100000&lookback=1h",
            s.query
        );
        let (code, v) = get_json(&url).await;
        assert_eq!(code, 200, "{url}: {v}");
        n = n.max(v["data"].as_array().unwrap().len() as u64);
    }
    n
}

/// `/api/metrics/calls` and `/errors` over tiled windows: Σ rate × window
/// is the exact count, per service and per operation, for each kind.
async fn check_jaeger_counts(s: &Strand, sent: &[Sent]) {
    for kind in ["server", "client", "internal"] {
        let mut want_calls = BTreeMap::new();
        let mut want_errors = BTreeMap::new();
        let mut want_service = BTreeMap::new();
        for x in sent.iter().filter(|x| x.kind == kind) {
            want_calls.insert((x.service.clone(), x.name.clone()), x.calls);
            want_errors.insert((x.service.clone(), x.name.clone()), x.errors);
            *want_service
                .entry((x.service.clone(), String::new()))
                .or_insert(0) += x.calls;
        }
        let mut got = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let matched = wait::eventually(WITHIN, async || {
            let q = format!(
                "service=checkout&service=payments&spanKind={kind}&endTs={}&lookback={}&step={W}&ratePer={W}",
                now_ms(),
                2 * W
            );
            let by_op = format!("{q}&groupByOperation=true");
            let calls = family(s, "calls", &by_op).await;
            let errors = family(s, "errors", &by_op).await;
            assert_eq!(calls["name"], "service_operation_call_rate");
            assert_eq!(errors["name"], "service_operation_error_rate");
            got = (
                tiled_counts(&calls, None),
                tiled_counts(&calls, Some(&errors)),
                tiled_counts(&family(s, "calls", &q).await, None),
            );
            (&got.0, &got.1, &got.2) == (&want_calls, &want_errors, &want_service)
        })
        .await;
        assert!(
            matched,
            "{kind}: calls {:?} vs {want_calls:?}, errors {:?} vs {want_errors:?}, per service {:?} vs {want_service:?}",
            got.0, got.1, got.2
        );
    }
}

/// The last point's window holds the whole workload: each quantile lands
/// within one bucket of the true one.
async fn check_latencies(s: &Strand, sent: &[Sent]) {
    for q in [0.5, 0.75, 0.95, 0.99] {
        let query = format!(
            "service=checkout&service=payments&spanKind=server&spanKind=client&spanKind=internal\
             &groupByOperation=true&quantile={q}&endTs={}&lookback={W}&step={W}&ratePer={W}",
            now_ms()
        );
        let v = family(s, "latencies", &query).await;
        assert_eq!(v["name"], "service_operation_latencies");
        let metrics = v["metrics"].as_array().unwrap();
        // Operations, not kinds, are the groups: "charge" is a client span
        // of checkout and a server span of payments, one group per service.
        let mut by_group: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for x in sent {
            by_group
                .entry((x.service.clone(), x.name.clone()))
                .or_default()
                .extend(&x.durations_ms);
        }
        assert_eq!(metrics.len(), by_group.len(), "{v}");
        for m in metrics {
            let key = (
                m["labels"][0]["value"].as_str().unwrap().to_string(),
                m["labels"][1]["value"].as_str().unwrap().to_string(),
            );
            let points = m["metricPoints"].as_array().unwrap();
            let got = points.last().unwrap()["gaugeValue"]["doubleValue"]
                .as_f64()
                .unwrap_or_else(|| panic!("{key:?} p{q}: {m}"));
            let truth = true_quantile(&by_group[&key], q);
            let (gi, ti) = (bucket_of(got / 1000.0), bucket_of(truth / 1000.0));
            assert!(
                gi.abs_diff(ti) <= 1,
                "{key:?} p{q}: {got} ms (bucket {gi}) vs true {truth} ms (bucket {ti})"
            );
        }
    }
}

/// `/api/metrics/exemplars`: newest first, each a stored trace whose span
/// lies in the bucket named.
async fn check_exemplar_api(s: &Strand) {
    let url = format!(
        "{}/api/metrics/exemplars?service=payments&operation={}&endTs={}&lookback={W}",
        s.query,
        enc("charge"),
        now_ms()
    );
    let (code, v) = get_json(&url).await;
    assert_eq!(code, 200, "{url}: {v}");
    assert_fits(&v, &load(SHAPES, "exemplars"));
    let list = v["exemplars"].as_array().unwrap();
    assert!(!list.is_empty() && list.len() <= 200, "{v}");
    let times: Vec<u64> = list
        .iter()
        .map(|e| e["timestampMs"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    for e in list {
        assert_eq!(e["operation"], "charge");
        let dur = e["durationMs"].as_f64().unwrap();
        if let Some(le) = e["bucketLeMs"].as_f64() {
            assert_eq!(bucket_of(dur / 1000.0), bucket_of(le / 1000.0), "{e}");
        }
        let span = stored_span(
            s,
            e["traceId"].as_str().unwrap(),
            e["spanId"].as_str().unwrap(),
        )
        .await;
        assert_eq!(span["operationName"], "charge");
        assert!(
            (span["duration"].as_f64().unwrap() - dur * 1000.0).abs() <= 1.0,
            "{e}"
        );
    }
}
