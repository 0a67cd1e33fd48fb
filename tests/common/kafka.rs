//! A real Apache Kafka broker for the tests: `scripts/kafka.sh start`, or
//! the brokers in `STRAND_KAFKA_BROKERS`. Tests fail (never skip) without
//! one. Every test uses a topic and group of its own.

use std::collections::{BTreeMap, HashSet};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use strand::config::KafkaConfig;
use strand::error::{Error, Result};
use strand::kafka::consumer::KafkaConsumerHandle;
use strand::model::SpanWriter;
use strand::model::{AttrValue, KeyValue, Resource, Span, SpanId, TraceId};

use super::wait;

/// Partitions of every test topic.
pub const PARTITIONS: i32 = 4;

pub fn brokers() -> String {
    std::env::var("STRAND_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Fails the test unless one of `brokers` (comma-separated) accepts a
/// connection.
pub fn require_broker(brokers: &str) {
    let up = brokers
        .split(',')
        .filter_map(|b| b.trim().to_socket_addrs().ok())
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    assert!(
        up,
        "no Kafka broker on {brokers}: start one with `scripts/kafka.sh start` \
         (or set STRAND_KAFKA_BROKERS)"
    );
}

/// `name` made unique to this run, for topics, groups and services.
pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Kafka mode on a fresh topic and group, with small, quick batches.
pub fn config(name: &str) -> KafkaConfig {
    let brokers = brokers();
    require_broker(&brokers);
    let unique = unique(name);
    KafkaConfig {
        enabled: true,
        brokers,
        topic: format!("strand-test-{unique}"),
        group_id: format!("strand-test-group-{unique}"),
        partitions: PARTITIONS,
        batch_max_wait_ms: 50,
        batch_max_messages: 50,
        delivery_timeout_ms: 10_000,
        ..Default::default()
    }
}

/// A `[kafka]` section of a strand.toml for a fresh topic and group, with
/// `extra` lines; returns (toml, topic).
pub fn toml_section(brokers: &str, name: &str, extra: &str) -> (String, String) {
    require_broker(brokers);
    let u = unique(name);
    let topic = format!("e2e-{u}");
    let toml = format!(
        "\n[kafka]\nenabled = true\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\ngroup_id = \"e2e-group-{u}\"\npartitions = {PARTITIONS}\nbatch_max_wait_ms = 50\n{extra}\n"
    );
    (toml, topic)
}

/// A librdkafka client of `group` that never commits on its own.
pub fn client(brokers: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    c
}

/// A producer for raw messages, bypassing strand's own.
pub fn producer(brokers: &str) -> FutureProducer {
    client(brokers, "unused").create().expect("producer")
}

/// Produces `payload` under `key` to partition 0 of `topic`.
pub async fn send(producer: &FutureProducer, topic: &str, key: &[u8], payload: &[u8]) {
    producer
        .send(
            FutureRecord::to(topic)
                .partition(0)
                .key(key)
                .payload(payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
}

/// `traces` traces of `per_trace` spans each; span ids are unique per `seed`.
pub fn spans(seed: u8, traces: u32, per_trace: u32) -> Vec<Span> {
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

pub fn ids(spans: &[Span]) -> HashSet<SpanId> {
    spans.iter().map(|s| s.span_id).collect()
}

/// A downstream sink that records what it was given. It can be told to
/// fail retryably, to refuse for good any write holding one of `refused`,
/// or to panic on its first write.
#[derive(Default)]
pub struct RecordingSink {
    pub spans: Mutex<Vec<Span>>,
    pub failing: AtomicBool,
    pub failures: AtomicUsize,
    pub refused: Mutex<HashSet<SpanId>>,
    pub panic_once: AtomicBool,
    pub panicked: AtomicBool,
}

#[async_trait]
impl SpanWriter for RecordingSink {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        if self.panic_once.swap(false, Ordering::SeqCst) {
            self.panicked.store(true, Ordering::SeqCst);
            panic!("sink bug (expected by the test)");
        }
        if self.failing.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(Error::Unavailable("sink down for the test".into()));
        }
        let refuse = {
            let refused = self.refused.lock();
            spans.iter().any(|s| refused.contains(&s.span_id))
        };
        if refuse {
            return Err(Error::TooLarge("over the test sink's budget".into()));
        }
        self.spans.lock().extend(spans);
        Ok(())
    }
}

impl RecordingSink {
    pub fn distinct(&self) -> HashSet<SpanId> {
        self.spans.lock().iter().map(|s| s.span_id).collect()
    }
}

/// Committed offsets of the group per partition (negative = none), and the
/// high watermarks of the topic.
pub async fn offsets(cfg: &KafkaConfig) -> (Vec<i64>, Vec<i64>) {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = client(&cfg.brokers, &cfg.group_id).create().unwrap();
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

/// Waits until the group has committed every partition up to its end.
pub async fn wait_all_committed(cfg: &KafkaConfig) {
    let mut last = (Vec::new(), Vec::new());
    let done = wait::poll(
        Duration::from_secs(60),
        Duration::from_millis(200),
        async || {
            last = offsets(cfg).await;
            let (committed, high) = &last;
            committed
                .iter()
                .zip(high)
                .all(|(c, h)| *h == 0 || c == h)
                .then_some(())
        },
    )
    .await;
    let (committed, high) = last;
    assert!(
        done.is_some(),
        "offsets never committed: committed {committed:?}, high {high:?}"
    );
}

/// A message as read back: (partition, key, payload, headers).
pub type RawMessage = (i32, Option<Vec<u8>>, Vec<u8>, BTreeMap<String, String>);

/// Messages of `topic` (partitions `0..partitions`, from the start) until
/// `expect` arrived or 30 s passed.
pub async fn read_all(
    brokers: &str,
    topic: &str,
    partitions: i32,
    expect: usize,
) -> Vec<RawMessage> {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = client(&brokers, "strand-test-reader").create().unwrap();
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

pub async fn stop(h: KafkaConsumerHandle) {
    assert!(h.shutdown().await, "consumer did not stop in time");
}
