//! One consumer's read → write → commit loop, run on the thread of the
//! `KafkaConsumer` actor (`super::consumer`, which rebuilds it on failure).
//! Offsets are committed only after the batch's `write` returned Ok.
//!
//! Commits go through [`Committer`], so this thread never waits on the
//! group coordinator. The loop watches for stalls (commits unconfirmed, the
//! group never rejoined, or owned partitions with unread messages and
//! nothing fetched) and returns an error so the supervisor rebuilds the
//! consumer.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use super::committer::Committer;
use super::config::{ExtraTopic, TopicEncoding};
use super::context::{cached_high_watermark, publish_lag, GroupState, SpanConsumerContext};
use super::dlq::{DeadLetter, DeadLetterProducer};
use super::{admin, apply_user_settings, base_config, classify, codec, dlq_topic};
use crate::backoff::Backoff;
use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::metrics::{ActorStats, Counter};
use crate::model::{Span, SpanWriter};

/// The actor name under which consumer state is reported.
pub const ACTOR: &str = "kafka_consumer";
/// Longest a single `poll` blocks, so stop requests are seen promptly.
pub const POLL_SLICE: Duration = Duration::from_millis(100);
const SINK_BACKOFF_MAX: Duration = Duration::from_secs(10);
const LAG_INTERVAL: Duration = Duration::from_secs(2);
// `kafka.stall_timeout_ms` (90 s by default) bounds three kinds of
// stall: no commit confirmed (each is deferred at most the session timeout,
// then bounded by `socket.timeout.ms`, 60 s); out of the group (a rebalance
// may wait up to the rebalance timeout, the 60 s `max.poll.interval.ms`,
// for slow members); nothing fetched while an owned partition has unread
// messages.
/// How often an idle consumer asks the broker whether it is behind.
const STALL_CHECK: Duration = Duration::from_secs(20);
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages read since the last commit, with what they decoded to.
#[derive(Default)]
struct Batch {
    /// Next offset to commit per partition (last offset + 1).
    next_offsets: BTreeMap<i32, i64>,
    /// Decodable messages, kept whole so a write can be retried, or split
    /// and the offending message dead-lettered when the sink rejects it.
    good: VecDeque<DeadLetter>,
    /// Their spans, decoded once; taken by the first write attempt.
    spans: Vec<Span>,
    dead: Vec<DeadLetter>,
    /// Dead letters already acknowledged by the broker.
    dead_sent: usize,
    messages: usize,
}

/// A message's origin and payload (the reason is filled in once it is dead).
fn origin(m: &OwnedMessage, reason: String) -> DeadLetter {
    DeadLetter {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().unwrap_or_default().to_vec(),
        reason,
    }
}

/// Which topic a consumer reads and how its values are encoded (strand's
/// own topic, or an extra one such as a Collector's).
#[derive(Clone, Debug)]
pub struct Source {
    pub topic: String,
    pub encoding: TopicEncoding,
    /// Stage and `ActorStats` name.
    pub actor: String,
}

impl Source {
    /// `cfg.topic`, as strand's producer writes it.
    pub fn own(cfg: &KafkaConfig) -> Source {
        Source {
            topic: cfg.topic.clone(),
            encoding: TopicEncoding::OtlpProto,
            actor: ACTOR.to_string(),
        }
    }

    /// One of `kafka.extra_topics`.
    pub fn extra(t: &ExtraTopic) -> Source {
        Source {
            topic: t.topic.clone(),
            encoding: t.encoding,
            actor: format!("{ACTOR}:{}", t.topic),
        }
    }
}

pub struct ConsumerLoop<'a> {
    cfg: &'a KafkaConfig,
    encoding: TopicEncoding,
    sink: Arc<dyn SpanWriter>,
    stop: &'a AtomicBool,
    /// Set by a group restart: leave the loop so the consumer is rebuilt.
    rebuild: &'a AtomicBool,
    state: Arc<GroupState>,
    rt: &'a tokio::runtime::Runtime,
    consumer: Arc<BaseConsumer<SpanConsumerContext>>,
    committer: Committer,
    dlq: DeadLetterProducer,
    /// Messages polled while a write was being retried (partitions paused).
    pending: VecDeque<OwnedMessage>,
    generation: u64,
    /// When the broker last handed this consumer a message.
    last_fetch: Instant,
    created: Instant,
    last_stall_check: Instant,
    stats: Arc<ActorStats>,
    m: LoopMetrics,
}

struct LoopMetrics {
    dead_letters: Counter,
    sink_errors: Counter,
    spans: Counter,
}

impl<'a> ConsumerLoop<'a> {
    pub fn new(
        cfg: &'a KafkaConfig,
        sink: Arc<dyn SpanWriter>,
        stop: &'a AtomicBool,
        rebuild: &'a AtomicBool,
        state: Arc<GroupState>,
        rt: &'a tokio::runtime::Runtime,
        source: &Source,
    ) -> Result<Self> {
        // `cfg.topic` is the source's topic here (see `consumer::supervise`).
        debug_assert_eq!(cfg.topic, source.topic);
        rt.block_on(admin::ensure_topic(cfg, &cfg.topic, cfg.partitions))?;
        rt.block_on(admin::ensure_topic(cfg, &dlq_topic(&cfg.topic), 1))?;
        let stats = ActorStats::get(&source.actor);
        let mut c = base_config(cfg);
        c.set("group.id", &cfg.group_id)
            .set("client.id", "strand-consumer")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            // A consumer abandoned by a rebuild (see `check_stalled`) is no
            // longer polled: the group evicts it after this, not 5 minutes.
            .set("max.poll.interval.ms", "60000")
            // Statistics carry the group join state the watchdog follows.
            .set("statistics.interval.ms", "5000")
            // Bounded prefetch: at most this many KiB queued per consumer.
            .set("queued.max.messages.kbytes", "32768");
        apply_user_settings(&mut c, cfg);
        let ctx = SpanConsumerContext::new(&cfg.topic, state.clone(), stats.clone());
        let consumer: Arc<BaseConsumer<SpanConsumerContext>> =
            Arc::new(c.create_with_context(ctx).map_err(|e| classify(&e))?);
        consumer
            .subscribe(&[cfg.topic.as_str()])
            .map_err(|e| classify(&e))?;
        let c = |name, help| Counter::new(name, help, &[("topic", cfg.topic.as_str())]);
        Ok(ConsumerLoop {
            cfg,
            encoding: source.encoding,
            sink,
            stop,
            rebuild,
            generation: state.generation.load(Ordering::Acquire),
            state,
            rt,
            committer: Committer::start(consumer.clone(), &cfg.topic, stats.clone())?,
            consumer,
            dlq: DeadLetterProducer::new(cfg)?,
            pending: VecDeque::new(),
            last_fetch: Instant::now(),
            created: Instant::now(),
            last_stall_check: Instant::now(),
            stats,
            m: LoopMetrics {
                dead_letters: c(
                    "strand_kafka_dead_letters_total",
                    "messages sent to the dead-letter topic (undecodable, or refused by the sink)",
                ),
                sink_errors: c(
                    "strand_kafka_consumer_sink_errors_total",
                    "failed downstream writes (retried)",
                ),
                spans: c(
                    "strand_kafka_consumed_spans_total",
                    "spans written downstream",
                ),
            },
        })
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// After a rebalance, positions restart at the committed offsets, so
    /// messages held from before it would only be duplicates: drop them.
    fn check_rebalance(&mut self) {
        let g = self.state.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.generation = g;
            self.pending.clear();
            let owned = self.state.assigned.lock().clone();
            self.committer.retain_owned(&owned);
            // A new assignment starts fetching afresh.
            self.last_fetch = Instant::now();
        }
    }

    /// The librdkafka handle, for closing (which may block: see
    /// `super::consumer`). The committer thread holds the
    /// other reference until its queued commits are done.
    pub fn into_consumer(self) -> Arc<BaseConsumer<SpanConsumerContext>> {
        self.consumer
    }

    /// An error when this consumer has stopped making progress.
    fn check_stalled(&mut self) -> Result<()> {
        let now = Instant::now();
        let stall = Duration::from_millis(self.cfg.stall_timeout_ms);
        if self.rebuild.swap(false, Ordering::AcqRel) {
            return Err(Error::Unavailable(
                "restart requested by the kafka group".into(),
            ));
        }
        if self.committer.is_dead() {
            return Err(Error::Internal("the offset commit thread ended".into()));
        }
        self.committer.drain();
        if let Some(d) = self.committer.stalled_for() {
            if d > stall {
                return Err(Error::Unavailable(format!(
                    "no offset commit confirmed for {}s; rebuilding the consumer",
                    d.as_secs()
                )));
            }
        }
        {
            let g = self.state.group.lock();
            let out_since = g.steady.unwrap_or(self.created);
            if g.reported.is_some() && now.saturating_duration_since(out_since) > stall {
                return Err(Error::Unavailable(format!(
                    "consumer group not rejoined for {}s (join state {}); rebuilding the consumer",
                    now.saturating_duration_since(out_since).as_secs(),
                    g.join_state
                )));
            }
        }
        if self.last_fetch.elapsed() < stall || self.last_stall_check.elapsed() < STALL_CHECK {
            return Ok(());
        }
        self.last_stall_check = now;
        let Ok(positions) = self.consumer.position() else {
            return Ok(());
        };
        for e in positions.elements_for_topic(&self.cfg.topic) {
            let Offset::Offset(pos) = e.offset() else {
                continue; // nothing fetched yet: no position to compare
            };
            // A network round trip, bounded; an unreachable broker is not
            // a stall of this consumer (and one timeout is enough to wait).
            let Ok((_, high)) =
                self.consumer
                    .fetch_watermarks(&self.cfg.topic, e.partition(), WATERMARK_TIMEOUT)
            else {
                return Ok(());
            };
            if high > pos {
                return Err(Error::Unavailable(format!(
                    "partition {} has {} unread messages but nothing was fetched for {}s; rebuilding the consumer",
                    e.partition(),
                    high - pos,
                    self.last_fetch.elapsed().as_secs()
                )));
            }
        }
        Ok(())
    }

    pub fn run(&mut self) -> Result<()> {
        let mut lag_published = Instant::now();
        while !self.stopping() {
            if lag_published.elapsed() >= LAG_INTERVAL {
                self.publish_lag();
                lag_published = Instant::now();
            }
            self.check_stalled()?;
            let mut timing = crate::selftrace::Pending::begin();
            let batch = self.collect()?;
            if batch.messages > 0 {
                crate::selftrace::phase(&mut timing, "collect");
                // A batch of nothing but strand's own spans is not traced.
                let trace = timing
                    .filter(|_| !crate::selftrace::is_self_only(&batch.spans))
                    .and_then(|t| {
                        let n = batch.spans.len();
                        crate::selftrace::hooks::consume_trace(
                            t,
                            &self.cfg.topic,
                            batch.messages,
                            n,
                        )
                    });
                let _in_span = trace.as_ref().map(|t| t.context().clone().attach());
                self.flush(batch)?;
            }
        }
        self.consumer.unsubscribe();
        Ok(())
    }

    fn next_message(&mut self, timeout: Duration) -> Result<Option<OwnedMessage>> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        let polled = self.consumer.poll(timeout).map(|r| r.map(|m| m.detach()));
        self.check_rebalance();
        match polled {
            None => Ok(None),
            Some(Ok(m)) => {
                self.last_fetch = Instant::now();
                Ok(Some(m))
            }
            Some(Err(e)) => {
                if let Some((code, reason)) = self.consumer.client().fatal_error() {
                    return Err(Error::Unavailable(format!(
                        "fatal kafka consumer error {code:?}: {reason}"
                    )));
                }
                // Transient (broker restarts, leader moves): librdkafka recovers.
                tracing::debug!(error = %e, "kafka consumer poll");
                self.stats.record_error(&e);
                Ok(None)
            }
        }
    }

    /// Reads up to `batch_max_messages`, or what arrives in `batch_max_wait_ms`.
    fn collect(&mut self) -> Result<Batch> {
        let mut batch = Batch::default();
        let deadline = Instant::now() + Duration::from_millis(self.cfg.batch_max_wait_ms);
        while batch.messages < self.cfg.batch_max_messages && !self.stopping() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && batch.messages > 0 {
                break;
            }
            let Some(m) = self.next_message(if batch.messages == 0 {
                POLL_SLICE
            } else {
                left.min(POLL_SLICE)
            })?
            else {
                if left.is_zero() {
                    break; // idle: let the caller do its periodic work
                }
                continue;
            };
            self.stats.messages_in.fetch_add(1, Ordering::Relaxed);
            self.add(&mut batch, m);
        }
        self.stats.queue_depth.store(
            (batch.messages + self.pending.len()) as u64,
            Ordering::Relaxed,
        );
        Ok(batch)
    }

    fn add(&self, batch: &mut Batch, m: OwnedMessage) {
        let next = m.offset() + 1;
        let e = batch.next_offsets.entry(m.partition()).or_insert(next);
        *e = (*e).max(next);
        batch.messages += 1;
        let payload = m.payload().unwrap_or_default();
        match codec::decode_as(self.encoding, payload) {
            Ok(spans) => {
                batch.spans.extend(spans);
                batch.good.push_back(origin(&m, String::new()));
            }
            Err(reason) => {
                tracing::warn!(partition = m.partition(), offset = m.offset(), %reason, "undecodable kafka message; sending to dead-letter topic");
                batch.dead.push(origin(&m, reason));
            }
        }
    }

    /// Makes the batch durable (dead letters, then the sink write), retrying
    /// with backoff while partitions are paused, then commits its offsets.
    fn flush(&mut self, mut batch: Batch) -> Result<()> {
        let mut backoff = Backoff::new(Duration::from_millis(100), SINK_BACKOFF_MAX);
        let mut paused = false;
        loop {
            match self.try_write(&mut batch) {
                Ok(()) => break,
                Err(e) => {
                    self.m.sink_errors.inc();
                    self.stats.record_error(&e);
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "kafka consumer write failed; retrying without committing");
                    // Pausing keeps this consumer in the group (poll still
                    // serves heartbeats and rebalances) without reading on.
                    if let Ok(tpl) = self.consumer.assignment() {
                        paused |= self.consumer.pause(&tpl).is_ok();
                    }
                    let end = Instant::now() + delay;
                    while Instant::now() < end {
                        if self.stopping() {
                            return Ok(()); // uncommitted: redelivered later
                        }
                        if let Some(m) = self.next_message_while_paused()? {
                            self.pending.push_back(m);
                        }
                    }
                }
            }
        }
        if paused {
            if let Ok(tpl) = self.consumer.assignment() {
                let _ = self.consumer.resume(&tpl);
            }
        }
        self.commit(&batch);
        Ok(())
    }

    fn next_message_while_paused(&mut self) -> Result<Option<OwnedMessage>> {
        let polled = self
            .consumer
            .poll(POLL_SLICE)
            .map(|r| r.map(|m| m.detach()));
        self.check_rebalance();
        // A rebalance assigns partitions unpaused: pause them too.
        if let Ok(tpl) = self.consumer.assignment() {
            let _ = self.consumer.pause(&tpl);
        }
        Ok(polled.and_then(|r| r.ok()))
    }

    fn try_write(&self, batch: &mut Batch) -> Result<()> {
        self.send_dead_letters(batch)?;
        let mut spans = std::mem::take(&mut batch.spans);
        if spans.is_empty() {
            // A retry: the first attempt consumed the decoded spans.
            for m in &batch.good {
                // Decoded once already in `add`; cannot fail here.
                spans.extend(codec::decode_as(self.encoding, &m.payload).unwrap_or_default());
            }
        }
        if spans.is_empty() {
            return Ok(());
        }
        let n = spans.len() as u64;
        match self.rt.block_on(self.sink.write(spans)) {
            Ok(()) => {
                self.m.spans.add(n);
                batch.good.clear();
                Ok(())
            }
            Err(e) if e.is_retryable() => Err(e),
            // The sink refused the batch for good (too large for a tier's
            // budget, invalid for it): retrying would stall the partition,
            // so write message by message and dead-letter the ones refused.
            Err(e) => {
                tracing::warn!(error = %e, messages = batch.good.len(), "sink refused a batch; writing its messages one by one");
                self.write_each(batch)
            }
        }
    }

    fn send_dead_letters(&self, batch: &mut Batch) -> Result<()> {
        while let Some(d) = batch.dead.get(batch.dead_sent) {
            self.rt.block_on(self.dlq.send(d))?;
            batch.dead_sent += 1;
            self.m.dead_letters.inc();
        }
        Ok(())
    }

    /// Writes the batch's messages singly; a message the sink refuses with
    /// a non-retryable error goes to the dead-letter topic with the reason.
    /// Messages already written are dropped from the batch, so a retryable
    /// failure part-way resumes where it stopped.
    fn write_each(&self, batch: &mut Batch) -> Result<()> {
        while let Some(m) = batch.good.front() {
            let spans = codec::decode_as(self.encoding, &m.payload).unwrap_or_default();
            let n = spans.len() as u64;
            match self.rt.block_on(self.sink.write(spans)) {
                Ok(()) => self.m.spans.add(n),
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::warn!(partition = m.partition, offset = m.offset, error = %e, "sink refused a kafka message; sending to dead-letter topic");
                    let mut d = m.clone();
                    d.reason = format!("refused by the sink: {e}");
                    batch.dead.push(d);
                }
            }
            batch.good.pop_front();
            self.send_dead_letters(batch)?;
        }
        Ok(())
    }

    fn publish_lag(&self) {
        for (&p, &committed) in self.committer.confirmed() {
            if let Some(high) = cached_high_watermark(&self.consumer, &self.cfg.topic, p) {
                publish_lag(&self.cfg.topic, p, high - committed);
            }
        }
    }

    /// Commits the batch's offsets for the partitions still owned; offsets
    /// of revoked partitions are left for their new owner to re-read.
    fn commit(&mut self, batch: &Batch) {
        let owned = self.state.assigned.lock().clone();
        let mut tpl = TopicPartitionList::new();
        for (p, next) in &batch.next_offsets {
            if owned.contains(p) && !self.committer.covers(*p, *next) {
                let _ = tpl.add_partition_offset(&self.cfg.topic, *p, Offset::Offset(*next));
            }
        }
        if tpl.count() == 0 {
            return;
        }
        self.committer.send(tpl);
        self.stats
            .messages_out
            .fetch_add(batch.messages as u64, Ordering::Relaxed);
    }
}
