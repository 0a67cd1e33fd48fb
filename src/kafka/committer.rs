//! Offset commits, sent from a thread of their own.
//!
//! librdkafka's synchronous commit waits on the group coordinator without
//! limit, and the consumer thread it would block is the one that must serve
//! rebalances; a coordinator lost in a broker outage could stall that thread
//! for good. Asynchronous commits report only through an `offset_commit_cb`,
//! which rust-rdkafka does not install. So the consumer thread hands each
//! commit to this committer, which commits synchronously and reports back;
//! the consumer loop keeps polling and can see a commit that never returns.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use super::context::SpanConsumerContext;
use crate::error::{Error, Result};
use crate::metrics::{ActorStats, Counter};

/// Commits waiting for the committer thread. Offsets are cumulative, so a
/// commit dropped because this many wait is covered by the next one.
const QUEUE: usize = 16;

type Answer = (KafkaResult<()>, Vec<(i32, i64)>);

pub struct Committer {
    topic: String,
    tx: Option<SyncSender<TopicPartitionList>>,
    answers: Receiver<Answer>,
    state: Commits,
    m: CommitMetrics,
    stats: Arc<ActorStats>,
    /// The commit thread ended (it panicked): the consumer must be rebuilt.
    dead: bool,
}

impl Committer {
    pub fn start(
        consumer: Arc<BaseConsumer<SpanConsumerContext>>,
        topic: &str,
        stats: Arc<ActorStats>,
    ) -> Result<Committer> {
        let (tx, rx) = mpsc::sync_channel::<TopicPartitionList>(QUEUE);
        let (answer_tx, answers) = mpsc::channel();
        let t = topic.to_string();
        std::thread::Builder::new()
            .name("kafka-commit".into())
            .spawn(move || {
                // Ends when the loop drops its sender; if a commit never
                // returns, the thread (and its consumer handle) is abandoned.
                for tpl in rx {
                    let r = consumer.commit(&tpl, CommitMode::Sync);
                    if answer_tx.send((r, offsets(&tpl, &t))).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("spawning kafka commit thread: {e}")))?;
        Ok(Committer {
            topic: topic.to_string(),
            tx: Some(tx),
            answers,
            state: Commits::default(),
            m: CommitMetrics::new(topic),
            stats,
            dead: false,
        })
    }

    /// Queues a commit. One that cannot be queued is not fatal: the
    /// messages are durable, and a later commit covers them.
    pub fn send(&mut self, tpl: TopicPartitionList) {
        let Some(tx) = &self.tx else { return };
        let sent = offsets(&tpl, &self.topic);
        match tx.try_send(tpl) {
            Ok(()) => {
                self.state.sent(Instant::now());
                self.state.requested.extend(sent);
            }
            Err(TrySendError::Full(_)) => {
                tracing::debug!(topic = %self.topic, "offset commits queued up; skipping one");
            }
            Err(TrySendError::Disconnected(_)) => self.dead = true,
        }
    }

    /// Whether the commit thread is gone; the consumer that owns this
    /// committer is then rebuilt, and a new committer with it.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Whether committing `next` for `partition` would not move it forward
    /// (after a rebalance rewinds a partition, re-read messages must not
    /// move its committed offset backwards).
    pub fn covers(&self, partition: i32, next: i64) -> bool {
        self.state
            .requested
            .get(&partition)
            .is_some_and(|c| *c >= next)
    }

    /// Forgets partitions this consumer no longer owns.
    pub fn retain_owned(&mut self, owned: &BTreeSet<i32>) {
        self.state.requested.retain(|p, _| owned.contains(p));
        self.state.confirmed.retain(|p, _| owned.contains(p));
    }

    /// Takes in the answers that arrived since the last call.
    pub fn drain(&mut self) {
        while let Ok((result, offsets)) = self.answers.try_recv() {
            let ok = result.is_ok();
            let took = self.state.answered(ok, &offsets, Instant::now());
            self.m.ms_sum.add(took.as_millis() as u64);
            match result {
                Ok(()) => self.m.commits.inc(),
                Err(e) => {
                    // Not fatal: the messages are durable and are redelivered.
                    self.m.errors.inc();
                    self.stats.record_error(&e);
                    tracing::warn!(error = %e, "kafka offset commit failed");
                }
            }
        }
    }

    /// Offsets the broker confirmed, per partition.
    pub fn confirmed(&self) -> &BTreeMap<i32, i64> {
        &self.state.confirmed
    }

    pub fn stalled_for(&self) -> Option<Duration> {
        self.state.stalled_for(Instant::now())
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.tx.take(); // lets the thread finish what is queued and end
    }
}

/// The committed offsets (last offset + 1) of `topic` in `tpl`.
fn offsets(tpl: &TopicPartitionList, topic: &str) -> Vec<(i32, i64)> {
    tpl.elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Commits sent and their answers, which come back in the order sent.
#[derive(Default)]
struct Commits {
    sent: VecDeque<Instant>,
    /// Offsets queued for commit, per partition.
    requested: BTreeMap<i32, i64>,
    confirmed: BTreeMap<i32, i64>,
    /// Since when commits have been sent without any being confirmed.
    unconfirmed_since: Option<Instant>,
}

impl Commits {
    fn sent(&mut self, now: Instant) {
        self.sent.push_back(now);
        self.unconfirmed_since.get_or_insert(now);
    }

    /// Records an answer; returns how long that commit took.
    fn answered(&mut self, ok: bool, offsets: &[(i32, i64)], now: Instant) -> Duration {
        let took = self
            .sent
            .pop_front()
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if ok {
            for &(p, o) in offsets {
                let c = self.confirmed.entry(p).or_insert(o);
                *c = (*c).max(o);
            }
            self.unconfirmed_since = None;
        }
        took
    }

    /// How long commits have gone unconfirmed (unanswered or failing).
    fn stalled_for(&self, now: Instant) -> Option<Duration> {
        self.unconfirmed_since
            .map(|t| now.saturating_duration_since(t))
    }
}

struct CommitMetrics {
    commits: Counter,
    errors: Counter,
    ms_sum: Counter,
}

impl CommitMetrics {
    fn new(topic: &str) -> CommitMetrics {
        let c = |name, help| Counter::new(name, help, &[("topic", topic)]);
        CommitMetrics {
            commits: c("strand_kafka_commits_total", "confirmed offset commits"),
            errors: c(
                "strand_kafka_commit_errors_total",
                "failed offset commits (messages are redelivered)",
            ),
            ms_sum: c(
                "strand_kafka_commit_latency_ms_sum",
                "sum of offset commit latencies (queued to answered)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_stall_until_one_is_confirmed() {
        let t0 = Instant::now();
        let mut c = Commits::default();
        assert_eq!(c.stalled_for(t0), None, "nothing sent, nothing stalled");
        c.sent(t0);
        c.sent(t0 + Duration::from_secs(1));
        let later = t0 + Duration::from_secs(5);
        assert_eq!(c.stalled_for(later), Some(Duration::from_secs(5)));
        // A failed answer does not clear the stall: it is measured from the
        // first unconfirmed send.
        assert_eq!(c.answered(false, &[], later), Duration::from_secs(5));
        assert_eq!(c.stalled_for(later), Some(Duration::from_secs(5)));
        assert!(c.confirmed.is_empty());
        c.answered(true, &[(0, 10), (1, 7)], later);
        assert_eq!(c.stalled_for(later), None);
        assert_eq!(c.confirmed, BTreeMap::from([(0, 10), (1, 7)]));
    }

    #[test]
    fn confirmed_offsets_never_move_backwards() {
        let now = Instant::now();
        let mut c = Commits::default();
        c.sent(now);
        c.sent(now);
        c.answered(true, &[(0, 20)], now);
        c.answered(true, &[(0, 15)], now);
        assert_eq!(c.confirmed.get(&0), Some(&20));
        assert_eq!(c.answered(true, &[], now), Duration::ZERO);
    }
}
