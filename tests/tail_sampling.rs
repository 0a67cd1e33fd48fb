//! Tail sampling end to end, on the real binary with the OpenTelemetry SDK
//! as the client: what policies keep is stored whole and the rest is not,
//! a SIGKILL while traces wait loses no acknowledged span, late spans
//! follow the decision, memory pressure decides early (counted), and a bad
//! policy stops start-up naming its key.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::otel::grpc_provider;
use common::process::{serve_until_exit, Strand};
use common::tail::{baseline_keeps, emit, emit_late, metric, stored, Shape};
use common::wait;
use futures::StreamExt;
use prost::Message;

const POLICIES: &str = r#"
[[sampling.tail.policies]]
name = "errors"
type = "status_code"
status_codes = ["ERROR"]

[[sampling.tail.policies]]
name = "slow"
type = "latency"
threshold_ms = 1000

[[sampling.tail.policies]]
name = "baseline"
type = "probabilistic"
sampling_percentage = 1.0
"#;

fn config(storage: &str, tail: &str) -> String {
    format!("writer_shards = 2\n{storage}\n[sampling.tail]\nenabled = true\n{tail}\n{POLICIES}")
}

/// Emits on a blocking thread (the SDK's simple processor blocks).
async fn emit_all(grpc: &str, shapes: Vec<Shape>) -> Vec<(String, Shape)> {
    let grpc = grpc.to_string();
    tokio::task::spawn_blocking(move || {
        let p = grpc_provider("tail-shop", &grpc);
        let ids = shapes.into_iter().map(|s| (emit(&p, s), s)).collect();
        p.shutdown().unwrap();
        ids
    })
    .await
    .unwrap()
}

async fn decided(node: &str) -> u64 {
    metric(node, "strand_tail_traces_total").await
}

async fn stored_all(query: &str, ids: &[(String, Shape)]) -> Vec<usize> {
    futures::stream::iter(ids.iter().map(|(id, _)| stored(query, id)))
        .buffered(8)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_every_error_and_slow_trace_whole_and_about_one_percent_of_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let strand = Strand::start(
        dir.path(),
        &config("fsync = false", "decision_wait_ms = 1000\nsettle_ms = 300"),
    );
    let n = 2000;
    let shapes: Vec<Shape> = (0..n)
        .map(|i| match i % 100 {
            17 => Shape::Error,
            53 => Shape::Slow,
            _ => Shape::Plain,
        })
        .collect();
    let ids = emit_all(&strand.grpc, shapes).await;
    let q = strand.query.clone();
    wait::until("every trace decided", Duration::from_secs(60), async || {
        decided(&q).await == n && metric(&q, "strand_tail_pending_traces").await == 0
    })
    .await;

    let counts = stored_all(&q, &ids).await;
    let mut rest_kept = HashSet::new();
    let mut rest_expected = HashSet::new();
    for ((id, shape), spans) in ids.iter().zip(&counts) {
        match shape {
            Shape::Error | Shape::Slow => assert_eq!(*spans, 2, "{shape:?} trace {id} whole"),
            Shape::Plain => {
                assert!(
                    *spans == 0 || *spans == 2,
                    "all or nothing: {id} has {spans}"
                );
                if *spans == 2 {
                    rest_kept.insert(id.clone());
                }
                if baseline_keeps(id, 1.0) {
                    rest_expected.insert(id.clone());
                }
            }
        }
    }
    // The baseline decides by trace id: exactly the ids below 1%.
    assert_eq!(rest_kept, rest_expected);
    // 1% of 1960: 19.6 expected, sd ≈ 4.4; ±3.5 sd.
    assert!(
        (4..=35).contains(&rest_kept.len()),
        "{} kept",
        rest_kept.len()
    );

    let series = |p: &str, d: &str| {
        format!("strand_tail_decisions_total{{policy=\"{p}\",decision=\"{d}\"}}")
    };
    assert_eq!(metric(&q, &series("errors", "keep")).await, 20);
    assert_eq!(metric(&q, &series("errors", "drop")).await, n - 20);
    assert_eq!(metric(&q, &series("slow", "keep")).await, 20);
    let baseline_all = ids.iter().filter(|(id, _)| baseline_keeps(id, 1.0)).count() as u64;
    assert_eq!(metric(&q, &series("baseline", "keep")).await, baseline_all);
    let kept_traces = counts.iter().filter(|c| **c > 0).count() as u64;
    assert_eq!(
        metric(&q, "strand_tail_traces_total{decision=\"keep\"}").await,
        kept_traces
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_traces_wait_loses_no_acknowledged_span() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that nothing is decided before the kill.
    let tail = "decision_wait_ms = 8000\nsettle_ms = 8000\nmax_trace_age_ms = 8000";
    let mut strand = Strand::start(dir.path(), &config("fsync = true", tail));
    let shapes: Vec<Shape> = (0..30)
        .map(|i| {
            if i % 3 == 0 {
                Shape::Error
            } else {
                Shape::Plain
            }
        })
        .collect();
    let ids = emit_all(&strand.grpc, shapes).await;
    // Every span was acknowledged (the SDK export returned): all waiting.
    let q = strand.query.clone();
    assert_eq!(metric(&q, "strand_tail_pending_traces").await, 30);
    assert_eq!(decided(&q).await, 0, "nothing decided before the kill");
    assert_eq!(
        stored(&q, &ids[0].0).await,
        0,
        "not searchable while waiting"
    );
    strand.kill9();

    strand.restart();
    let q = strand.query.clone();
    assert_eq!(metric(&q, "strand_tail_recovered_traces_total").await, 30);
    wait::until(
        "the recovered traces decided",
        Duration::from_secs(60),
        async || decided(&q).await == 30,
    )
    .await;
    let counts = stored_all(&q, &ids).await;
    for ((id, shape), spans) in ids.iter().zip(&counts) {
        let want = match shape {
            Shape::Error => 2,
            _ if baseline_keeps(id, 1.0) => 2,
            _ => 0,
        };
        assert_eq!(*spans, want, "{shape:?} trace {id}");
    }
    // The pending log keeps only what still waits.
    let logs: u64 = std::fs::read_dir(dir.path().join("data/tail"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        logs < 64 << 10,
        "old generations deleted ({logs} bytes left)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_spans_follow_the_cached_decision() {
    let dir = tempfile::tempdir().unwrap();
    let strand = Strand::start(
        dir.path(),
        &config("fsync = false", "decision_wait_ms = 500\nsettle_ms = 200"),
    );
    let ids = emit_all(&strand.grpc, vec![Shape::Error, Shape::Plain]).await;
    let (kept, dropped) = (ids[0].0.clone(), ids[1].0.clone());
    let q = strand.query.clone();
    wait::until("both decided", Duration::from_secs(30), async || {
        decided(&q).await == 2
    })
    .await;
    let dropped_stays = if baseline_keeps(&dropped, 1.0) { 2 } else { 0 };
    assert_eq!(stored(&q, &kept).await, 2);
    assert_eq!(stored(&q, &dropped).await, dropped_stays);

    let grpc = strand.grpc.clone();
    let (k, d) = (kept.clone(), dropped.clone());
    tokio::task::spawn_blocking(move || {
        let p = grpc_provider("tail-shop", &grpc);
        emit_late(&p, &k);
        emit_late(&p, &d);
        p.shutdown().unwrap();
    })
    .await
    .unwrap();
    // The late span of the kept trace is stored at once, without waiting.
    wait::until(
        "the late span stored",
        Duration::from_secs(10),
        async || stored(&q, &kept).await == 3,
    )
    .await;
    let late = |d: &str| format!("strand_tail_late_spans_total{{decision=\"{d}\"}}");
    assert_eq!(metric(&q, &late("keep")).await, 1);
    assert_eq!(
        metric(&q, &late("drop")).await,
        u64::from(dropped_stays == 0)
    );
    assert_eq!(
        stored(&q, &dropped).await,
        dropped_stays + usize::from(dropped_stays > 0)
    );
    assert_eq!(decided(&q).await, 2, "no new decision for late spans");
    assert_eq!(metric(&q, "strand_tail_pending_traces").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_decides_the_oldest_early_and_counts_it() {
    use common::otlp::{any_value::Value, kv, post_status, request, spans_now, trace_id};
    use strand::otlp::proto::trace::v1::Status;
    let dir = tempfile::tempdir().unwrap();
    // Nothing is due for a minute: only the memory bound decides.
    let tail = "decision_wait_ms = 60000\nmax_pending_bytes = 1048576";
    let strand = Strand::start(dir.path(), &config("fsync = false", tail));
    let client = reqwest::Client::new();
    let big = vec![kv("payload", Value::StringValue("x".repeat(10_000)))];
    let n = 40u64;
    for t in 0..n {
        let mut spans = spans_now(trace_id(7, t + 1), 5, 1, big.clone());
        if t == 0 {
            spans[3].status = Some(Status {
                code: 2,
                ..Default::default()
            });
        }
        let req = request("tail-big", spans);
        assert_eq!(post_status(&client, &strand.http, &req).await, 200);
        assert!(req.encoded_len() > 50_000);
    }
    let q = strand.query.clone();
    let early = metric(&q, "strand_tail_early_decisions_total").await;
    assert!(early > 0, "the bound was reached");
    assert!(early < n, "not everything was decided early");
    assert_eq!(
        decided(&q).await,
        early,
        "every decision so far was an early one"
    );
    assert!(metric(&q, "strand_tail_pending_bytes").await <= 1 << 20);
    assert_eq!(
        metric(&q, "strand_tail_pending_traces").await + early,
        n,
        "nothing vanished: decided or waiting"
    );
    // The oldest trace went first and, as an error trace, is kept whole.
    let first = hex::encode(trace_id(7, 1));
    wait::until(
        "the early-kept trace",
        Duration::from_secs(10),
        async || stored(&q, &first).await == 5,
    )
    .await;
}

#[test]
fn a_bad_policy_stops_start_up_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "[storage]\ndir = {:?}\n[sampling.tail]\nenabled = true\n[[sampling.tail.policies]]\nname = \"slow\"\ntype = \"latency\"\nthreshold = 5\n",
        data.display().to_string()
    );
    let out = serve_until_exit(dir.path(), &config, Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(out.stderr.contains("threshold"), "{}", out.stderr);

    let config = format!(
        "[storage]\ndir = {:?}\n[sampling.tail]\nenabled = true\n[[sampling.tail.policies]]\nname = \"slow\"\ntype = \"latency\"\n",
        data.display().to_string()
    );
    let out = serve_until_exit(dir.path(), &config, Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("sampling.tail.policies[0] (slow).threshold_ms"),
        "{}",
        out.stderr
    );
}
