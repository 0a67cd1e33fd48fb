//! The Elasticsearch tier's writer against a real Elasticsearch
//! (`common::es`): a rejected document dead-lettered alone, a durable
//! backlog through an outage and a restart, a failing drain loop restarted
//! by its supervisor, and the retention janitor.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use elasticsearch::indices::IndicesCreateParts;
use serde_json::{json, Value};
use strand::config::{ElasticsearchConfig, IndexConfig};
use strand::elasticsearch::sink::start_es_writer;
use strand::elasticsearch::{janitor, EsStore};
use strand::metrics::ActorStats;
use strand::model::*;
use strand::model::{SpanReader, SpanWriter};

use common::es::{self, dataset, Tier, DAY, HOUR};
use common::wait;

#[actix_rt::test]
async fn a_rejected_document_is_dead_lettered_alone() {
    let es = Tier::start("reject").await;
    let (store, writer) = (&es.store, &es.writer);
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
    es.wait_indexed(good).await;
    let line = wait::value("the dead letter", Duration::from_secs(30), async || {
        let text = std::fs::read_to_string(writer.dead_letter_path()).unwrap_or_default();
        (!text.is_empty()).then_some(text)
    })
    .await;
    wait::until(
        "the backlog to drain",
        Duration::from_secs(30),
        async || writer.pending().records == 0,
    )
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
    es.finish().await;
}

#[actix_rt::test]
async fn backlog_survives_an_unreachable_elasticsearch_and_a_restart() {
    es::require().await;
    let prefix = es::unique_prefix("outage");
    let index = IndexConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let now = now_ns();
    let spans = dataset(now, 30);
    {
        // Nothing listens on port 9; connections are refused.
        let down = ElasticsearchConfig {
            url: "http://127.0.0.1:9".into(),
            ..es::config(&prefix)
        };
        let writer = start_es_writer(&down, &index, dir.path(), None)
            .expect("writer starts without elasticsearch");
        for chunk in spans.chunks(10) {
            writer
                .write(chunk.to_vec())
                .await
                .expect("write is durable while elasticsearch is down");
        }
        assert_eq!(writer.pending().records, spans.len() as u64);
        // A second writer may not share the backlog.
        assert!(start_es_writer(&down, &index, dir.path(), None).is_err());
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
    let cfg = es::config(&prefix);
    let store = EsStore::connect(&cfg, &index).await.expect("connect");
    let writer = start_es_writer(&cfg, &index, dir.path(), None)
        .expect("writer restarts over the same backlog");
    es::wait_indexed(&store, &prefix, spans.len() as u64).await;
    wait::until(
        "the backlog to drain",
        Duration::from_secs(30),
        async || writer.pending().records == 0,
    )
    .await;
    for s in spans.iter().step_by(5) {
        assert!(store.trace(s.trace_id).await.unwrap().contains(s));
    }
    assert!(std::fs::read_to_string(writer.dead_letter_path())
        .unwrap_or_default()
        .is_empty());
    writer.shutdown().await;
    es::delete_indices(&es::url(), &prefix).await;
}

#[actix_rt::test]
async fn a_failing_drain_loop_is_restarted_by_its_supervisor() {
    es::require().await;
    let prefix = es::unique_prefix("restart");
    // Elasticsearch refuses this template (shards > 1024): the drain loop
    // fails with a non-retryable error, stops, and is restarted.
    let cfg = ElasticsearchConfig {
        number_of_shards: 5000,
        ..es::config(&prefix)
    };
    let dir = tempfile::tempdir().unwrap();
    let stats = ActorStats::get("es_writer");
    let before = stats.restarts.load(std::sync::atomic::Ordering::Relaxed);
    let writer = start_es_writer(&cfg, &IndexConfig::default(), dir.path(), None).expect("writer");
    wait::until("a restart", Duration::from_secs(30), async || {
        stats.restarts.load(std::sync::atomic::Ordering::Relaxed) > before
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
    es::require().await;
    let prefix = es::unique_prefix("janitor");
    let cfg = es::config(&prefix);
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
    es::delete_indices(&es::url(), &prefix).await;
}
