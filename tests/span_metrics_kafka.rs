//! Span metrics in Kafka mode through the real binary and a real broker:
//! two `--target ingest` nodes count (sampling at 10%), a `--target
//! writer` stores the metrics topic, a `--target query` node reads it as
//! its peer. The totals equal what was sent — each span counted once —
//! also after the writer is SIGKILLed and restarted (it resumes from the
//! offsets stored with its counts, so nothing is applied twice).

mod common;

use std::time::Duration;

use common::kafka::{self, unique};
use common::process::Strand;
use common::span_metrics::{range, send_workload, totals, Counts};
use common::wait;

fn add(into: &mut Counts, more: Counts) {
    for (k, (c, e)) in more {
        let x = into.entry(k).or_default();
        x.0 += c;
        x.1 += e;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_ingest_nodes_are_counted_once_by_the_query_node() {
    let (k, _) = kafka::toml_section(&kafka::brokers(), "metrics", "");
    let topic = unique("span-metrics");
    let cfg = format!(
        "{k}\n[span_metrics]\nflush_interval_ms = 200\nkafka_topic = \"{topic}\"\n\n[sampling]\nratio = 0.1\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Strand::start_target(&dir.path().join("w"), "writer", "", &cfg);
    let ingest_a = Strand::start_target(&dir.path().join("a"), "ingest", "", &cfg);
    let ingest_b = Strand::start_target(&dir.path().join("b"), "ingest", "", &cfg);
    let peers = format!("peers = [{:?}]", writer.query);
    let query = Strand::start_target(&dir.path().join("q"), "query", &peers, &cfg);
    let service = unique("metrics-kafka");

    let mut expected = send_workload(&ingest_a.http, &service, 40, 1).await;
    add(
        &mut expected,
        send_workload(&ingest_b.http, &service, 35, 2).await,
    );
    assert_eq!(expected.values().map(|c| c.0).sum::<u64>(), 300);

    let q = query.query.clone();
    wait::until(
        "the query node's totals",
        Duration::from_secs(60),
        async || totals(&q, &service).await.as_ref() == Some(&expected),
    )
    .await;
    assert_eq!(range(&q, &service, 600).await.as_ref(), Some(&expected));
    // The writer answers the same numbers itself.
    assert_eq!(
        totals(&writer.query, &service).await.as_ref(),
        Some(&expected)
    );

    // A crash of the writer: on restart it neither loses nor re-applies.
    writer.kill9();
    writer.restart();
    add(
        &mut expected,
        send_workload(&ingest_b.http, &service, 3, 3).await,
    );
    wait::until(
        "the totals after the writer's restart",
        Duration::from_secs(60),
        async || totals(&q, &service).await.as_ref() == Some(&expected),
    )
    .await;
    assert_eq!(range(&q, &service, 600).await.as_ref(), Some(&expected));
}
