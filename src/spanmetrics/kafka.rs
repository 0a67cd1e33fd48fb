//! Kafka mode (docs/METRICS.md): ingest nodes publish their flushed counts
//! to `span_metrics.kafka_topic` (one partition, keyed by producer), each
//! message one block of the store's format whose source names the
//! producer (random per process) and its sequence number. Every writer
//! node stores the whole topic ([`super::kafka_store`]), so a query node
//! reads any one complete replica instead of adding partial ones.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::flusher::DeltaSink;
use super::store::codec::{encode_block, Source};
use super::{Point, SeriesKey};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::kafka::{apply_user_settings, base_config, classify};
use crate::metrics::Counter;

/// Series-windows per message: well under the default message limit.
const RECORDS_PER_MESSAGE: usize = 4000;
/// Messages kept for retry while the broker is away.
const MAX_QUEUED: usize = 10_000;

/// Numbered messages waiting for the broker's acknowledgement.
type Queue = VecDeque<(u64, Vec<u8>)>;

pub struct MetricsPublisher {
    producer: FutureProducer,
    topic: String,
    id: u64,
    timeout: Duration,
    /// Encoded, numbered, not yet acknowledged: resent as they are (same
    /// sequence numbers), so a writer can drop the copies it has.
    queue: Mutex<(u64, Queue)>,
    dropped: Counter,
}

impl MetricsPublisher {
    pub async fn connect(cfg: &Config) -> Result<std::sync::Arc<MetricsPublisher>> {
        let k = &cfg.kafka;
        crate::kafka::admin::ensure_topic(k, &cfg.span_metrics.kafka_topic, 1).await?;
        let mut c = base_config(k);
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", k.delivery_timeout_ms.to_string())
            .set("linger.ms", "5");
        apply_user_settings(&mut c, k);
        let producer: FutureProducer = c.create().map_err(|e| classify(&e))?;
        // Zero is never an id: a block without a producer has none.
        let id = rand::random::<u64>().max(1);
        tracing::info!(producer = id, topic = %cfg.span_metrics.kafka_topic, "publishing span metrics");
        Ok(std::sync::Arc::new(MetricsPublisher {
            producer,
            topic: cfg.span_metrics.kafka_topic.clone(),
            id,
            timeout: Duration::from_millis(k.delivery_timeout_ms.max(1000)),
            queue: Mutex::new((0, VecDeque::new())),
            dropped: Counter::new(
                "strand_span_metrics_dropped_points_total",
                "span-metric points dropped because their sink stayed down too long",
                &[],
            ),
        }))
    }

    /// Sends the queue in order; stops at the first failure.
    fn send_queued(&self, q: &mut Queue) -> Result<()> {
        let key = self.id.to_be_bytes();
        while let Some((_, payload)) = q.front() {
            let record = FutureRecord::to(&self.topic).key(&key[..]).payload(payload);
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| classify(&e))?;
            // Delivered by librdkafka's own thread: no runtime needed here.
            match futures::executor::block_on(delivery) {
                Ok(Ok(_)) => {
                    q.pop_front();
                }
                Ok(Err((e, _))) => return Err(classify(&e)),
                Err(_) => return Err(Error::Unavailable("kafka producer shut down".into())),
            }
        }
        Ok(())
    }

    pub fn flush(&self) {
        let _ = self.producer.flush(Timeout::After(self.timeout));
    }
}

impl DeltaSink for MetricsPublisher {
    fn write(&self, deltas: &[(SeriesKey, Point)]) -> Result<()> {
        let mut guard = self.queue.lock();
        let (seq, q) = &mut *guard;
        for chunk in deltas.chunks(RECORDS_PER_MESSAGE) {
            *seq += 1;
            let src = Source {
                producers: vec![(self.id, *seq)],
                ..Source::default()
            };
            q.push_back((*seq, encode_block(&src, chunk)));
        }
        while q.len() > MAX_QUEUED {
            if let Some((_, m)) = q.pop_front() {
                // Roughly: a message's points are not counted exactly here.
                self.dropped.add((m.len() / 64).max(1) as u64);
            }
        }
        self.send_queued(q)
    }

    fn retries_itself(&self) -> bool {
        true
    }
}
