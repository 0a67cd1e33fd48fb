//! Span metrics survive SIGKILL: once a flush made counts durable (the
//! node's totals show them), a killed and restarted strand still has every
//! point, per operation and in its window, and counts on from there.

mod common;

use std::time::Duration;

use common::process::Strand;
use common::span_metrics::{range, send_workload, totals};
use common::wait;

const CONFIG: &str = "\n[span_metrics]\nflush_interval_ms = 200\n\n[sampling]\nratio = 0.1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_points_survive_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut strand = Strand::start(dir.path(), CONFIG);
    let service = common::kafka::unique("metrics-crash");
    let sent = send_workload(&strand.http, &service, 60, 7).await;
    assert_eq!(sent.values().map(|c| c.0).sum::<u64>(), 240);

    let q = strand.query.clone();
    // Totals move only after the flush's fsync: this is "flushed".
    wait::until(
        "the flush of every span",
        Duration::from_secs(30),
        async || totals(&q, &service).await.as_ref() == Some(&sent),
    )
    .await;
    assert_eq!(range(&q, &service, 600).await.as_ref(), Some(&sent));
    let (code, actors) = common::http::get_json(&format!("{q}/api/admin/actors")).await;
    assert_eq!(code, 200);
    assert!(
        actors["groups"]["pipeline"]
            .to_string()
            .contains("span_metrics"),
        "the stage is in the supervision tree: {actors}"
    );
    strand.kill9();
    let files = std::fs::read_dir(dir.path().join("data/metrics"))
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            p.extension().is_some_and(|x| x == "smt")
        })
        .count();
    assert!(files > 0, "metric files under <data_dir>/metrics");

    strand.restart();
    let q = strand.query.clone();
    assert_eq!(
        totals(&q, &service).await.as_ref(),
        Some(&sent),
        "totals after the crash"
    );
    assert_eq!(
        range(&q, &service, 600).await.as_ref(),
        Some(&sent),
        "points after the crash"
    );

    // Counting goes on after the restart, on top of what was kept.
    let more = send_workload(&strand.http, &service, 3, 8).await;
    let mut expected = sent.clone();
    for (k, (c, e)) in more {
        let x = expected.entry(k).or_default();
        x.0 += c;
        x.1 += e;
    }
    wait::until(
        "the counts after restart",
        Duration::from_secs(30),
        async || totals(&q, &service).await.as_ref() == Some(&expected),
    )
    .await;
    assert_eq!(range(&q, &service, 600).await.as_ref(), Some(&expected));
}
