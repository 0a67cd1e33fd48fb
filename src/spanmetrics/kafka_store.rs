//! The writer side of Kafka mode: every writer node reads the whole
//! metrics topic (manual assignment of every partition, no consumer
//! group) and appends each message to its own store. The next offset of
//! each partition and each producer's last sequence number are stored in
//! the same fsynced block as the counts, and consumption resumes from the
//! stored offsets: a message is applied exactly once per replica, also
//! across crashes (no offset commit to lose), and a producer's resend is
//! recognised by its sequence number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::store::codec::{decode_block, Source};
use super::store::MetricsStore;
use super::{Point, SeriesKey};
use crate::actors::tree::{Root, StageHandle};
use crate::backoff::Backoff;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::kafka::{apply_user_settings, base_config, classify};
use crate::metrics::Counter;

/// Messages are applied in batches of at most this long a wait.
const BATCH_WAIT: Duration = Duration::from_millis(200);

/// Stops the consumer thread when dropped.
pub struct MetricsConsumer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for MetricsConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the `span_metrics_consumer` stage (group `kafka`).
pub async fn start(
    cfg: &Config,
    store: Arc<MetricsStore>,
    root: Option<&actix::Addr<Root>>,
) -> Result<MetricsConsumer> {
    crate::kafka::admin::ensure_topic(&cfg.kafka, &cfg.span_metrics.kafka_topic, 1).await?;
    let stage = StageHandle::new(root, "kafka", "span_metrics_consumer");
    stage.register(None);
    let stop = Arc::new(AtomicBool::new(false));
    let (cfg, flag) = (cfg.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("metrics-consume".into())
        .spawn(move || run(&cfg, &store, &stage, &flag))
        .map_err(|e| Error::Internal(format!("spawning the metrics consumer: {e}")))?;
    Ok(MetricsConsumer {
        stop,
        thread: Some(thread),
    })
}

/// Consumes until stopped; a failure rebuilds the consumer after a backoff
/// (resuming from the stored offsets, so nothing is applied twice).
fn run(cfg: &Config, store: &MetricsStore, stage: &StageHandle, stop: &AtomicBool) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    while !stop.load(Ordering::SeqCst) {
        match consume(cfg, store, stop) {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("span-metrics consumer: {e}; restarting");
                stage.failed(&e);
                let until = Instant::now() + backoff.next_delay();
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                stage.up();
            }
        }
    }
}

fn consume(cfg: &Config, store: &MetricsStore, stop: &AtomicBool) -> Result<()> {
    let topic = &cfg.span_metrics.kafka_topic;
    let mut c = base_config(&cfg.kafka);
    // No group membership: offsets live in the store, never committed.
    c.set(
        "group.id",
        format!("strand-span-metrics-{}", rand::random::<u32>()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("enable.partition.eof", "false");
    apply_user_settings(&mut c, &cfg.kafka);
    let consumer: BaseConsumer = c.create().map_err(|e| classify(&e))?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| classify(&e))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(Error::Unavailable(format!(
            "kafka: topic {topic} has no partitions yet"
        )));
    }
    let stored: HashMap<u32, u64> = store.offsets().into_iter().collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let at = match stored.get(&(*p as u32)) {
            Some(&o) => Offset::Offset(o as i64),
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(topic, *p, at)
            .map_err(|e| classify(&e))?;
    }
    consumer.assign(&tpl).map_err(|e| classify(&e))?;
    tracing::info!(topic, ?partitions, "consuming span metrics");
    let bad = Counter::new(
        "strand_span_metrics_bad_messages_total",
        "span-metrics Kafka messages that did not decode (skipped)",
        &[],
    );
    let mut batch = Batch::default();
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => {
                batch.apply(store)?;
                return Err(classify(&e));
            }
            Some(Ok(m)) => {
                let (part, next) = (m.partition() as u32, m.offset() as u64 + 1);
                match m.payload().map(decode_block) {
                    Some(Ok(b)) => batch.add(store, part, next, b.records, &b.source),
                    _ => {
                        bad.inc();
                        batch.add(store, part, next, Vec::new(), &Source::default());
                    }
                }
            }
        }
        if batch.due() {
            batch.apply(store)?;
        }
    }
    batch.apply(store)
}

/// Messages polled but not yet stored.
#[derive(Default)]
struct Batch {
    since: Option<Instant>,
    records: Vec<(SeriesKey, Point)>,
    producers: HashMap<u64, u64>,
    offsets: HashMap<u32, u64>,
}

impl Batch {
    fn add(
        &mut self,
        store: &MetricsStore,
        part: u32,
        next: u64,
        records: Vec<(SeriesKey, Point)>,
        src: &Source,
    ) {
        self.since.get_or_insert_with(Instant::now);
        self.offsets.insert(part, next);
        // Skip what this replica already has (a producer's resend).
        for &(id, seq) in &src.producers {
            let seen = self
                .producers
                .get(&id)
                .copied()
                .or_else(|| store.producer_seq(id));
            if seen.is_some_and(|s| s >= seq) {
                return;
            }
            self.producers.insert(id, seq);
        }
        self.records.extend(records);
    }

    fn due(&self) -> bool {
        self.since.is_some_and(|t| t.elapsed() >= BATCH_WAIT)
    }

    fn apply(&mut self, store: &MetricsStore) -> Result<()> {
        if self.since.is_none() {
            return Ok(());
        }
        let src = Source {
            producers: self.producers.iter().map(|(a, b)| (*a, *b)).collect(),
            offsets: self.offsets.iter().map(|(a, b)| (*a, *b)).collect(),
            gens: Vec::new(),
        };
        store.append(std::mem::take(&mut self.records), &src)?;
        *self = Batch::default();
        Ok(())
    }
}
