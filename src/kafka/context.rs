//! The consumer's librdkafka context: counts rebalances (so the consumer
//! loop notices that its positions were reset), records the partitions it
//! owns, and follows the group join state from librdkafka's statistics (so
//! the loop notices a consumer that never rejoins). Also the per-partition
//! lag metric.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

use crate::metrics::{ActorStats, Gauge};
use rdkafka::consumer::Consumer;

/// State shared between the context (called inside `poll`) and the
/// consumer's owner.
#[derive(Default)]
pub struct GroupState {
    /// Bumped on every revoke and assign.
    pub generation: AtomicU64,
    /// Partitions of the span topic this consumer owns now.
    pub assigned: Mutex<BTreeSet<i32>>,
    pub group: Mutex<GroupHealth>,
}

/// The consumer group as librdkafka's last statistics showed it.
#[derive(Default)]
pub struct GroupHealth {
    /// When statistics last arrived (None: never, e.g. turned off).
    pub reported: Option<Instant>,
    /// When the join state was last seen "steady" (member of the group,
    /// assignment settled, possibly empty).
    pub steady: Option<Instant>,
    pub join_state: String,
}

/// The part of librdkafka's statistics JSON strand reads.
#[derive(serde::Deserialize)]
struct Stats {
    cgrp: Option<CgrpStats>,
}

#[derive(serde::Deserialize)]
struct CgrpStats {
    join_state: String,
}

pub struct SpanConsumerContext {
    pub topic: String,
    pub state: Arc<GroupState>,
    pub stats: Arc<ActorStats>,
    /// `strand_kafka_consumer_in_group{topic}`.
    pub in_group: Gauge,
}

impl SpanConsumerContext {
    pub fn new(topic: &str, state: Arc<GroupState>, stats: Arc<ActorStats>) -> Self {
        SpanConsumerContext {
            topic: topic.to_string(),
            state,
            stats,
            in_group: Gauge::new(
                "strand_kafka_consumer_in_group",
                "1 while the consumer's group membership is settled (join state steady)",
                &[("topic", topic)],
            ),
        }
    }
}

impl ClientContext for SpanConsumerContext {
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(Stats { cgrp: Some(cgrp) }) = serde_json::from_slice::<Stats>(statistics) else {
            return;
        };
        let now = Instant::now();
        let steady = cgrp.join_state == "steady";
        let mut g = self.state.group.lock();
        g.reported = Some(now);
        if steady {
            g.steady = Some(now);
        }
        g.join_state = cgrp.join_state;
        self.in_group.set(u64::from(steady));
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

/// The high watermark librdkafka last saw for a partition (from fetch
/// responses; no network round trip), if known.
pub fn cached_high_watermark(
    consumer: &BaseConsumer<SpanConsumerContext>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` is borrowed; the
    // topic is a NUL-terminated string that outlives the call; low/high are
    // valid out-pointers. librdkafka only reads its own cached state.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// Publishes `strand_kafka_consumer_lag{topic,partition}`: messages between
/// the committed offset and the high watermark.
pub fn publish_lag(topic: &str, partition: i32, lag: i64) {
    let part = partition.to_string();
    Gauge::new(
        "strand_kafka_consumer_lag",
        "messages between the committed offset and the partition's high watermark",
        &[("topic", topic), ("partition", &part)],
    )
    .set(lag.max(0) as u64);
}
