//! Kafka mode through the real binary and a real broker (`common::kafka`):
//! `strand serve --target ingest` → Kafka → `--target writer` →
//! `--target query`. Fails without a broker. The broker-outage test is in
//! kafka_e2e_outage.rs.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;

use common::http::{get_json, metric};
use common::jaeger::{all_served, service_names, trace_ids, trace_spans, user_search_url};
use common::kafka::{self, unique};
use common::load::{self, Load, SPANS_PER_REQUEST};
use common::process::Strand;
use common::{otel, wait};

fn peers(nodes: &[&Strand]) -> String {
    let urls: Vec<String> = nodes.iter().map(|n| format!("{:?}", n.query)).collect();
    format!("peers = [{}]", urls.join(", "))
}

/// Traces of `service` found by a search at `query`.
async fn search_ids(query: &str, service: &str) -> Vec<String> {
    let (code, v) = get_json(&format!("{query}/api/traces?service={service}&limit=1500")).await;
    assert_eq!(code, 200, "{v}");
    trace_ids(&v)
}

async fn assert_all_served(query: &str, acked: &[String], within: Duration) {
    if let Err(e) = all_served(query, acked, SPANS_PER_REQUEST, within).await {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn otel_sdk_trace_flows_ingest_to_writer_to_query() {
    let (k, _) = kafka::toml_section(&kafka::brokers(), "flow", "");
    let dir = tempfile::tempdir().unwrap();
    let writer = Strand::start_target(&dir.path().join("w"), "writer", "", &k);
    let ingest = Strand::start_target(&dir.path().join("i"), "ingest", "", &k);
    let query = Strand::start_target(&dir.path().join("q"), "query", &peers(&[&writer]), "");
    let (front_svc, back_svc) = (unique("frontend"), unique("checkout"));
    let user = unique("user");

    let front = otel::grpc_provider(&front_svc, &ingest.grpc);
    let back = otel::grpc_provider(&back_svc, &ingest.grpc);
    let root_attrs = vec![KeyValue::new("user_id", user.clone())];
    let trace_id = tokio::task::block_in_place(|| {
        otel::emit_trace(
            &front,
            &back,
            "GET /checkout",
            root_attrs,
            "charge card",
            |_| {},
        )
    });

    let q = query.query.clone();
    let whole = wait::eventually(Duration::from_secs(30), async || {
        trace_spans(&q, &trace_id).await.len() == 2
    })
    .await;
    assert!(whole, "trace {trace_id} not served whole by the query node");
    let (_, body) = get_json(&format!("{q}/api/traces/{trace_id}")).await;
    let trace = &body["data"][0];
    let services: HashSet<&str> = service_names(trace).into_iter().collect();
    assert_eq!(
        services,
        HashSet::from([front_svc.as_str(), back_svc.as_str()])
    );
    let (code, found) = get_json(&user_search_url(&q, &front_svc, &user)).await;
    assert_eq!(code, 200, "{found}");
    assert_eq!(found["data"][0]["traceID"], trace_id.as_str(), "{found}");
    let (_, svcs) = get_json(&format!("{q}/api/services")).await;
    assert!(svcs["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == front_svc.as_str()));
    // The ingest node serves health only, not the query API.
    assert_eq!(get_json(&format!("{}/healthz", ingest.query)).await.0, 200);
    assert_eq!(
        get_json(&format!("{}/api/services", ingest.query)).await.0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_split_partitions_and_the_query_node_sees_each_span_once() {
    let (k, _) = kafka::toml_section(&kafka::brokers(), "split", "");
    let dir = tempfile::tempdir().unwrap();
    let w1 = Strand::start_target(&dir.path().join("w1"), "writer", "", &k);
    let w2 = Strand::start_target(&dir.path().join("w2"), "writer", "", &k);
    let ingest = Strand::start_target(&dir.path().join("i"), "ingest", "", &k);
    let query = Strand::start_target(&dir.path().join("q"), "query", &peers(&[&w1, &w2]), "");
    let svc = unique("split");

    let load = Arc::new(Load::default());
    let workers = load.start(&ingest, &svc, 2, 300);
    // Keep producing until the group has settled and both writers hold data.
    let (a, b) = (w1.query.clone(), w2.query.clone());
    let split = wait::eventually(Duration::from_secs(60), async || {
        load.acked().len() >= 200
            && !search_ids(&a, &svc).await.is_empty()
            && !search_ids(&b, &svc).await.is_empty()
    })
    .await;
    assert!(split, "the two writers never both received partitions");
    load.finish(workers).await;
    let acked = load.acked();
    assert_all_served(&query.query, &acked, Duration::from_secs(60)).await;

    let found = search_ids(&query.query, &svc).await;
    let distinct: HashSet<&String> = found.iter().collect();
    assert_eq!(distinct.len(), found.len(), "a trace listed twice");
    assert_eq!(distinct, acked.iter().collect::<HashSet<_>>());
    let (n1, n2) = (
        search_ids(&a, &svc).await.len(),
        search_ids(&b, &svc).await.len(),
    );
    assert!(
        n1 < acked.len() && n2 < acked.len() && n1 + n2 >= acked.len(),
        "{n1} + {n2} vs {}",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_writer_resumes_from_committed_offsets_and_loses_nothing() {
    let (k, _) = kafka::toml_section(&kafka::brokers(), "kill", "batch_max_messages = 20");
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Strand::start_target(&dir.path().join("w"), "writer", "", &k);
    let ingest = Strand::start_target(&dir.path().join("i"), "ingest", "", &k);
    let svc = unique("kill");
    let load = Arc::new(Load::default());
    let workers = load.start(&ingest, &svc, 3, 400);

    let w = writer.query.clone();
    let consuming = wait::eventually(Duration::from_secs(60), async || {
        metric(&w, "strand_kafka_consumed_spans_total").await >= 3_000
    })
    .await;
    assert!(consuming, "the writer consumed too little");
    writer.kill9();
    let at_kill = load.acked().len();
    let more = wait::eventually(Duration::from_secs(60), async || {
        load.acked().len() >= at_kill + 100
    })
    .await;
    assert!(more, "ingest stalled while the writer was down");
    writer.restart();
    load.finish(workers).await;
    let acked = load.acked();
    assert_all_served(&writer.query, &acked, Duration::from_secs(60)).await;
    let reread = metric(&writer.query, "strand_kafka_consumed_spans_total").await;
    let sent = (acked.len() * SPANS_PER_REQUEST) as u64;
    assert!(
        reread > 0 && reread < sent.saturating_sub(2_000),
        "the restarted writer consumed {reread} of {sent} spans: not from its committed offsets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_message_goes_to_the_dead_letter_topic_through_the_writer() {
    let brokers = kafka::brokers();
    let (k, topic) = kafka::toml_section(&brokers, "poison", "");
    let dir = tempfile::tempdir().unwrap();
    let writer = Strand::start_target(&dir.path().join("w"), "writer", "", &k);
    let producer = kafka::producer(&brokers);
    let garbage = b"\x0a\xff\xff\xff not protobuf".to_vec();
    let (trace, good) = load::request(&unique("poison"), 0, 0);
    kafka::send(&producer, &topic, b"bad", &garbage).await;
    kafka::send(&producer, &topic, &hex::decode(&trace).unwrap(), &good).await;
    let w = writer.query.clone();
    let flowed = wait::eventually(Duration::from_secs(30), async || {
        trace_spans(&w, &trace).await.len() == SPANS_PER_REQUEST
    })
    .await;
    assert!(flowed, "the message after the poison one was not stored");

    let dead = kafka::read_all(&brokers, &format!("{topic}-dlq"), 1, 1).await;
    assert_eq!(
        dead.first().map(|(_, _, payload, _)| &payload[..]),
        Some(&garbage[..]),
        "poison message in the DLQ"
    );
}
