//! Kafka consumer actors: read spans from the topic in a consumer group,
//! write them downstream, and commit offsets only after the write returned
//! Ok (at-least-once; the offsets travel with the batch).
//!
//! rdkafka is polled on a dedicated thread per consumer, never on the async
//! threads: a `BaseConsumer` blocks in `poll` and, when dropped, in its
//! close (rust-rdkafka #509/#611), so the thread owns it for its whole life
//! and shutdown joins that thread with a timeout. The thread is its own
//! supervisor: a failed (or stalled) consumer is rebuilt with capped
//! exponential backoff. The old one is closed on a thread of its own, given
//! `CLOSE_TIMEOUT`, then abandoned: a consumer that stalled may never finish
//! closing, and must not stall its replacement too.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::kafka::consumer_loop::{ConsumerLoop, ACTOR, POLL_SLICE};
use crate::kafka::context::GroupState;
use crate::metrics::ActorStats;
use crate::store::SpanWriter;

const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(200);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Closing leaves the group; librdkafka gives pending commits up to the
/// session timeout (10 s) when the coordinator is away.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// A running consumer. Dropping it asks the consumer to stop without
/// waiting; [`KafkaConsumerHandle::shutdown`] also waits for it.
pub struct KafkaConsumerHandle {
    stop: Arc<AtomicBool>,
    state: Current,
    restarts: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// The group state of the consumer running now. Each rebuilt consumer gets
/// a fresh one, so callbacks from an abandoned one cannot touch it.
type Current = Arc<Mutex<Arc<GroupState>>>;

impl KafkaConsumerHandle {
    /// Partitions of the span topic this consumer owns right now.
    pub fn assigned_partitions(&self) -> Vec<i32> {
        let state = self.state.lock().clone();
        let owned = state.assigned.lock().iter().copied().collect();
        owned
    }

    /// How many times this consumer was rebuilt (after an error, a panic
    /// or a stall).
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
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
    if cfg.stall_timeout_ms < 1_000 {
        return Err(Error::config(
            "kafka.stall_timeout_ms",
            "must be at least 1000",
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let state = Current::default();
    let restarts = Arc::new(AtomicU64::new(0));
    let (cfg, stop2, state2) = (cfg.clone(), stop.clone(), state.clone());
    let thread = std::thread::Builder::new()
        .name("kafka-consumer".into())
        .spawn({
            let restarts = restarts.clone();
            move || supervise(cfg, sink, stop2, state2, restarts)
        })
        .map_err(|e| Error::Internal(format!("spawning kafka consumer thread: {e}")))?;
    Ok(KafkaConsumerHandle {
        stop,
        state,
        restarts,
        thread: Some(thread),
    })
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
        .name("kafka-consumer-close".into())
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

fn supervise(
    cfg: KafkaConfig,
    sink: Arc<dyn SpanWriter>,
    stop: Arc<AtomicBool>,
    current: Current,
    restarts: Arc<AtomicU64>,
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
        let state = Arc::new(GroupState::default());
        *current.lock() = state.clone();
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut l = ConsumerLoop::new(&cfg, sink.clone(), &stop, state, &rt)?;
            let r = l.run();
            close_bounded(l.into_consumer(), CLOSE_TIMEOUT);
            r
        }));
        *current.lock() = Arc::default();
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
        restarts.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() > Duration::from_secs(60) {
            backoff = RESTART_BACKOFF_MIN;
        }
        sleep_unless_stopped(&stop, backoff);
        backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
    }
}
