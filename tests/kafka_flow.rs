//! Kafka mode against a real Apache Kafka broker (`common::kafka`): spans
//! flow producer → broker → consumer → sink grouped by trace; a poison
//! message and a message the sink refuses for good are dead-lettered while
//! the rest flows; a producer without a broker fails retryably.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kafka::{
    self, ids, offsets, read_all, spans, stop, wait_all_committed, RecordingSink, PARTITIONS,
};
use common::wait;
use strand::config::KafkaConfig;
use strand::error::Error;
use strand::kafka::consumer::start_kafka_consumers;
use strand::kafka::producer::KafkaSink;
use strand::kafka::{codec, dlq_topic, DLQ_REASON_HEADER};
use strand::model::SpanId;
use strand::model::SpanWriter;

#[actix_rt::test]
async fn spans_flow_producer_to_consumer_grouped_by_trace() {
    let cfg = kafka::config("flow");
    let sink = KafkaSink::connect(&cfg)
        .await
        .expect("connect to the broker");
    let sent = spans(1, 30, 5);
    for chunk in sent.chunks(40) {
        sink.write(chunk.to_vec()).await.expect("produce");
    }
    let store = Arc::new(RecordingSink::default());
    let consumer = start_kafka_consumers(&cfg, store.clone(), None).unwrap();
    let want = ids(&sent);
    wait::until(
        "every span downstream",
        Duration::from_secs(60),
        async || store.distinct() == want,
    )
    .await;
    wait_all_committed(&cfg).await;
    // Lag is published every 2 s from the committed offsets; the group
    // state comes from librdkafka's statistics (every 5 s).
    let t = &cfg.topic;
    for line in [
        format!("strand_kafka_consumer_lag{{topic=\"{t}\",partition=\"0\"}} 0"),
        format!("strand_kafka_consumer_in_group{{topic=\"{t}\"}} 1"),
    ] {
        wait::until(
            &format!("`{line}` at /metrics"),
            Duration::from_secs(30),
            async || strand::metrics::render().contains(&line),
        )
        .await;
    }
    let text = strand::metrics::render();
    for name in [
        "strand_kafka_produced_messages_total",
        "strand_kafka_delivery_latency_ms_count",
        "strand_kafka_commit_latency_ms_sum",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    stop(consumer).await;

    // One message per trace (30 traces fit in one message each), keyed by
    // trace id, and a trace's messages all on one partition.
    let raw = read_all(&cfg.brokers, &cfg.topic, PARTITIONS, 30).await;
    let mut partition_of: HashMap<Vec<u8>, HashSet<i32>> = HashMap::new();
    let mut total = 0;
    for (p, key, payload, _) in &raw {
        let key = key.clone().expect("message key");
        let decoded = codec::decode(payload).expect("decodable");
        assert!(
            decoded.iter().all(|s| s.trace_id.0[..] == key[..]),
            "message holds another trace's spans"
        );
        total += decoded.len();
        partition_of.entry(key).or_default().insert(*p);
    }
    assert_eq!(total, sent.len());
    assert_eq!(partition_of.len(), 30);
    assert!(
        partition_of.values().all(|ps| ps.len() == 1),
        "a trace spread over partitions: {partition_of:?}"
    );
}

#[actix_rt::test]
async fn poison_message_goes_to_the_dead_letter_topic_and_the_partition_moves_on() {
    let cfg = kafka::config("poison");
    let _ = KafkaSink::connect(&cfg).await.expect("create topics");
    let raw = kafka::producer(&cfg.brokers);
    let garbage = b"\x0a\xff\xff\xff not protobuf".to_vec();
    kafka::send(&raw, &cfg.topic, b"bad", &garbage).await;
    let good = spans(2, 1, 3);
    let key = &good[0].trace_id.0[..];
    kafka::send(&raw, &cfg.topic, key, &codec::encode(&good)).await;

    let store = Arc::new(RecordingSink::default());
    let consumer = start_kafka_consumers(&cfg, store.clone(), None).unwrap();
    wait::until(
        "the good spans after the poison message",
        Duration::from_secs(60),
        async || store.distinct() == ids(&good),
    )
    .await;
    wait_all_committed(&cfg).await;
    let (committed, _) = offsets(&cfg).await;
    assert_eq!(committed[0], 2, "both messages of partition 0 committed");

    let dead = read_all(&cfg.brokers, &dlq_topic(&cfg.topic), 1, 1).await;
    assert_eq!(dead.len(), 1, "one dead letter");
    let (_, key, payload, headers) = &dead[0];
    assert_eq!(payload, &garbage);
    assert_eq!(key.as_deref(), Some(&b"bad"[..]));
    let reason = headers.get(DLQ_REASON_HEADER).expect("reason header");
    assert!(reason.contains("OTLP"), "reason: {reason}");
    assert_eq!(
        headers.get("strand.source.offset").map(String::as_str),
        Some("0")
    );
    stop(consumer).await;
}

#[actix_rt::test]
async fn a_message_the_sink_refuses_for_good_is_dead_lettered_and_the_rest_written() {
    let cfg = kafka::config("refused");
    let _ = KafkaSink::connect(&cfg).await.expect("create topics");
    let raw = kafka::producer(&cfg.brokers);
    let (before, bad, after) = (spans(5, 1, 2), spans(6, 1, 2), spans(7, 1, 2));
    for batch in [&before, &bad, &after] {
        let key = &batch[0].trace_id.0[..];
        kafka::send(&raw, &cfg.topic, key, &codec::encode(batch)).await;
    }
    let store = Arc::new(RecordingSink::default());
    *store.refused.lock() = ids(&bad);
    // One consumer batch holds all three, so the refusal hits the batch
    // first and the loop must split it.
    let consumer = start_kafka_consumers(&cfg, store.clone(), None).unwrap();
    let want: HashSet<SpanId> = ids(&before).union(&ids(&after)).copied().collect();
    wait::until(
        "the spans on both sides of the refused message",
        Duration::from_secs(60),
        async || store.distinct() == want,
    )
    .await;
    wait_all_committed(&cfg).await;
    let (committed, _) = offsets(&cfg).await;
    assert_eq!(
        committed[0], 3,
        "all three messages of partition 0 committed"
    );

    let dead = read_all(&cfg.brokers, &dlq_topic(&cfg.topic), 1, 1).await;
    assert_eq!(dead.len(), 1, "one dead letter");
    let (_, key, payload, headers) = &dead[0];
    assert_eq!(key.as_deref(), Some(&bad[0].trace_id.0[..]));
    let decoded = codec::decode(payload).expect("the refused message, unchanged");
    assert_eq!(ids(&decoded), ids(&bad));
    let reason = headers.get(DLQ_REASON_HEADER).expect("reason header");
    assert!(reason.contains("budget"), "reason: {reason}");
    assert_eq!(
        headers.get("strand.source.offset").map(String::as_str),
        Some("1")
    );
    stop(consumer).await;
}

#[actix_rt::test]
async fn producer_without_a_broker_fails_retryably() {
    // The suite needs a broker, even though this test does not.
    kafka::require_broker(&kafka::brokers());
    let cfg = KafkaConfig {
        enabled: true,
        brokers: "127.0.0.1:1".into(), // nothing listens there
        topic: "strand-test-nobroker".into(),
        delivery_timeout_ms: 1_500,
        ..Default::default()
    };
    let sink = KafkaSink::new(&cfg).expect("creating a producer needs no broker");
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), sink.write(spans(7, 2, 2)))
        .await
        .expect("write hung without a broker")
        .expect_err("write succeeded without a broker");
    assert!(matches!(err, Error::Unavailable(_)), "got {err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(sink.inflight_bytes(), 0, "admission released");

    let err = tokio::time::timeout(Duration::from_secs(30), KafkaSink::connect(&cfg))
        .await
        .expect("connect hung without a broker")
        .err()
        .expect("connect succeeded without a broker");
    assert!(err.is_retryable(), "got {err:?}");
}
