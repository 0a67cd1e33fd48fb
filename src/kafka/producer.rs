//! The Kafka producer sink: what the receivers write to in Kafka mode.
//! `write` returns only when the broker has acknowledged (acks=all) every
//! message of the call, so the OTLP reply means "durable in Kafka".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::{apply_user_settings, base_config, classify, codec};
use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::metrics::{Counter, Gauge};
use crate::model::Span;
use crate::model::SpanWriter;

struct Metrics {
    messages: Counter,
    bytes: Counter,
    spans: Counter,
    errors_unavailable: Counter,
    errors_overloaded: Counter,
    errors_other: Counter,
    delivery_ms_sum: Counter,
    delivery_count: Counter,
    delivery_ms_max: Gauge,
    inflight: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let err = |reason| {
            Counter::new(
                "strand_kafka_produce_errors_total",
                "failed Kafka writes by reason",
                &[("reason", reason)],
            )
        };
        Metrics {
            messages: Counter::new(
                "strand_kafka_produced_messages_total",
                "messages acknowledged by the broker",
                &[],
            ),
            bytes: Counter::new(
                "strand_kafka_produced_bytes_total",
                "message bytes acknowledged by the broker",
                &[],
            ),
            spans: Counter::new(
                "strand_kafka_produced_spans_total",
                "spans acknowledged by the broker",
                &[],
            ),
            errors_unavailable: err("unavailable"),
            errors_overloaded: err("overloaded"),
            errors_other: err("other"),
            delivery_ms_sum: Counter::new(
                "strand_kafka_delivery_latency_ms_sum",
                "sum of write-to-ack latencies of Kafka writes",
                &[],
            ),
            delivery_count: Counter::new(
                "strand_kafka_delivery_latency_ms_count",
                "Kafka writes acknowledged",
                &[],
            ),
            delivery_ms_max: Gauge::new(
                "strand_kafka_delivery_latency_ms_last",
                "write-to-ack latency of the last Kafka write",
                &[],
            ),
            inflight: Gauge::new(
                "strand_kafka_producer_inflight_bytes",
                "bytes produced and not yet acknowledged",
                &[],
            ),
        }
    }

    fn error(&self, e: &Error) {
        match e {
            Error::Unavailable(_) => self.errors_unavailable.inc(),
            Error::Overloaded(_) => self.errors_overloaded.inc(),
            _ => self.errors_other.inc(),
        }
    }
}

/// Produces spans to `kafka.topic`, one message per trace (see
/// [`codec`]). Cheap to share: clone the `Arc` it is usually held in.
pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
    max_message_bytes: usize,
    max_inflight_bytes: usize,
    inflight: Arc<AtomicUsize>,
    metrics: Metrics,
}

/// Releases admitted bytes when a write ends, however it ends (including
/// when the caller's future is dropped).
struct Admission {
    inflight: Arc<AtomicUsize>,
    bytes: usize,
    gauge: Gauge,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.inflight.fetch_sub(self.bytes, Ordering::AcqRel);
        self.gauge.sub(self.bytes as u64);
    }
}

impl KafkaSink {
    /// Creates the producer without touching the network (librdkafka
    /// connects lazily). Use [`KafkaSink::connect`] to also create the topic.
    pub fn new(cfg: &KafkaConfig) -> Result<KafkaSink> {
        let mut c = base_config(cfg);
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &cfg.compression)
            .set("message.timeout.ms", cfg.delivery_timeout_ms.to_string())
            .set("linger.ms", "5")
            // librdkafka's own queue gets the same byte bound as strand's
            // admission control (plus a margin), so memory stays bounded
            // even when a caller gives up on a write and retries.
            .set(
                "queue.buffering.max.kbytes",
                ((cfg.max_inflight_bytes / 1024).max(1024) * 2).to_string(),
            )
            .set("queue.buffering.max.messages", "1000000")
            .set(
                "message.max.bytes",
                (cfg.max_message_bytes + (64 << 10)).to_string(),
            );
        apply_user_settings(&mut c, cfg);
        let producer: FutureProducer = c.create().map_err(|e| classify(&e))?;
        Ok(KafkaSink {
            producer,
            topic: cfg.topic.clone(),
            max_message_bytes: cfg.max_message_bytes,
            max_inflight_bytes: cfg.max_inflight_bytes,
            inflight: Arc::new(AtomicUsize::new(0)),
            metrics: Metrics::new(),
        })
    }

    /// Creates the topic (and its dead-letter topic) if missing, then the
    /// producer. Unavailable when the broker cannot be reached.
    pub async fn connect(cfg: &KafkaConfig) -> Result<KafkaSink> {
        super::admin::ensure_topic(cfg, &cfg.topic, cfg.partitions).await?;
        super::admin::ensure_topic(cfg, &super::dlq_topic(&cfg.topic), 1).await?;
        Self::new(cfg)
    }

    /// Bytes currently produced and not yet acknowledged.
    pub fn inflight_bytes(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    fn admit(&self, bytes: usize) -> Result<Admission> {
        let admitted = self
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                // An oversized write alone is admitted, else it could never pass.
                (cur == 0 || cur + bytes <= self.max_inflight_bytes).then_some(cur + bytes)
            });
        match admitted {
            Ok(_) => {
                self.metrics.inflight.add(bytes as u64);
                Ok(Admission {
                    inflight: self.inflight.clone(),
                    bytes,
                    gauge: self.metrics.inflight.clone(),
                })
            }
            Err(cur) => Err(Error::Overloaded(format!(
                "kafka producer has {cur} bytes in flight (kafka.max_inflight_bytes = {})",
                self.max_inflight_bytes
            ))),
        }
    }

    async fn produce(&self, spans: Vec<Span>) -> Result<()> {
        let messages = codec::encode_by_trace(&spans, self.max_message_bytes);
        drop(spans);
        let bytes: usize = messages.iter().map(|m| m.value.len() + 16).sum();
        let _admission = self.admit(bytes)?;
        let started = Instant::now();
        let mut pending = Vec::with_capacity(messages.len());
        for m in &messages {
            let record = FutureRecord::to(&self.topic)
                .key(&m.key.0[..])
                .payload(&m.value);
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                // Messages already enqueued still complete in the
                // background; the caller retries the whole write, and the
                // duplicates are absorbed downstream (span identity).
                Err((e, _)) => return Err(classify(&e)),
            }
        }
        for delivery in futures::future::join_all(pending).await {
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(classify(&e)),
                Err(_canceled) => {
                    return Err(Error::Unavailable("kafka producer shut down".into()))
                }
            }
        }
        let ms = started.elapsed().as_millis() as u64;
        self.metrics.delivery_ms_sum.add(ms);
        self.metrics.delivery_count.inc();
        self.metrics.delivery_ms_max.set(ms);
        self.metrics.messages.add(messages.len() as u64);
        self.metrics
            .bytes
            .add(messages.iter().map(|m| m.value.len() as u64).sum());
        self.metrics
            .spans
            .add(messages.iter().map(|m| m.spans as u64).sum());
        Ok(())
    }

    /// Waits up to `timeout` for queued messages to be delivered (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(Timeout::After(timeout))
            .map_err(|e| classify(&e))
    }
}

#[async_trait]
impl SpanWriter for KafkaSink {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        if spans.is_empty() {
            return Ok(());
        }
        // A child of the ingest request's span, when that one is traced.
        let trace = crate::selftrace::hooks::produce_span(&self.topic, spans.len());
        let r = self.produce(spans).await;
        if let Err(e) = &r {
            self.metrics.error(e);
            if let Some(t) = &trace {
                t.set_error(e.to_string());
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_and_released() {
        let cfg = KafkaConfig {
            max_inflight_bytes: 100,
            brokers: "127.0.0.1:1".into(),
            ..Default::default()
        };
        let sink = KafkaSink::new(&cfg).unwrap();
        let a = sink.admit(80).unwrap();
        assert!(matches!(sink.admit(30), Err(Error::Overloaded(_))));
        drop(a);
        assert_eq!(sink.inflight_bytes(), 0);
        // Alone, an oversized write passes (it could never fit otherwise).
        let b = sink.admit(500).unwrap();
        assert_eq!(sink.inflight_bytes(), 500);
        drop(b);
    }
}
