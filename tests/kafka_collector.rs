//! A topic written the way the OpenTelemetry Collector's Kafka exporter
//! writes it (`encoding: otlp_proto`: each value a `TracesData`, several
//! traces per message, or one per message keyed by trace id with
//! `partition_traces_by_id`) consumed by a writer as one of
//! `kafka.extra_topics`, and served; a bad message goes to that topic's
//! DLQ and the messages after it still flow. Needs the real broker
//! (`scripts/kafka.sh start`).

mod common;

use std::time::Duration;

use common::http::get_json;
use common::kafka::{self, unique, PARTITIONS};
use common::otlp::{request, spans_now, trace_id};
use common::process::Strand;
use common::wait;
use prost::Message as _;
use strand::otlp::proto::trace::v1::ResourceSpans;

/// `opentelemetry.proto.trace.v1.TracesData`, as the Collector marshals
/// it (strand has no type of that name: it reads it as an
/// `ExportTraceServiceRequest`, which has the same field 1).
#[derive(Clone, PartialEq, prost::Message)]
struct TracesData {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

fn traces_data(service: &str, traces: &[([u8; 16], u64)]) -> Vec<u8> {
    let mut resource_spans = Vec::new();
    for (i, (id, n)) in traces.iter().enumerate() {
        let spans = spans_now(*id, *n, 1 + (i as u64) * 100, vec![]);
        resource_spans.extend(request(service, spans).resource_spans);
    }
    TracesData { resource_spans }.encode_to_vec()
}

async fn span_count(query: &str, id: &[u8; 16]) -> usize {
    let (code, body) = get_json(&format!("{query}/api/traces/{}", hex::encode(id))).await;
    if code != 200 {
        return 0;
    }
    body["data"][0]["spans"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collector_topic_is_consumed_and_a_bad_message_dead_lettered() {
    let brokers = kafka::brokers();
    let collector_topic = format!("otlp_spans-{}", unique("collector"));
    // The collector fleet's topic exists before strand is pointed at it.
    let cfg = kafka::config("collector");
    strand::kafka::admin::ensure_topic(&cfg, &collector_topic, PARTITIONS)
        .await
        .unwrap();
    let (k, _own_topic) = kafka::toml_section(
        &brokers,
        "collector",
        &format!("extra_topics = [{{ topic = \"{collector_topic}\", encoding = \"otlp_proto\" }}]"),
    );
    let dir = tempfile::tempdir().unwrap();
    let writer = Strand::start_target(&dir.path().join("w"), "writer", "", &k);

    let producer = kafka::producer(&brokers);
    let (a, b, c) = (trace_id(91, 1), trace_id(91, 2), trace_id(91, 3));
    // A batch of two traces in one message, no key (the default exporter).
    let batch = traces_data("collected", &[(a, 3), (b, 2)]);
    kafka::send(&producer, &collector_topic, b"", &batch).await;
    // Not OTLP: dead-lettered, and must not stop what follows.
    let garbage = b"\x0a\xff\xff\xff not protobuf".to_vec();
    kafka::send(&producer, &collector_topic, b"junk", &garbage).await;
    // partition_traces_by_id: one trace per message, keyed by its id
    // (strand does not read keys).
    let one = traces_data("collected", &[(c, 4)]);
    kafka::send(&producer, &collector_topic, hex::encode(c).as_bytes(), &one).await;

    let q = writer.query.clone();
    wait::until(
        "every collector trace served whole",
        Duration::from_secs(60),
        async || {
            span_count(&q, &a).await == 3
                && span_count(&q, &b).await == 2
                && span_count(&q, &c).await == 4
        },
    )
    .await;

    let dead = kafka::read_all(&brokers, &format!("{collector_topic}-dlq"), 1, 1).await;
    let (_, key, payload, headers) = dead.first().expect("the bad message in the DLQ");
    assert_eq!(&payload[..], &garbage[..]);
    assert_eq!(key.as_deref(), Some(&b"junk"[..]));
    let header = |k: &str| headers.get(k).cloned().unwrap_or_default();
    assert_eq!(header("strand.source.topic"), collector_topic);
    assert!(
        header("strand.dlq.reason").contains("ExportTraceServiceRequest"),
        "{headers:?}"
    );

    // Counted per source topic: the five and four spans, once.
    let (_, metrics) = common::http::get_text(&format!("{}/metrics", writer.query)).await;
    let consumed = common::http::metric_in(
        &metrics,
        &format!("strand_kafka_consumed_spans_total{{topic=\"{collector_topic}\"}}"),
    );
    assert_eq!(
        consumed,
        Some(9.0),
        "spans consumed from the collector topic"
    );
}
