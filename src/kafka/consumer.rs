//! The Kafka consumer stage: a `KafkaConsumer` actor that owns one
//! consumer thread (`kafka-consumer`). On it a [`ConsumerLoop`] reads spans
//! from the topic in a consumer group, writes them downstream, and commits
//! offsets only after the write returned Ok (at-least-once; the offsets
//! travel with the batch, commits go through the loop's `Committer`).
//!
//! rdkafka is polled on that dedicated thread, never on the async threads:
//! a `BaseConsumer` blocks in `poll` and, when dropped, in its close
//! (rust-rdkafka #509/#611). The thread rebuilds a consumer that failed,
//! panicked or stalled — with its committer — after the stage's backoff,
//! and reports each rebuild to the `kafka` group of the tree; a group
//! restart (`RestartStage`) asks it to rebuild too. The old consumer is
//! closed on a thread of its own, given `CLOSE_TIMEOUT`, then abandoned: a
//! consumer that stalled may never finish closing, and must not stall its
//! replacement too.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use parking_lot::Mutex;

use super::consumer_loop::{ConsumerLoop, Source, POLL_SLICE};
use super::context::GroupState;
use crate::actors::tree::{RestartStage, Root, StageHandle};
use crate::backoff::Backoff;
use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::model::SpanWriter;

const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(200);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Closing leaves the group; librdkafka gives pending commits up to the
/// session timeout (10 s) when the coordinator is away.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// The group state of the consumer running now. Each rebuilt consumer gets
/// a fresh one, so callbacks from an abandoned one cannot touch it.
type Current = Arc<Mutex<Arc<GroupState>>>;

/// What the actor, its thread and the handle share.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Read (and cleared) by the consumer loop, which then ends.
    rebuild: AtomicBool,
    /// Set with `rebuild` by a group restart, so that rebuild is counted
    /// as a restart rather than as a failure of this stage.
    asked: AtomicBool,
    state: Current,
    restarts: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The actor owning the consumer thread.
pub struct KafkaConsumer {
    shared: Arc<Shared>,
}

impl Actor for KafkaConsumer {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

impl Handler<RestartStage> for KafkaConsumer {
    type Result = ();

    fn handle(&mut self, _: RestartStage, _: &mut Context<Self>) {
        self.shared.asked.store(true, Ordering::Release);
        self.shared.rebuild.store(true, Ordering::Release);
    }
}

/// A running consumer. Dropping it asks the consumer to stop without
/// waiting; [`KafkaConsumerHandle::shutdown`] also waits for it.
pub struct KafkaConsumerHandle {
    shared: Arc<Shared>,
    addr: Addr<KafkaConsumer>,
}

impl KafkaConsumerHandle {
    /// Partitions of the span topic this consumer owns right now.
    pub fn assigned_partitions(&self) -> Vec<i32> {
        let state = self.shared.state.lock().clone();
        let owned = state.assigned.lock().iter().copied().collect();
        owned
    }

    /// How many times this consumer was rebuilt (after an error, a panic,
    /// a stall or a group restart).
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// Asks for a rebuild, as a restart of the `kafka` group does.
    pub fn restart(&self) {
        self.addr.do_send(RestartStage);
    }

    /// Stops consuming (an unfinished batch stays uncommitted, to be
    /// redelivered), leaves the group, and waits up to `timeout` for the
    /// consumer thread. Returns whether it finished in time. Blocks: call
    /// it off the async threads, or use [`KafkaConsumerHandle::shutdown`].
    pub fn stop_blocking(self, timeout: Duration) -> bool {
        self.shared.stop.store(true, Ordering::Release);
        let Some(t) = self.shared.thread.lock().take() else {
            return true;
        };
        let stopped = join_within(t, timeout);
        if !stopped {
            tracing::warn!("kafka consumer did not stop in {timeout:?}; leaving its thread behind");
        }
        stopped
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
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// Starts one consumer of `cfg.topic` in group `cfg.group_id`, writing to
/// `sink`, as a stage of the root's `kafka` group (detached without a
/// root). Run several (in one process or many) to spread partitions.
/// Returns at once; the broker may still be down (the consumer retries).
/// Call inside an actix System.
pub fn start_kafka_consumers(
    cfg: &KafkaConfig,
    sink: Arc<dyn SpanWriter>,
    root: Option<&Addr<Root>>,
) -> Result<KafkaConsumerHandle> {
    start_consumer(cfg, Source::own(cfg), sink, root)
}

/// One consumer per `kafka.extra_topics` entry (topics written by other
/// producers, e.g. the OpenTelemetry Collector's Kafka exporter), in the
/// same group, with the same commit-after-write and dead-letter rules.
pub fn start_extra_consumers(
    cfg: &KafkaConfig,
    sink: Arc<dyn SpanWriter>,
    root: Option<&Addr<Root>>,
) -> Result<Vec<KafkaConsumerHandle>> {
    cfg.extra_topics
        .iter()
        .map(|t| start_consumer(cfg, Source::extra(t), sink.clone(), root))
        .collect()
}

/// Starts one consumer of `source` (its topic replaces `cfg.topic` for
/// that consumer: its DLQ is `<topic>-dlq`).
pub fn start_consumer(
    cfg: &KafkaConfig,
    source: Source,
    sink: Arc<dyn SpanWriter>,
    root: Option<&Addr<Root>>,
) -> Result<KafkaConsumerHandle> {
    if cfg.batch_max_messages == 0 {
        return Err(Error::config(
            "kafka.batch_max_messages",
            "must be positive",
        ));
    }
    if cfg.stall_timeout_ms < 1_000 {
        return Err(Error::config(
            "kafka.stall_timeout_ms",
            "must be at least 1000",
        ));
    }
    let shared = Arc::new(Shared::default());
    let stage = StageHandle::new(root, "kafka", source.actor.clone());
    let cfg = KafkaConfig {
        topic: source.topic.clone(),
        ..cfg.clone()
    };
    let thread = std::thread::Builder::new()
        .name("kafka-consumer".into())
        .spawn({
            let (shared, stage) = (shared.clone(), stage.clone());
            move || supervise(cfg, source, sink, shared, stage)
        })
        .map_err(|e| Error::Internal(format!("spawning kafka consumer thread: {e}")))?;
    *shared.thread.lock() = Some(thread);
    let addr = KafkaConsumer {
        shared: shared.clone(),
    }
    .start();
    stage.register(Some(addr.clone().recipient()));
    Ok(KafkaConsumerHandle { shared, addr })
}

/// Joins `t` if it finishes within `timeout`; whether it did (and did not
/// panic).
fn join_within(t: JoinHandle<()>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !t.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    t.join().is_ok()
}

/// Drops (closes) a consumer on its own thread, waiting up to `timeout`.
fn close_bounded<T: Send + 'static>(consumer: T, timeout: Duration) {
    let closing = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || drop(consumer));
    // Cannot spawn: leak it rather than block.
    if closing.is_ok_and(|t| !join_within(t, timeout)) {
        tracing::warn!("kafka consumer did not close in {timeout:?}; abandoning it");
    }
}

/// Sleeps up to `d`, waking early when asked to stop.
fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Acquire) && Instant::now() < end {
        std::thread::sleep(POLL_SLICE.min(end.saturating_duration_since(Instant::now())));
    }
}

/// The consumer thread: run a consumer loop, rebuild it when it fails.
fn supervise(
    cfg: KafkaConfig,
    source: Source,
    sink: Arc<dyn SpanWriter>,
    shared: Arc<Shared>,
    stage: StageHandle,
) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kafka-sink")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            stage.failed(&format!("cannot start runtime: {e}"));
            return;
        }
    };
    let mut backoff = Backoff::new(RESTART_BACKOFF_MIN, RESTART_BACKOFF_MAX);
    while !shared.stop.load(Ordering::Acquire) {
        let state = Arc::new(GroupState::default());
        *shared.state.lock() = state.clone();
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut l = ConsumerLoop::new(
                &cfg,
                sink.clone(),
                &shared.stop,
                &shared.rebuild,
                state,
                &rt,
                &source,
            )?;
            stage.up();
            let r = l.run();
            close_bounded(l.into_consumer(), CLOSE_TIMEOUT);
            r
        }));
        *shared.state.lock() = Arc::default();
        let err = match run {
            Ok(Ok(())) => break,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "consumer panicked".to_string(),
        };
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        shared.restarts.fetch_add(1, Ordering::Relaxed);
        if shared.asked.swap(false, Ordering::AcqRel) {
            // Restarted with its group: not a failure of its own.
            tracing::info!("kafka consumer rebuilt with its group");
            stage.restarting();
            continue;
        }
        let delay = backoff.next_delay();
        tracing::warn!(error = %err, ?delay, "kafka consumer failed; rebuilding it");
        stage.failed(&err);
        sleep_unless_stopped(&shared.stop, delay);
    }
    stage.stopped();
}
