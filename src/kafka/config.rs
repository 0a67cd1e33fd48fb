//! The `[kafka]` config section (read by `crate::config`, strict like
//! every section: unknown keys are errors).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Off by default: the embedded mode needs no broker.
    pub enabled: bool,
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Span topic (created if missing); dead letters go to `<topic>-dlq`.
    pub topic: String,
    /// Partitions of the topic when strand creates it.
    pub partitions: i32,
    /// Consumer group of the writer nodes.
    pub group_id: String,
    /// Producer compression: zstd, lz4, snappy, gzip or none.
    pub compression: String,
    /// Bytes produced but not yet acknowledged by the broker.
    pub max_inflight_bytes: usize,
    /// Retention of the span topic when strand creates it: long enough to
    /// ride out a writer outage, short enough to bound broker disk.
    pub retention_hours: u64,
    /// Largest message produced; a trace larger than this is split into
    /// several messages (same key, so same partition).
    pub max_message_bytes: usize,
    /// How long the producer tries to deliver a message before the write
    /// fails as Unavailable (librdkafka message.timeout.ms).
    pub delivery_timeout_ms: u64,
    /// Consumer: messages decoded into one sink write (one offset commit).
    pub batch_max_messages: usize,
    /// Consumer: longest wait to fill a batch before writing what it has.
    pub batch_max_wait_ms: u64,
    /// Consumer: rebuilt when it makes no progress for this long (no
    /// offset commit confirmed, out of its group, or unread messages not
    /// fetched).
    pub stall_timeout_ms: u64,
    /// Passed to librdkafka unchanged (security.protocol, sasl.*, ssl.*).
    pub client: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            enabled: false,
            brokers: "127.0.0.1:9092".into(),
            topic: "strand-spans".into(),
            partitions: 12,
            group_id: "strand-writers".into(),
            compression: "zstd".into(),
            max_inflight_bytes: 128 << 20,
            retention_hours: 24,
            max_message_bytes: 4 << 20,
            delivery_timeout_ms: 30_000,
            batch_max_messages: 1_000,
            batch_max_wait_ms: 200,
            stall_timeout_ms: 90_000,
            client: Default::default(),
        }
    }
}
