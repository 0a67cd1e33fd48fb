//! The real Kafka broker and Elasticsearch node the tests run against
//! (`scripts/kafka.sh start`, `scripts/elasticsearch.sh start`), reached
//! through STRAND_KAFKA_BROKERS and STRAND_ES_URL. A missing service fails
//! the test with a message saying how to start it; nothing is skipped.
//! Names are unique per test, so runs can share one broker and one node.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use strand::config::{ElasticsearchConfig, KafkaConfig};
use strand::elasticsearch::EsStore;

/// A name no other test, process or earlier run uses.
pub fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}-{}",
        std::process::id(),
        strand::model::now_ns() % 1_000_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn kafka_brokers() -> String {
    std::env::var("STRAND_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Panics unless the first broker accepts connections.
pub fn require_kafka() {
    let brokers = kafka_brokers();
    let first = brokers.split(',').next().unwrap_or_default().to_string();
    let up = first
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    assert!(
        up,
        "no Kafka broker at {brokers}: start one with `scripts/kafka.sh start`"
    );
}

/// A consumer/producer config on a topic and group of its own.
pub fn kafka_config(name: &str) -> KafkaConfig {
    require_kafka();
    let unique = unique(name);
    KafkaConfig {
        enabled: true,
        brokers: kafka_brokers(),
        topic: format!("strand-test-{unique}"),
        group_id: format!("strand-test-group-{unique}"),
        partitions: 4,
        batch_max_wait_ms: 50,
        batch_max_messages: 50,
        delivery_timeout_ms: 10_000,
        ..Default::default()
    }
}

pub fn es_url() -> String {
    std::env::var("STRAND_ES_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into())
}

/// Panics unless Elasticsearch answers its health endpoint.
pub async fn require_es() {
    let url = es_url();
    let ok = reqwest::Client::new()
        .get(format!("{url}/_cluster/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(
        ok,
        "Elasticsearch is not reachable at {url}: start it with `scripts/elasticsearch.sh start`"
    );
}

/// The Elasticsearch tier on indices of its own (`t-<name>-…-spans-*`).
pub fn es_config(name: &str) -> ElasticsearchConfig {
    ElasticsearchConfig {
        enabled: true,
        url: es_url(),
        index_prefix: format!("t-{}", unique(name)),
        bulk_max_delay_ms: 50,
        request_timeout_ms: 10_000,
        ..Default::default()
    }
}

/// Documents in the prefix's span indices.
pub async fn es_count(store: &EsStore, prefix: &str) -> u64 {
    let pattern = format!("{prefix}-spans-*");
    let resp = store
        .client()
        .count(elasticsearch::CountParts::Index(&[&pattern]))
        .allow_no_indices(true)
        .send()
        .await
        .expect("count");
    let v: Value = resp.json().await.expect("count json");
    v["count"].as_u64().unwrap_or(0)
}

/// Waits until exactly `n` documents are indexed, then makes them
/// searchable.
pub async fn es_wait_indexed(store: &EsStore, prefix: &str, n: u64) {
    let what = format!("{n} documents in {prefix}");
    super::poll::until_some(&what, Duration::from_secs(60), || async {
        let c = es_count(store, prefix).await;
        assert!(c <= n, "more documents than written: {c} > {n}");
        (c == n).then_some(())
    })
    .await;
    store.refresh().await.expect("refresh");
}

/// Deletes the prefix's indices and template.
pub async fn es_cleanup(store: &EsStore, prefix: &str) {
    use elasticsearch::indices::{IndicesDeleteIndexTemplateParts, IndicesDeleteParts};
    let pattern = format!("{prefix}-spans-*");
    let _ = store
        .client()
        .indices()
        .delete(IndicesDeleteParts::Index(&[&pattern]))
        .send()
        .await;
    let name = format!("{prefix}-spans");
    let _ = store
        .client()
        .indices()
        .delete_index_template(IndicesDeleteIndexTemplateParts::Name(&name))
        .send()
        .await;
}
