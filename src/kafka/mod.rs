//! Kafka mode: the ingest buffer between the receivers and the writers.
//!
//! Receivers write validated spans through [`producer::KafkaSink`] (a
//! `SpanWriter` whose `write` returns once the broker has every message);
//! the [`consumer`] stage reads them back in a consumer group
//! ([`consumer_loop`], offsets committed by [`committer`] only after the
//! downstream writers made them durable, group state in [`context`],
//! undecodable or refused messages to the [`dlq`]). The message unit is
//! described in [`codec`] and docs/KAFKA.md.

pub mod admin;
pub mod codec;
pub mod committer;
pub mod config;
pub mod consumer;
pub mod consumer_loop;
pub mod context;
pub mod dlq;
pub mod producer;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaConfig;
use crate::error::Error;

/// Header carrying the reason a message was sent to the dead-letter topic.
pub const DLQ_REASON_HEADER: &str = "strand.dlq.reason";

/// The dead-letter topic of a span topic.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}-dlq")
}

/// Base librdkafka settings shared by every client: the brokers, then the
/// user's `kafka.client` settings, which win over anything strand sets
/// (they are applied again by [`apply_user_settings`] after the defaults).
pub fn base_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    // librdkafka logs through `log`; strand uses `tracing` and its own
    // error callbacks, so keep librdkafka's chatter at warnings.
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    c
}

/// Applies `kafka.client` last, so an operator can override any default.
pub fn apply_user_settings(c: &mut ClientConfig, cfg: &KafkaConfig) {
    for (k, v) in &cfg.client {
        c.set(k, v);
    }
}

/// Classifies a librdkafka error once: everything that a later retry can
/// fix is Unavailable (broker down, timeouts, leader moves); a full local
/// queue is Overloaded; a rejected size is TooLarge.
pub fn classify(e: &KafkaError) -> Error {
    let code = e.rdkafka_error_code();
    match code {
        Some(RDKafkaErrorCode::QueueFull) => {
            Error::Overloaded(format!("kafka producer queue full: {e}"))
        }
        Some(RDKafkaErrorCode::MessageSizeTooLarge)
        | Some(RDKafkaErrorCode::InvalidMessageSize) => Error::TooLarge(format!("kafka: {e}")),
        Some(RDKafkaErrorCode::InvalidConfig) | Some(RDKafkaErrorCode::UnknownProtocol) => {
            Error::config("kafka.client", e.to_string())
        }
        _ if matches!(
            e,
            KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..)
        ) =>
        {
            Error::config("kafka.client", e.to_string())
        }
        _ => Error::Unavailable(format!("kafka: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_as_retryable_or_not() {
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(matches!(classify(&timeout), Error::Unavailable(_)));
        let full = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
        assert!(matches!(classify(&full), Error::Overloaded(_)));
        let big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(!classify(&big).is_retryable());
        assert_eq!(dlq_topic("spans"), "spans-dlq");
    }

    #[test]
    fn user_settings_override_defaults() {
        let mut cfg = KafkaConfig::default();
        cfg.client
            .insert("bootstrap.servers".into(), "10.0.0.1:9092".into());
        let mut c = base_config(&cfg);
        apply_user_settings(&mut c, &cfg);
        assert_eq!(c.get("bootstrap.servers"), Some("10.0.0.1:9092"));
    }

    #[test]
    fn bad_kafka_settings_are_reported_by_key() {
        let text = "[kafka]\nenabled = true\nmax_message_bytes = 10\n";
        match crate::config::Config::from_sources(text, &[]) {
            Err(Error::Config { key, .. }) => assert_eq!(key, "kafka.max_message_bytes"),
            other => panic!("expected a config error, got {other:?}"),
        }
        let text = "[kafka]\nenabled = true\nbatch_max_messages = 0\n";
        assert!(crate::config::Config::from_sources(text, &[]).is_err());
        let text = "[kafka]\nenabled = true\nstall_timeout_ms = 10\n";
        match crate::config::Config::from_sources(text, &[]) {
            Err(Error::Config { key, .. }) => assert_eq!(key, "kafka.stall_timeout_ms"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
