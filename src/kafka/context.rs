//! The consumer's librdkafka context: counts rebalances (so the consumer
//! loop notices that its positions were reset), records the partitions it
//! owns, and publishes per-partition lag from librdkafka's statistics.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;

use crate::metrics::{ActorStats, Gauge};

/// State shared between the context (called inside `poll`) and the
/// consumer's owner.
#[derive(Default)]
pub struct GroupState {
    /// Bumped on every revoke and assign.
    pub generation: AtomicU64,
    /// Partitions of the span topic this consumer owns now.
    pub assigned: Mutex<BTreeSet<i32>>,
}

pub struct SpanConsumerContext {
    pub topic: String,
    pub state: Arc<GroupState>,
    pub stats: Arc<ActorStats>,
}

impl ClientContext for SpanConsumerContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (partition, p) in &topic.partitions {
            // librdkafka reports the internal partition -1 and -1 for
            // "unknown" lag; neither is a real value.
            if *partition < 0 || p.consumer_lag < 0 {
                continue;
            }
            let part = partition.to_string();
            Gauge::new(
                "strand_kafka_consumer_lag",
                "messages behind the partition's high watermark",
                &[("topic", &self.topic), ("partition", &part)],
            )
            .set(p.consumer_lag as u64);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka consumer");
        self.stats.record_error(&format!("{error}: {reason}"));
    }
}

impl ConsumerContext for SpanConsumerContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.state.generation.fetch_add(1, Ordering::AcqRel);
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut assigned = self.state.assigned.lock();
            for e in tpl.elements_for_topic(&self.topic) {
                assigned.remove(&e.partition());
            }
            tracing::info!(topic = %self.topic, revoked = tpl.count(), "kafka partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.state.generation.fetch_add(1, Ordering::AcqRel);
        if let Rebalance::Assign(tpl) = rebalance {
            let mut assigned = self.state.assigned.lock();
            assigned.extend(
                tpl.elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition()),
            );
            tracing::info!(topic = %self.topic, partitions = ?*assigned, "kafka partitions assigned");
        }
    }
}
