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
    /// More topics the writer role consumes, written by other producers
    /// such as the OpenTelemetry Collector's Kafka exporter, e.g.
    /// `[{ topic = "otlp_spans", encoding = "otlp_proto" }]`. Each gets a
    /// consumer of its own in `group_id`; bad messages go to `<topic>-dlq`.
    pub extra_topics: Vec<ExtraTopic>,
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
            extra_topics: Vec::new(),
            client: Default::default(),
        }
    }
}

/// How the values of a topic are encoded.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TopicEncoding {
    /// OTLP protobuf `ExportTraceServiceRequest` (same bytes as
    /// `TracesData`): strand's own topic, the Collector's `otlp_proto`.
    #[default]
    OtlpProto,
    /// OTLP/JSON: the Collector's `otlp_json`.
    OtlpJson,
}

/// One more span topic to consume.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExtraTopic {
    pub topic: String,
    #[serde(default)]
    pub encoding: TopicEncoding,
}

impl KafkaConfig {
    /// Extra topics must be named, distinct, and not strand's own topics.
    pub fn validate_extra_topics(&self) -> crate::error::Result<()> {
        let mut seen = std::collections::HashSet::new();
        let own = [self.topic.clone(), super::dlq_topic(&self.topic)];
        for t in &self.extra_topics {
            let why = if t.topic.trim().is_empty() {
                Some("a topic name is empty".to_string())
            } else if own.contains(&t.topic) {
                Some(format!(
                    "{:?} is strand's own topic (kafka.topic or its DLQ)",
                    t.topic
                ))
            } else if !seen.insert(t.topic.as_str()) {
                Some(format!("{:?} is listed twice", t.topic))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(crate::error::Error::config("kafka.extra_topics", why));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::error::Error;

    fn key_of(text: &str) -> String {
        match Config::from_sources(text, &[]) {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a config error for {text}, got {other:?}"),
        }
    }

    #[test]
    fn extra_topics_are_strict() {
        let ok = Config::from_sources(
            "[kafka]\nenabled = true\nextra_topics = [{ topic = \"otlp_spans\" }, { topic = \"j\", encoding = \"otlp_json\" }]\n",
            &[],
        )
        .unwrap();
        assert_eq!(ok.kafka.extra_topics.len(), 2);
        assert_eq!(
            ok.kafka.extra_topics[0].encoding,
            super::TopicEncoding::OtlpProto
        );
        for bad in [
            "[kafka]\nenabled = true\nextra_topics = [{ topic = \"strand-spans\" }]\n",
            "[kafka]\nenabled = true\nextra_topics = [{ topic = \"a\" }, { topic = \"a\" }]\n",
            "[kafka]\nenabled = true\nextra_topics = [{ topic = \"\" }]\n",
        ] {
            assert_eq!(key_of(bad), "kafka.extra_topics");
        }
        // Unknown encodings and keys are errors too (from serde).
        assert!(Config::from_sources(
            "[kafka]\nextra_topics = [{ topic = \"a\", encoding = \"jaeger_proto\" }]\n",
            &[]
        )
        .is_err());
        assert!(Config::from_sources(
            "[kafka]\nextra_topics = [{ topic = \"a\", codec = \"x\" }]\n",
            &[]
        )
        .is_err());
    }
}
