//! Kafka mode against a real Apache Kafka broker on 127.0.0.1:9092, started
//! by `scripts/kafka.sh start`. Every test uses its own topic and group.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use strand::actors::kafka_consumer::{start_kafka_consumers, KafkaConsumerHandle};
use strand::config::KafkaConfig;
use strand::error::{Error, Result};
use strand::kafka::producer::KafkaSink;
use strand::kafka::{codec, dlq_topic, DLQ_REASON_HEADER};
use strand::model::{AttrValue, KeyValue, Resource, Span, SpanId, TraceId};
use strand::store::SpanWriter;

const BROKER: &str = "127.0.0.1:9092";
const PARTITIONS: i32 = 4;

fn require_broker() {
    let addr: SocketAddr = BROKER.parse().unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        panic!("no Kafka broker on {BROKER}: start one with `scripts/kafka.sh start`");
    }
}

fn config(name: &str) -> KafkaConfig {
    require_broker();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let unique = format!("{name}-{}-{nanos}", std::process::id());
    KafkaConfig {
        enabled: true,
        brokers: BROKER.into(),
        topic: format!("strand-test-{unique}"),
        group_id: format!("strand-test-group-{unique}"),
        partitions: PARTITIONS,
        batch_max_wait_ms: 50,
        batch_max_messages: 50,
        delivery_timeout_ms: 10_000,
        ..Default::default()
    }
}

/// `traces` traces of `per_trace` spans each; span ids are unique per `seed`.
fn spans(seed: u8, traces: u32, per_trace: u32) -> Vec<Span> {
    let resource = Arc::new(Resource {
        attributes: vec![KeyValue::new(
            "service.name",
            AttrValue::Str("checkout".into()),
        )],
        ..Default::default()
    });
    let mut out = Vec::new();
    for t in 0..traces {
        let mut trace = [seed; 16];
        trace[12..].copy_from_slice(&t.to_be_bytes());
        for s in 0..per_trace {
            let mut id = [0u8; 8];
            id[0] = seed;
            id[1..5].copy_from_slice(&t.to_be_bytes());
            id[5..7].copy_from_slice(&(s as u16).to_be_bytes());
            id[7] = 1;
            out.push(Span {
                trace_id: TraceId(trace),
                span_id: SpanId(id),
                name: format!("op-{s}"),
                start_ns: 1_700_000_000_000_000_000 + u64::from(s),
                end_ns: 1_700_000_000_000_100_000 + u64::from(s),
                resource: resource.clone(),
                ..Default::default()
            });
        }
    }
    out
}

/// A downstream sink that records what it was given and can be told to fail.
#[derive(Default)]
struct RecordingSink {
    spans: Mutex<Vec<Span>>,
    failing: AtomicBool,
    failures: AtomicUsize,
}

#[async_trait]
impl SpanWriter for RecordingSink {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(Error::Unavailable("sink down for the test".into()));
        }
        self.spans.lock().extend(spans);
        Ok(())
    }
}

impl RecordingSink {
    fn distinct(&self) -> HashSet<SpanId> {
        self.spans.lock().iter().map(|s| s.span_id).collect()
    }
}

fn ids(spans: &[Span]) -> HashSet<SpanId> {
    spans.iter().map(|s| s.span_id).collect()
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn raw_client(cfg: &KafkaConfig, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    c
}

/// Committed offsets of the group per partition (negative = none), and the
/// high watermarks of the topic.
async fn offsets(cfg: &KafkaConfig) -> (Vec<i64>, Vec<i64>) {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = raw_client(&cfg, &cfg.group_id).create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(&cfg.topic, p);
        }
        let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        let committed = (0..PARTITIONS)
            .map(
                |p| match committed.find_partition(&cfg.topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => -1,
                },
            )
            .collect();
        let high = (0..PARTITIONS)
            .map(|p| {
                c.fetch_watermarks(&cfg.topic, p, Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .collect();
        (committed, high)
    })
    .await
    .unwrap()
}

async fn wait_all_committed(cfg: &KafkaConfig) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (committed, high) = offsets(cfg).await;
        if committed.iter().zip(&high).all(|(c, h)| *h == 0 || c == h) {
            return;
        }
        assert!(
            Instant::now() < end,
            "offsets never committed: committed {committed:?}, high {high:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every message of `topic` (all partitions, from the start), as
/// (partition, key, payload, headers).
type RawMessage = (i32, Option<Vec<u8>>, Vec<u8>, BTreeMap<String, String>);
async fn read_all(
    cfg: &KafkaConfig,
    topic: &str,
    partitions: i32,
    expect: usize,
) -> Vec<RawMessage> {
    let (cfg, topic) = (cfg.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = raw_client(&cfg, "strand-test-reader").create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let end = Instant::now() + Duration::from_secs(30);
        while out.len() < expect && Instant::now() < end {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    m.partition(),
                    m.key().map(<[u8]>::to_vec),
                    m.payload().unwrap_or_default().to_vec(),
                    headers,
                ));
            }
        }
        out
    })
    .await
    .unwrap()
}

async fn stop(h: KafkaConsumerHandle) {
    assert!(h.shutdown().await, "consumer did not stop in time");
}

#[actix_rt::test]
async fn spans_flow_producer_to_consumer_grouped_by_trace() {
    let cfg = config("flow");
    let sink = KafkaSink::connect(&cfg)
        .await
        .expect("connect to the broker");
    let sent = spans(1, 30, 5);
    for chunk in sent.chunks(40) {
        sink.write(chunk.to_vec()).await.expect("produce");
    }
    let store = Arc::new(RecordingSink::default());
    let consumer = start_kafka_consumers(&cfg, store.clone()).unwrap();
    let want = ids(&sent);
    wait_for("every span downstream", Duration::from_secs(60), || {
        store.distinct() == want
    })
    .await;
    wait_all_committed(&cfg).await;
    // Lag is published every 2 s from the committed offsets; the group
    // state comes from librdkafka's statistics (every 5 s).
    let t = &cfg.topic;
    for line in [
        format!("strand_kafka_consumer_lag{{topic=\"{t}\",partition=\"0\"}} 0"),
        format!("strand_kafka_consumer_in_group{{topic=\"{t}\"}} 1"),
    ] {
        wait_for(
            &format!("`{line}` at /metrics"),
            Duration::from_secs(30),
            || strand::metrics::render().contains(&line),
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
    let raw = read_all(&cfg, &cfg.topic, PARTITIONS, 30).await;
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
    let cfg = config("poison");
    let _ = KafkaSink::connect(&cfg).await.expect("create topics");
    let raw: FutureProducer = raw_client(&cfg, "unused").create().unwrap();
    let garbage = b"\x0a\xff\xff\xff not protobuf".to_vec();
    raw.send(
        FutureRecord::to(&cfg.topic)
            .partition(0)
            .key("bad")
            .payload(&garbage),
        Duration::from_secs(10),
    )
    .await
    .expect("produce garbage");
    let good = spans(2, 1, 3);
    let value = codec::encode(&good);
    raw.send(
        FutureRecord::to(&cfg.topic)
            .partition(0)
            .key(&good[0].trace_id.0[..])
            .payload(&value),
        Duration::from_secs(10),
    )
    .await
    .expect("produce good message");

    let store = Arc::new(RecordingSink::default());
    let consumer = start_kafka_consumers(&cfg, store.clone()).unwrap();
    wait_for(
        "the good spans after the poison message",
        Duration::from_secs(60),
        || store.distinct() == ids(&good),
    )
    .await;
    wait_all_committed(&cfg).await;
    let (committed, _) = offsets(&cfg).await;
    assert_eq!(committed[0], 2, "both messages of partition 0 committed");

    let dead = read_all(&cfg, &dlq_topic(&cfg.topic), 1, 1).await;
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

/// Refuses for good (non-retryable) any write holding a span of `refused`.
#[derive(Default)]
struct RefusingSink {
    inner: RecordingSink,
    refused: Mutex<HashSet<SpanId>>,
}

#[async_trait]
impl SpanWriter for RefusingSink {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        let refuse = {
            let refused = self.refused.lock();
            spans.iter().any(|s| refused.contains(&s.span_id))
        };
        if refuse {
            return Err(Error::TooLarge("over the test sink's budget".into()));
        }
        self.inner.write(spans).await
    }
}

#[actix_rt::test]
async fn a_message_the_sink_refuses_for_good_is_dead_lettered_and_the_rest_written() {
    let cfg = config("refused");
    let _ = KafkaSink::connect(&cfg).await.expect("create topics");
    let raw: FutureProducer = raw_client(&cfg, "unused").create().unwrap();
    let (before, bad, after) = (spans(5, 1, 2), spans(6, 1, 2), spans(7, 1, 2));
    for batch in [&before, &bad, &after] {
        raw.send(
            FutureRecord::to(&cfg.topic)
                .partition(0)
                .key(&batch[0].trace_id.0[..])
                .payload(&codec::encode(batch)),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }
    let store = Arc::new(RefusingSink::default());
    *store.refused.lock() = ids(&bad);
    // One consumer batch holds all three, so the refusal hits the batch
    // first and the loop must split it.
    let consumer = start_kafka_consumers(&cfg, store.clone()).unwrap();
    let want: HashSet<SpanId> = ids(&before).union(&ids(&after)).copied().collect();
    wait_for(
        "the spans on both sides of the refused message",
        Duration::from_secs(60),
        || store.inner.distinct() == want,
    )
    .await;
    wait_all_committed(&cfg).await;
    let (committed, _) = offsets(&cfg).await;
    assert_eq!(
        committed[0], 3,
        "all three messages of partition 0 committed"
    );

    let dead = read_all(&cfg, &dlq_topic(&cfg.topic), 1, 1).await;
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
async fn restarted_consumer_resumes_from_committed_offsets() {
    let cfg = config("restart");
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let first = spans(3, 20, 3);
    sink.write(first.clone()).await.unwrap();
    let store1 = Arc::new(RecordingSink::default());
    let c1 = start_kafka_consumers(&cfg, store1.clone()).unwrap();
    wait_for("first batch downstream", Duration::from_secs(60), || {
        store1.distinct() == ids(&first)
    })
    .await;
    wait_all_committed(&cfg).await;
    stop(c1).await;

    let second = spans(4, 20, 3);
    sink.write(second.clone()).await.unwrap();
    let store2 = Arc::new(RecordingSink::default());
    let c2 = start_kafka_consumers(&cfg, store2.clone()).unwrap();
    wait_for("second batch downstream", Duration::from_secs(60), || {
        ids(&second).is_subset(&store2.distinct())
    })
    .await;
    // Everything of the first batch was committed, so none of it comes back.
    assert!(
        store2.distinct().is_disjoint(&ids(&first)),
        "committed spans were redelivered"
    );
    stop(c2).await;
}

#[actix_rt::test]
async fn two_consumers_in_one_group_split_the_partitions() {
    let cfg = config("split");
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let (a, b) = (
        Arc::new(RecordingSink::default()),
        Arc::new(RecordingSink::default()),
    );
    let ca = start_kafka_consumers(&cfg, a.clone()).unwrap();
    let cb = start_kafka_consumers(&cfg, b.clone()).unwrap();
    wait_for(
        "both consumers to own partitions",
        Duration::from_secs(60),
        || {
            let (pa, pb) = (ca.assigned_partitions(), cb.assigned_partitions());
            !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == PARTITIONS as usize
        },
    )
    .await;
    let (pa, pb) = (ca.assigned_partitions(), cb.assigned_partitions());
    assert!(
        pa.iter().all(|p| !pb.contains(p)),
        "overlapping assignment {pa:?} {pb:?}"
    );

    let sent = spans(5, 60, 2);
    sink.write(sent.clone()).await.unwrap();
    let want = ids(&sent);
    wait_for(
        "every span in one of the two consumers",
        Duration::from_secs(60),
        || {
            a.distinct()
                .union(&b.distinct())
                .copied()
                .collect::<HashSet<_>>()
                == want
        },
    )
    .await;
    assert!(
        !a.distinct().is_empty() && !b.distinct().is_empty(),
        "one consumer did all the work"
    );
    stop(ca).await;
    stop(cb).await;
}

#[actix_rt::test]
async fn failing_sink_holds_commits_until_it_recovers() {
    let cfg = config("failing");
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let sent = spans(6, 10, 4);
    sink.write(sent.clone()).await.unwrap();
    let store = Arc::new(RecordingSink::default());
    store.failing.store(true, Ordering::SeqCst);
    let consumer = start_kafka_consumers(&cfg, store.clone()).unwrap();
    wait_for("a few failed writes", Duration::from_secs(60), || {
        store.failures.load(Ordering::SeqCst) >= 3
    })
    .await;
    let (committed, high) = offsets(&cfg).await;
    assert!(high.iter().sum::<i64>() > 0);
    assert!(
        committed.iter().all(|c| *c < 0),
        "offsets committed while the sink was failing: {committed:?}"
    );

    store.failing.store(false, Ordering::SeqCst);
    wait_for("every span after recovery", Duration::from_secs(60), || {
        store.distinct() == ids(&sent)
    })
    .await;
    wait_all_committed(&cfg).await;
    stop(consumer).await;
}

#[actix_rt::test]
async fn producer_without_a_broker_fails_retryably() {
    require_broker(); // the suite needs it, even though this test does not
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

#[actix_rt::test]
async fn consumer_without_a_broker_is_restarted_with_backoff_and_stops_promptly() {
    require_broker();
    let cfg = KafkaConfig {
        enabled: true,
        brokers: "127.0.0.1:1".into(),
        topic: "strand-test-nobroker-consumer".into(),
        delivery_timeout_ms: 1_000,
        ..Default::default()
    };
    let stats = strand::metrics::ActorStats::get("kafka_consumer");
    let before = stats.restarts.load(Ordering::SeqCst);
    let consumer = start_kafka_consumers(&cfg, Arc::new(RecordingSink::default())).unwrap();
    wait_for("two restarts", Duration::from_secs(30), || {
        stats.restarts.load(Ordering::SeqCst) >= before + 2
    })
    .await;
    assert!(!stats.last_error.lock().is_empty());
    let started = Instant::now();
    stop(consumer).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn rebalances_while_consuming_lose_nothing() {
    let mut cfg = config("rebalance");
    cfg.batch_max_messages = 5;
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let (a, b) = (
        Arc::new(RecordingSink::default()),
        Arc::new(RecordingSink::default()),
    );
    let ca = start_kafka_consumers(&cfg, a.clone()).unwrap();
    let mut cb = None;
    let mut sent = Vec::new();
    for round in 0..10u8 {
        let batch = spans(100 + round, 10, 3);
        sink.write(batch.clone()).await.unwrap();
        sent.extend(batch);
        if round == 3 {
            // A second member joins: partitions move while A is mid-stream.
            cb = Some(start_kafka_consumers(&cfg, b.clone()).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for("B to own partitions", Duration::from_secs(60), || {
        cb.as_ref()
            .is_some_and(|c| !c.assigned_partitions().is_empty())
    })
    .await;
    // A leaves: B takes over everything A had not committed.
    stop(ca).await;
    let more = spans(200, 10, 3);
    sink.write(more.clone()).await.unwrap();
    sent.extend(more);
    let want = ids(&sent);
    wait_for("every span in A or B", Duration::from_secs(90), || {
        want.is_subset(&a.distinct().union(&b.distinct()).copied().collect())
    })
    .await;
    wait_all_committed(&cfg).await;
    stop(cb.unwrap()).await;
}

/// Panics on its first write, then records like `RecordingSink`.
#[derive(Default)]
struct PanicOnceSink {
    panicked: AtomicBool,
    inner: RecordingSink,
}

#[async_trait]
impl SpanWriter for PanicOnceSink {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("sink bug (expected by the test)");
        }
        self.inner.write(spans).await
    }
}

#[actix_rt::test]
async fn consumer_is_restarted_after_a_panicking_sink_and_loses_nothing() {
    let cfg = config("panic");
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let sent = spans(8, 10, 2);
    sink.write(sent.clone()).await.unwrap();
    let stats = strand::metrics::ActorStats::get("kafka_consumer");
    let before = stats.restarts.load(Ordering::SeqCst);
    let store = Arc::new(PanicOnceSink::default());
    let consumer = start_kafka_consumers(&cfg, store.clone()).unwrap();
    wait_for(
        "every span after the restart",
        Duration::from_secs(60),
        || store.inner.distinct() == ids(&sent),
    )
    .await;
    assert!(store.panicked.load(Ordering::SeqCst));
    assert!(
        stats.restarts.load(Ordering::SeqCst) > before,
        "no restart recorded"
    );
    wait_all_committed(&cfg).await;
    stop(consumer).await;
}

/// A consumer stuck outside its group is rebuilt by the stall watchdog and
/// consumes everything once the group settles. The stuck group is real: a
/// member that took the partitions and then stopped polling keeps the next
/// rebalance waiting (up to its own `max.poll.interval.ms`).
#[actix_rt::test]
async fn consumer_stuck_outside_its_group_is_rebuilt_and_loses_nothing() {
    let cfg = KafkaConfig {
        stall_timeout_ms: 8_000,
        ..config("stall")
    };
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let sent = spans(10, 10, 2);
    sink.write(sent.clone()).await.unwrap();

    let mut c = raw_client(&cfg, &cfg.group_id);
    c.set("max.poll.interval.ms", "300000")
        .set("session.timeout.ms", "30000");
    let blocker: BaseConsumer = c.create().unwrap();
    blocker.subscribe(&[cfg.topic.as_str()]).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while blocker.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < end, "the blocking member never joined");
        blocker.poll(Duration::from_millis(100));
    }

    let store = Arc::new(RecordingSink::default());
    let consumer = start_kafka_consumers(&cfg, store.clone()).unwrap();
    wait_for(
        "a rebuild of the stuck consumer",
        Duration::from_secs(60),
        || consumer.restarts() >= 1,
    )
    .await;
    assert!(
        store.spans.lock().is_empty(),
        "consumed while the group could not settle"
    );
    // Closing the blocker leaves the group; the rebalance completes.
    tokio::task::spawn_blocking(move || drop(blocker))
        .await
        .unwrap();
    wait_for(
        "every span once the group settled",
        Duration::from_secs(90),
        || store.distinct() == ids(&sent),
    )
    .await;
    stop(consumer).await;
}
