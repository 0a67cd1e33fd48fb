//! Topic administration: the span topic and its dead-letter topic are
//! created on first use when missing (an operator may pre-create them with
//! their own settings; existing topics are left alone).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::{apply_user_settings, base_config, classify};
use crate::config::KafkaConfig;
use crate::error::{Error, Result};

/// Creates `topic` with `partitions` partitions and the configured
/// retention if it does not exist. Replication factor: the broker default
/// (`default.replication.factor`), so production clusters get theirs.
pub async fn ensure_topic(cfg: &KafkaConfig, topic: &str, partitions: i32) -> Result<()> {
    let mut c = base_config(cfg);
    c.set("socket.timeout.ms", "10000");
    apply_user_settings(&mut c, cfg);
    let admin: AdminClient<DefaultClientContext> = c.create().map_err(|e| classify(&e))?;
    let retention_ms = (cfg.retention_hours.saturating_mul(3_600_000)).to_string();
    // Room for the record batch framing around the largest message.
    let max_message = (cfg.max_message_bytes + (64 << 10)).to_string();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1))
        .set("retention.ms", &retention_ms)
        .set("max.message.bytes", &max_message);
    // Bounded by the delivery timeout so startup against a dead broker
    // fails (and is retried by the caller) promptly.
    let timeout = Duration::from_millis(cfg.delivery_timeout_ms.clamp(1_000, 10_000));
    let opts = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| classify(&e))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic, partitions, "created kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(Error::Unavailable(format!(
                    "kafka: creating topic {t}: {code}"
                )))
            }
        }
    }
    Ok(())
}
