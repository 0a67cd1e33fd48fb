//! Kafka consumer actors: read spans from the topic in a consumer group,
//! write them downstream, and commit offsets only after the write returned
//! Ok (at-least-once; the offsets travel with the batch).
//!
//! rdkafka is polled on a dedicated thread per consumer, never on the async
//! threads: a `BaseConsumer` blocks in `poll` and, when dropped, in its
//! close (rust-rdkafka #509/#611), so the thread owns it for its whole life
//! and shutdown joins that thread with a timeout. The thread is its own
//! supervisor: a failed consumer is rebuilt with capped exponential backoff.

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::kafka::context::{cached_high_watermark, publish_lag, GroupState, SpanConsumerContext};
use crate::kafka::dlq::{DeadLetter, DeadLetterProducer};
use crate::kafka::{admin, apply_user_settings, base_config, classify, codec, dlq_topic};
use crate::metrics::{ActorStats, Counter};
use crate::model::Span;
use crate::store::SpanWriter;

const ACTOR: &str = "kafka_consumer";
const POLL_SLICE: Duration = Duration::from_millis(100);
const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(200);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
const SINK_BACKOFF_MAX: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// A running consumer. Dropping it asks the consumer to stop without
/// waiting; [`KafkaConsumerHandle::shutdown`] also waits for it.
pub struct KafkaConsumerHandle {
    stop: Arc<AtomicBool>,
    state: Arc<GroupState>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaConsumerHandle {
    /// Partitions of the span topic this consumer owns right now.
    pub fn assigned_partitions(&self) -> Vec<i32> {
        self.state.assigned.lock().iter().copied().collect()
    }

    /// Stops consuming (an unfinished batch stays uncommitted, to be
    /// redelivered), leaves the group, and waits up to `timeout` for the
    /// consumer thread. Returns whether it finished in time. Blocks: call
    /// it off the async threads, or use [`KafkaConsumerHandle::shutdown`].
    pub fn stop_blocking(mut self, timeout: Duration) -> bool {
        self.stop.store(true, Ordering::Release);
        let Some(t) = self.thread.take() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        while !t.is_finished() {
            if Instant::now() >= deadline {
                tracing::warn!(
                    "kafka consumer did not stop in {timeout:?}; leaving its thread behind"
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        t.join().is_ok()
    }

    /// [`KafkaConsumerHandle::stop_blocking`] from async code.
    pub async fn shutdown(self) -> bool {
        tokio::task::spawn_blocking(move || self.stop_blocking(STOP_TIMEOUT))
            .await
            .unwrap_or(false)
    }
}

impl Drop for KafkaConsumerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Starts one consumer of `cfg.topic` in group `cfg.group_id`, writing to
/// `sink`. Run several (in one process or many) to spread partitions.
/// Returns at once; the broker may still be down (the consumer retries).
pub fn start_kafka_consumers(
    cfg: &KafkaConfig,
    sink: Arc<dyn SpanWriter>,
) -> Result<KafkaConsumerHandle> {
    if cfg.batch_max_messages == 0 {
        return Err(Error::config(
            "kafka.batch_max_messages",
            "must be positive",
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let state = Arc::new(GroupState::default());
    let (cfg, stop2, state2) = (cfg.clone(), stop.clone(), state.clone());
    let thread = std::thread::Builder::new()
        .name("kafka-consumer".into())
        .spawn(move || supervise(cfg, sink, stop2, state2))
        .map_err(|e| Error::Internal(format!("spawning kafka consumer thread: {e}")))?;
    Ok(KafkaConsumerHandle {
        stop,
        state,
        thread: Some(thread),
    })
}

/// Sleeps up to `d`, waking early when asked to stop.
fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Acquire) && Instant::now() < end {
        std::thread::sleep(POLL_SLICE.min(end.saturating_duration_since(Instant::now())));
    }
}

fn supervise(
    cfg: KafkaConfig,
    sink: Arc<dyn SpanWriter>,
    stop: Arc<AtomicBool>,
    state: Arc<GroupState>,
) {
    let stats = ActorStats::get(ACTOR);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kafka-sink")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            stats.record_error(&format!("cannot start runtime: {e}"));
            return;
        }
    };
    let mut backoff = RESTART_BACKOFF_MIN;
    while !stop.load(Ordering::Acquire) {
        let started = Instant::now();
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            ConsumerLoop::new(&cfg, sink.clone(), &stop, state.clone(), &rt)
                .and_then(|mut l| l.run())
        }));
        state.assigned.lock().clear();
        let err = match run {
            Ok(Ok(())) => break,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "consumer panicked".to_string(),
        };
        if stop.load(Ordering::Acquire) {
            break;
        }
        tracing::warn!(error = %err, ?backoff, "kafka consumer failed; restarting");
        stats.record_error(&err);
        stats.restarts.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() > Duration::from_secs(60) {
            backoff = RESTART_BACKOFF_MIN;
        }
        sleep_unless_stopped(&stop, backoff);
        backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
    }
}

/// Messages read since the last commit, with what they decoded to.
#[derive(Default)]
struct Batch {
    /// Next offset to commit per partition (last offset + 1).
    next_offsets: BTreeMap<i32, i64>,
    /// Payloads of decodable messages (decoded again when a write is retried).
    payloads: Vec<Vec<u8>>,
    /// Their spans, decoded once; taken by the first write attempt.
    spans: Vec<Span>,
    dead: Vec<DeadLetter>,
    /// Dead letters already acknowledged by the broker.
    dead_sent: usize,
    messages: usize,
}

struct ConsumerLoop<'a> {
    cfg: &'a KafkaConfig,
    sink: Arc<dyn SpanWriter>,
    stop: &'a AtomicBool,
    state: Arc<GroupState>,
    rt: &'a tokio::runtime::Runtime,
    consumer: BaseConsumer<SpanConsumerContext>,
    dlq: DeadLetterProducer,
    /// Messages polled while a write was being retried (partitions paused).
    pending: VecDeque<OwnedMessage>,
    /// Offsets this consumer committed, per partition it still owns.
    committed: BTreeMap<i32, i64>,
    generation: u64,
    stats: Arc<ActorStats>,
    m: LoopMetrics,
}

struct LoopMetrics {
    dead_letters: Counter,
    sink_errors: Counter,
    commits: Counter,
    commit_errors: Counter,
    commit_ms_sum: Counter,
    spans: Counter,
}

impl<'a> ConsumerLoop<'a> {
    fn new(
        cfg: &'a KafkaConfig,
        sink: Arc<dyn SpanWriter>,
        stop: &'a AtomicBool,
        state: Arc<GroupState>,
        rt: &'a tokio::runtime::Runtime,
    ) -> Result<Self> {
        rt.block_on(admin::ensure_topic(cfg, &cfg.topic, cfg.partitions))?;
        rt.block_on(admin::ensure_topic(cfg, &dlq_topic(&cfg.topic), 1))?;
        let stats = ActorStats::get(ACTOR);
        let mut c = base_config(cfg);
        c.set("group.id", &cfg.group_id)
            .set("client.id", "strand-consumer")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            // Bounded prefetch: at most this many KiB queued per consumer.
            .set("queued.max.messages.kbytes", "32768");
        apply_user_settings(&mut c, cfg);
        let ctx = SpanConsumerContext {
            topic: cfg.topic.clone(),
            state: state.clone(),
            stats: stats.clone(),
        };
        let consumer: BaseConsumer<SpanConsumerContext> =
            c.create_with_context(ctx).map_err(|e| classify(&e))?;
        consumer
            .subscribe(&[cfg.topic.as_str()])
            .map_err(|e| classify(&e))?;
        let c = |name, help| Counter::new(name, help, &[("topic", cfg.topic.as_str())]);
        Ok(ConsumerLoop {
            cfg,
            sink,
            stop,
            generation: state.generation.load(Ordering::Acquire),
            state,
            rt,
            consumer,
            dlq: DeadLetterProducer::new(cfg)?,
            pending: VecDeque::new(),
            committed: BTreeMap::new(),
            stats,
            m: LoopMetrics {
                dead_letters: c(
                    "strand_kafka_dead_letters_total",
                    "undecodable messages sent to the dead-letter topic",
                ),
                sink_errors: c(
                    "strand_kafka_consumer_sink_errors_total",
                    "failed downstream writes (retried)",
                ),
                commits: c("strand_kafka_commits_total", "offset commits"),
                commit_errors: c(
                    "strand_kafka_commit_errors_total",
                    "failed offset commits (messages are redelivered)",
                ),
                commit_ms_sum: c(
                    "strand_kafka_commit_latency_ms_sum",
                    "sum of offset commit latencies",
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
            self.committed.retain(|p, _| owned.contains(p));
        }
    }

    fn run(&mut self) -> Result<()> {
        let mut lag_published = Instant::now();
        while !self.stopping() {
            if lag_published.elapsed() >= LAG_INTERVAL {
                self.publish_lag();
                lag_published = Instant::now();
            }
            let batch = self.collect()?;
            if batch.messages > 0 {
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
            Some(Ok(m)) => Ok(Some(m)),
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
        match codec::decode(payload) {
            Ok(spans) => {
                batch.spans.extend(spans);
                batch.payloads.push(payload.to_vec());
            }
            Err(reason) => {
                tracing::warn!(partition = m.partition(), offset = m.offset(), %reason, "undecodable kafka message; sending to dead-letter topic");
                batch.dead.push(DeadLetter {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    reason,
                });
            }
        }
    }

    /// Makes the batch durable (dead letters, then the sink write), retrying
    /// with backoff while partitions are paused, then commits its offsets.
    fn flush(&mut self, mut batch: Batch) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        let mut paused = false;
        loop {
            match self.try_write(&mut batch) {
                Ok(()) => break,
                Err(e) => {
                    self.m.sink_errors.inc();
                    self.stats.record_error(&e);
                    tracing::warn!(error = %e, ?backoff, "kafka consumer write failed; retrying without committing");
                    // Pausing keeps this consumer in the group (poll still
                    // serves heartbeats and rebalances) without reading on.
                    if let Ok(tpl) = self.consumer.assignment() {
                        paused |= self.consumer.pause(&tpl).is_ok();
                    }
                    let end = Instant::now() + backoff;
                    while Instant::now() < end {
                        if self.stopping() {
                            return Ok(()); // uncommitted: redelivered later
                        }
                        if let Some(m) = self.next_message_while_paused()? {
                            self.pending.push_back(m);
                        }
                    }
                    backoff = (backoff * 2).min(SINK_BACKOFF_MAX);
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
        while let Some(d) = batch.dead.get(batch.dead_sent) {
            self.rt.block_on(self.dlq.send(d))?;
            batch.dead_sent += 1;
            self.m.dead_letters.inc();
        }
        let mut spans = std::mem::take(&mut batch.spans);
        if spans.is_empty() {
            // A retry: the first attempt consumed the decoded spans.
            for p in &batch.payloads {
                // Decoded once already in `add`; cannot fail here.
                spans.extend(codec::decode(p).unwrap_or_default());
            }
        }
        if spans.is_empty() {
            return Ok(());
        }
        let n = spans.len() as u64;
        self.rt.block_on(self.sink.write(spans))?;
        self.m.spans.add(n);
        Ok(())
    }

    fn publish_lag(&self) {
        for (p, committed) in &self.committed {
            if let Some(high) = cached_high_watermark(&self.consumer, &self.cfg.topic, *p) {
                publish_lag(&self.cfg.topic, *p, high - committed);
            }
        }
    }

    /// Commits the batch's offsets for the partitions still owned; offsets
    /// of revoked partitions are left for their new owner to re-read.
    fn commit(&mut self, batch: &Batch) {
        let owned = self.state.assigned.lock().clone();
        let mut tpl = TopicPartitionList::new();
        for (p, next) in &batch.next_offsets {
            // After a rebalance rewinds a partition, a batch of re-read
            // messages must not move its committed offset backwards.
            let behind = self.committed.get(p).is_some_and(|c| c >= next);
            if owned.contains(p) && !behind {
                let _ = tpl.add_partition_offset(&self.cfg.topic, *p, Offset::Offset(*next));
            }
        }
        if tpl.count() == 0 {
            return;
        }
        let started = Instant::now();
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                for e in tpl.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        self.committed.insert(e.partition(), o);
                    }
                }
                self.m.commits.inc();
                self.stats
                    .messages_out
                    .fetch_add(batch.messages as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // Not fatal: the messages are durable and will be redelivered.
                self.m.commit_errors.inc();
                self.stats.record_error(&e);
                tracing::warn!(error = %e, "kafka offset commit failed");
            }
        }
        self.m
            .commit_ms_sum
            .add(started.elapsed().as_millis() as u64);
    }
}
