//! The dead-letter producer: messages the consumer cannot decode, or that
//! the sink refuses with a non-retryable error, go to
//! `<topic>-dlq` unchanged, with the reason and their origin in headers,
//! so they can be inspected and replayed while the partition moves on.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{apply_user_settings, base_config, classify, dlq_topic, DLQ_REASON_HEADER};
use crate::config::KafkaConfig;
use crate::error::{Error, Result};

/// One consumed message with its origin; `reason` says why it is dead.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub reason: String,
}

pub struct DeadLetterProducer {
    producer: FutureProducer,
    source_topic: String,
    topic: String,
}

impl DeadLetterProducer {
    pub fn new(cfg: &KafkaConfig) -> Result<Self> {
        let mut c = base_config(cfg);
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", cfg.delivery_timeout_ms.to_string())
            .set(
                "message.max.bytes",
                (cfg.max_message_bytes + (64 << 10)).to_string(),
            );
        apply_user_settings(&mut c, cfg);
        Ok(DeadLetterProducer {
            producer: c.create().map_err(|e| classify(&e))?,
            source_topic: cfg.topic.clone(),
            topic: dlq_topic(&cfg.topic),
        })
    }

    /// Produces one dead letter and waits for the broker's acknowledgement.
    pub async fn send(&self, d: &DeadLetter) -> Result<()> {
        let partition = d.partition.to_string();
        let offset = d.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: DLQ_REASON_HEADER,
                value: Some(d.reason.as_str()),
            })
            .insert(Header {
                key: "strand.source.topic",
                value: Some(self.source_topic.as_str()),
            })
            .insert(Header {
                key: "strand.source.partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "strand.source.offset",
                value: Some(offset.as_str()),
            });
        let mut record = FutureRecord::to(&self.topic)
            .payload(&d.payload)
            .headers(headers);
        if let Some(k) = &d.key {
            record = record.key(k);
        }
        match self.producer.send(record, Duration::from_secs(5)).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(match classify(&e) {
                // A dead letter that is too large still must not stall the
                // partition forever; keep its reason and drop the payload.
                Error::TooLarge(_) => return self.send_truncated(d).await,
                other => other,
            }),
        }
    }

    async fn send_truncated(&self, d: &DeadLetter) -> Result<()> {
        let mut small = d.clone();
        small.payload = Vec::new();
        small.reason = format!(
            "{} (payload of {} bytes dropped: too large)",
            d.reason,
            d.payload.len()
        );
        Box::pin(self.send(&small)).await
    }
}
