//! Meta-tracing through the real binary: strand's own ingest, seal and
//! query spans under service `strand` at the configured rate, none when
//! disabled, strand's ingest of its own spans never traced, a caller's
//! `traceparent` continued, and log lines (no ANSI escapes off a terminal;
//! JSON with the ids of a stored self-trace).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::http::{client, get_json};
use common::otlp::{post, request, spans_now, trace_id};
use common::process::{free_port, Strand};
use common::wait::{until, value};
use prost::Message as _;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// One request of `n` spans of service `load` (trace `seq`).
async fn send(http: &str, seq: u64, n: u64) {
    let req = request("load", spans_now(trace_id(7, seq), n, 1, vec![]));
    let r = post(client(), http, req.encode_to_vec()).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// Every stored trace of service `strand` (Jaeger JSON), within the hour.
async fn self_traces(query: &str) -> Vec<Value> {
    let (code, body) = get_json(&format!(
        "{query}/api/traces?service=strand&limit=1500&lookback=1h"
    ))
    .await;
    match code {
        200 => body["data"].as_array().cloned().unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn ops(trace: &Value) -> Vec<String> {
    trace["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["operationName"].as_str().map(String::from))
        .collect()
}

fn has_op(traces: &[Value], op: &str) -> bool {
    traces
        .iter()
        .any(|t| ops(t).iter().any(|o| o.starts_with(op)))
}

/// Earliest span start of a trace (µs).
fn trace_start(trace: &Value) -> u64 {
    trace["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["startTime"].as_u64())
        .min()
        .unwrap_or(0)
}

fn now_us() -> u64 {
    strand::model::now_ns() / 1_000
}

#[tokio::test]
async fn self_traces_cover_ingest_seal_and_query() {
    let dir = tempfile::tempdir().unwrap();
    // Each request fills a segment, so seals happen as often as ingests;
    // 100 traces a second leaves tokens for both.
    let s = Strand::start(
        dir.path(),
        "segment_max_spans = 5\n\n[self_tracing]\nenabled = true\ntraces_per_second = 100.0\n",
    );
    let mut seq = 0;
    let traces = value("self-traces of ingest, seal and query", WAIT, async || {
        send(&s.http, seq, 5).await;
        seq += 1;
        let t = self_traces(&s.query).await;
        (has_op(&t, "ingest") && has_op(&t, "segment seal") && has_op(&t, "GET /api/")).then_some(t)
    })
    .await;

    // An ingest trace has its phases as children of the request span.
    let ingest = traces
        .iter()
        .find(|t| ops(t).contains(&"ingest".to_string()))
        .unwrap();
    let names: HashSet<String> = ops(ingest).into_iter().collect();
    for phase in ["decode", "process", "durable write"] {
        assert!(names.contains(phase), "{phase} missing in {names:?}");
    }
    let process = &ingest["processes"][ingest["spans"][0]["processID"].as_str().unwrap()];
    let role = process["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "strand.role")
        .unwrap();
    assert_eq!(role["value"], "all");

    // Redirected output: no ANSI escape sequences anywhere in the log.
    let log = std::fs::read(dir.path().join("strand.log")).unwrap();
    assert!(!log.is_empty());
    assert!(!log.contains(&0x1b), "ESC bytes in a redirected log");
}

#[tokio::test]
async fn self_traces_start_at_the_configured_rate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start(
        dir.path(),
        "\n[self_tracing]\nenabled = true\ntraces_per_second = 1.0\n",
    );
    // Load for 8 s: 20 requests a second, far above the self-trace rate.
    let t0 = now_us();
    let started = Instant::now();
    let mut seq = 0;
    while started.elapsed() < Duration::from_secs(8) {
        send(&s.http, seq, 5).await;
        seq += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t1 = now_us();
    // Exported within a second or so; the polls below start traces of
    // their own, after t1, which the window leaves out.
    let traces = value("the window's self-traces", WAIT, async || {
        let t = self_traces(&s.query).await;
        t.iter().any(|t| trace_start(t) > t1).then_some(t)
    })
    .await;
    let in_window = traces
        .iter()
        .filter(|t| (t0..=t1).contains(&trace_start(t)))
        .count();
    let secs = (t1 - t0) as f64 / 1e6;
    // 1 per second with a burst of 1: at most one per second (+1 for the
    // burst, +1 for a boundary); and not far below, since a request
    // wanted a token all the time.
    assert!(
        in_window as f64 <= secs + 2.0,
        "{in_window} self-traces in {secs:.1} s at 1/s"
    );
    assert!(
        in_window as f64 >= secs / 2.0,
        "only {in_window} self-traces in {secs:.1} s at 1/s"
    );
    assert!(has_op(&traces, "ingest"));
}

#[tokio::test]
async fn strand_ingesting_its_own_spans_is_not_traced() {
    // Self-traces sent over OTLP/HTTP to strand's own receiver: the
    // receiver sees them, and must not trace ingesting them.
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let s = Strand::start_with_args(
        dir.path(),
        &format!(
            "\n[self_tracing]\nenabled = true\ntraces_per_second = 20.0\nendpoint = \"http://127.0.0.1:{http}\"\n"
        ),
        &["--http-addr", &format!("127.0.0.1:{http}")],
    );
    // Queries are the only traced work: each one's spans come back in.
    let traces = value("query self-traces back through OTLP", WAIT, async || {
        let t = self_traces(&s.query).await;
        (t.len() >= 5).then_some(t)
    })
    .await;
    let (_, metrics) = common::http::get_text(&format!("{}/metrics", s.query)).await;
    let received =
        common::http::metric_in(&metrics, "strand_ingest_spans_received_total").unwrap_or(0.0);
    assert!(
        received >= 5.0,
        "self-spans did not come in over OTLP: {received}"
    );
    assert!(
        !has_op(&traces, "ingest"),
        "ingesting self-spans was traced: {:?}",
        traces.iter().map(ops).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn no_self_traces_when_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start(
        dir.path(),
        "segment_max_spans = 50\n\n[self_tracing]\nenabled = false\ntraces_per_second = 100.0\n",
    );
    for seq in 0..40 {
        send(&s.http, seq, 5).await;
    }
    until("the load to be served", WAIT, async || {
        let (_, b) = get_json(&format!("{}/api/services", s.query)).await;
        b["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "load"))
    })
    .await;
    // Had it been on, at 100/s these queries and the seals would have
    // been traced and exported within half a second; watch for 3 s.
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        let (_, b) = get_json(&format!("{}/api/services", s.query)).await;
        let services = b["data"].as_array().cloned().unwrap_or_default();
        assert!(!services.iter().any(|v| v == "strand"), "{services:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_callers_traceparent_continues_into_the_query_span() {
    let dir = tempfile::tempdir().unwrap();
    // A rate so low that only the caller's decision can sample this query.
    let s = Strand::start(
        dir.path(),
        "\n[self_tracing]\nenabled = true\ntraces_per_second = 0.001\n",
    );
    // Spend the one token of the bucket first.
    let _ = get_json(&format!("{}/api/services", s.query)).await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = client()
        .get(format!("{}/api/services", s.query))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let span = value("the query span in the caller's trace", WAIT, async || {
        let (code, body) = get_json(&format!("{}/api/traces/{trace}", s.query)).await;
        (code == 200).then(|| body["data"][0]["spans"][0].clone())
    })
    .await;
    assert_eq!(span["traceID"], trace);
    assert_eq!(span["operationName"], "GET /api/services");
    assert_eq!(span["references"][0]["refType"], "CHILD_OF");
    assert_eq!(span["references"][0]["spanID"], parent);
}

#[tokio::test]
async fn json_logs_carry_the_ids_of_a_stored_self_trace() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start_with_args(
        dir.path(),
        "segment_max_spans = 20\n\n[self_tracing]\nenabled = true\ntraces_per_second = 200.0\n",
        &["--log-format", "json"],
    );
    let mut seq = 0;
    // Seals log "segment sealed" inside their span; find one with ids.
    let (trace_id, span_id) = value("a sealed-segment log line with ids", WAIT, async || {
        send(&s.http, seq, 10).await;
        seq += 1;
        let log = std::fs::read_to_string(dir.path().join("strand.log")).unwrap();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == "segment sealed" && v["trace_id"].is_string())
            .map(|v| {
                let id = |k: &str| v[k].as_str().unwrap().to_string();
                (id("trace_id"), id("span_id"))
            })
    })
    .await;
    // Every line is JSON.
    let log = std::fs::read_to_string(dir.path().join("strand.log")).unwrap();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    let span = value("the logged self-trace, stored", WAIT, async || {
        let (code, body) = get_json(&format!("{}/api/traces/{trace_id}", s.query)).await;
        if code != 200 {
            return None;
        }
        body["data"][0]["spans"]
            .as_array()?
            .iter()
            .find(|sp| sp["spanID"] == span_id.as_str())
            .cloned()
    })
    .await;
    assert_eq!(span["operationName"], "segment seal");
}
