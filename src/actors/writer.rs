//! `HotWriter`: the durable write path of the hot store. One actor per
//! write shard, each on its own arbiter thread (`hot-writer-N`, so fsync
//! never blocks async threads), owns that shard's WAL; the handle sends
//! each span to the shard of its trace id.
//! Group commit: while it fsyncs, new `WriteSpans` queue in its bounded
//! mailbox; the next turn drains them all into `pending`, and one `Flush`
//! appends every pending batch to the WAL with ONE fsync, makes them
//! visible, then acknowledges them all. Small concurrent writes therefore
//! share fsyncs instead of each paying for one.
//!
//! On an I/O error the writer fails the pending acks with `Unavailable`,
//! reports the failure to the tree and stops; its `Supervisor` restarts it
//! after a capped exponential backoff (see `supervise.rs`), and recovery
//! starts a fresh WAL. The root may also restart it with its group
//! (`RestartStage`), which takes the same path.
//!
//! With tail sampling (`crate::tailsampling`) a commit appends the spans
//! of undecided traces to the shard's pending log instead (one fsync too),
//! and decided traces' kept spans are committed to the WAL as above.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use async_trait::async_trait;
use tokio::sync::oneshot;

use super::sealer::{start_sealer, RetentionJanitor, SealSegment, SegmentSealed, SegmentSealer};
use super::supervise::{pause_then, RestartBackoff};
use super::tree::{RestartStage, Root, StageHandle};
use crate::error::{Error, Result};
use crate::metrics::ActorStats;
use crate::model::{Span, SpanWriter};
use crate::store::active::MemSegment;
use crate::store::hot::{Batch, HotStore};
use crate::tailsampling::{self, TailSampler};

/// Mailbox bound: beyond this many queued batches writers get `Overloaded`.
pub const MAILBOX: usize = 1024;
const TICK: Duration = Duration::from_secs(1);
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// How often due traces are decided.
const TAIL_TICK: Duration = Duration::from_millis(100);

/// Command: make these spans durable, then answer on `ack`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WriteSpans {
    pub batch: Batch,
    pub ack: oneshot::Sender<Result<()>>,
}

/// Command: rotate the active segment and seal every frozen one now.
#[derive(Message)]
#[rtype(result = "Result<Vec<SegmentSealed>>")]
pub struct SealNow;

/// Internal command: commit everything pending.
#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

pub struct HotWriter {
    store: Arc<HotStore>,
    shard: usize,
    sealer: Addr<SegmentSealer>,
    pending: Vec<WriteSpans>,
    flush_scheduled: bool,
    stats: Arc<ActorStats>,
    stage: StageHandle,
    up: Arc<AtomicBool>,
    backoff: RestartBackoff,
    /// Frozen segments with a seal request in flight.
    sealing: Vec<u64>,
    tail: Option<TailSampler>,
}

impl HotWriter {
    fn fail_pending(&mut self, e: &Error) {
        for w in self.pending.drain(..) {
            let _ = w.ack.send(Err(Error::Unavailable(format!(
                "hot store write failed: {e}"
            ))));
        }
    }

    /// Stops after an I/O failure; the supervisor restarts us.
    fn crash(&mut self, e: Error, ctx: &mut Context<Self>) {
        tracing::error!(error = %e, "hot writer failed; restarting");
        // Down before anyone hears of the failure, so a retry that follows
        // the error sees Unavailable rather than queueing behind a restart.
        self.up.store(false, Ordering::SeqCst);
        self.stage.failed(&e);
        self.fail_pending(&e);
        ctx.stop();
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() {
            return;
        }
        if self.store.should_rotate(self.shard) {
            match self.store.rotate(self.shard) {
                Ok(Some(seg)) => self.request_seal(seg, ctx),
                Ok(None) => {}
                Err(e) => return self.crash(e, ctx),
            }
        }
        let pending = std::mem::take(&mut self.pending);
        if self.store.is_backlogged(self.shard) {
            for w in pending {
                let _ = w
                    .ack
                    .send(Err(Error::Overloaded("hot store sealing is behind".into())));
            }
            return;
        }
        if self.tail.is_some() {
            return self.flush_tail(pending, ctx);
        }
        let mut acks = Vec::with_capacity(pending.len());
        let mut batches = Vec::with_capacity(pending.len());
        for w in pending {
            acks.push(w.ack);
            batches.push(w.batch);
        }
        match self.store.commit(self.shard, batches) {
            Ok(n) => {
                // Writing again: the next failure waits the base delay.
                self.backoff.succeeded();
                self.stats
                    .messages_out
                    .fetch_add(n as u64, Ordering::Relaxed);
                for a in acks {
                    let _ = a.send(Ok(()));
                }
            }
            Err(e) => {
                self.up.store(false, Ordering::SeqCst);
                self.stats.record_error(&e);
                for a in acks {
                    let _ = a.send(Err(Error::Unavailable(format!(
                        "hot store write failed: {e}"
                    ))));
                }
                self.crash(e, ctx);
            }
        }
    }

    fn request_seal(&mut self, seg: Arc<MemSegment>, ctx: &mut Context<Self>) {
        if self.sealing.contains(&seg.id) {
            return;
        }
        let id = seg.id;
        self.sealing.push(id);
        self.sealer
            .send(SealSegment { segment: seg })
            .into_actor(self)
            .map(move |res, act, _| {
                act.sealing.retain(|s| *s != id);
                if let Err(e) = res
                    .map_err(|e| Error::Unavailable(e.to_string()))
                    .and_then(|r| r)
                {
                    // The segment stays frozen (and queryable); the tick retries.
                    act.stats.record_error(&e);
                }
            })
            .spawn(ctx);
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.store.should_rotate(self.shard) {
            match self.store.rotate(self.shard) {
                Ok(_) => {}
                Err(e) => return self.crash(e, ctx),
            }
        }
        // Every shard asks for every frozen segment (recovery freezes some
        // no shard rotated); sealing is idempotent.
        for seg in self.store.frozen() {
            self.request_seal(seg, ctx);
        }
    }

    fn recover(&mut self, ctx: &mut Context<Self>) {
        let reopened = match self.tail.as_mut() {
            Some(t) => t.reopen(tailsampling::now_ms()),
            None => Ok(()),
        };
        match reopened.and_then(|_| self.store.reset_wal(self.shard)) {
            Ok(_) => {
                tracing::info!("hot writer recovered with a fresh WAL");
                self.up.store(true, Ordering::SeqCst);
                self.stage.up();
            }
            Err(e) => self.crash(e, ctx),
        }
    }
}

impl Actor for HotWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
        if self.tail.is_some() {
            ctx.run_interval(TAIL_TICK, |act, ctx| {
                if act.up.load(Ordering::SeqCst) {
                    act.decide_due(ctx);
                }
            });
        }
        match self.backoff.take_pending() {
            Some(delay) => pause_then(ctx, delay, |act: &mut HotWriter, ctx| act.recover(ctx)),
            None => self.up.store(true, Ordering::SeqCst),
        }
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.up.store(false, Ordering::SeqCst);
        Running::Stop
    }
}

impl Supervised for HotWriter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.flush_scheduled = false;
        self.sealing.clear();
        let d = self.backoff.arm();
        tracing::warn!(delay_ms = d.as_millis() as u64, "hot writer restarting");
    }
}

impl Handler<RestartStage> for HotWriter {
    type Result = ();

    /// The group restarts: fail what is pending (clients retry) and come
    /// back through the same recovery as after an I/O error.
    fn handle(&mut self, _: RestartStage, ctx: &mut Context<Self>) {
        self.up.store(false, Ordering::SeqCst);
        self.stage.restarting();
        self.fail_pending(&Error::Unavailable("storage group restarting".into()));
        ctx.stop();
    }
}

impl Handler<WriteSpans> for HotWriter {
    type Result = ();

    fn handle(&mut self, msg: WriteSpans, ctx: &mut Context<Self>) {
        self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
        self.stats
            .messages_in
            .fetch_add(msg.batch.spans.len() as u64, Ordering::Relaxed);
        self.pending.push(msg);
        // Notifications run after the mailbox is drained: every batch that
        // queued during the last fsync joins this commit.
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(Flush);
        }
    }
}

impl Handler<Flush> for HotWriter {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        self.flush(ctx);
    }
}

impl Handler<SealNow> for HotWriter {
    type Result = ResponseFuture<Result<Vec<SegmentSealed>>>;

    fn handle(&mut self, _: SealNow, ctx: &mut Context<Self>) -> Self::Result {
        self.flush(ctx);
        let rotated = self.store.rotate(self.shard);
        let sealer = self.sealer.clone();
        let frozen = self.store.frozen();
        Box::pin(async move {
            rotated?;
            let mut out = Vec::new();
            // A seal of a segment already being sealed waits for that one,
            // and sealing an already-sealed segment is a no-op.
            for seg in frozen {
                let r = sealer
                    .send(SealSegment { segment: seg })
                    .await
                    .map_err(|e| Error::Unavailable(e.to_string()))??;
                out.extend(r);
            }
            Ok(out)
        })
    }
}

/// One shard's writer as the handle sees it.
#[derive(Clone)]
struct ShardWriter {
    addr: Addr<HotWriter>,
    up: Arc<AtomicBool>,
    stats: Arc<ActorStats>,
}

/// The handle others use to write: cheap to clone.
#[derive(Clone)]
pub struct HotWriterHandle {
    shards: Arc<Vec<ShardWriter>>,
    store: Arc<HotStore>,
}

impl HotWriterHandle {
    /// Rotates the active segments and seals every frozen segment, waiting
    /// for the files and the manifest to be durable.
    pub async fn seal_now(&self) -> Result<Vec<SegmentSealed>> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let sealed = s
                .addr
                .send(SealNow)
                .await
                .map_err(|e| Error::Unavailable(format!("hot writer: {e}")))??;
            out.extend(sealed);
        }
        Ok(out)
    }

    pub fn store(&self) -> &Arc<HotStore> {
        &self.store
    }

    /// Whether every shard's writer is running (not stopped or waiting to
    /// restart).
    pub fn is_up(&self) -> bool {
        self.shards.iter().all(|s| s.up.load(Ordering::SeqCst))
    }

    /// Queues `spans` on one shard; the receiver of the durable answer.
    fn send(
        &self,
        shard: &ShardWriter,
        spans: Vec<Span>,
    ) -> Result<Vec<oneshot::Receiver<Result<()>>>> {
        if !shard.up.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("hot writer is restarting".into()));
        }
        let mut acks = Vec::new();
        // A very large write (a Kafka consumer batch) becomes several WAL
        // records; the caller is acknowledged once all of them are durable.
        for batch in Batch::split_for_wal(spans) {
            let (ack, rx) = oneshot::channel();
            shard.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = shard.addr.try_send(WriteSpans { batch, ack }) {
                shard.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                return Err(match e {
                    SendError::Full(_) => Error::Overloaded("hot writer queue is full".into()),
                    SendError::Closed(_) => Error::Unavailable("hot writer is down".into()),
                });
            }
            acks.push(rx);
        }
        Ok(acks)
    }
}

#[async_trait]
impl SpanWriter for HotWriterHandle {
    /// Returns `Ok` only once the spans are in an fsynced WAL (of every
    /// shard they went to).
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        if spans.is_empty() {
            return Ok(());
        }
        // Encoding the WAL records here spreads that CPU over the callers'
        // threads; the writer threads only copy bytes, fsync and index.
        let mut acks = Vec::new();
        if self.shards.len() == 1 {
            acks = self.send(&self.shards[0], spans)?;
        } else {
            let mut by_shard: Vec<Vec<Span>> = vec![Vec::new(); self.shards.len()];
            for s in spans {
                by_shard[self.store.shard_of(&s.trace_id)].push(s);
            }
            for (i, part) in by_shard.into_iter().enumerate() {
                if !part.is_empty() {
                    acks.extend(self.send(&self.shards[i], part)?);
                }
            }
        }
        for rx in acks {
            rx.await.unwrap_or_else(|_| {
                Err(Error::Unavailable("hot writer dropped the write".into()))
            })?;
        }
        Ok(())
    }
}

/// Starts the sealer, the retention janitor and one supervised writer per
/// shard, each on its own arbiter (`hot-writer-N`), all stages of the
/// `storage` group. Must be called from inside a running actix System.
pub fn start_hot_writer(store: Arc<HotStore>, root: Option<&Addr<Root>>) -> HotWriterHandle {
    start_with_backoff(store, root, RestartBackoff::default())
}

pub(crate) fn start_with_backoff(
    store: Arc<HotStore>,
    root: Option<&Addr<Root>>,
    backoff: RestartBackoff,
) -> HotWriterHandle {
    let none = (0..store.shards()).map(|_| None).collect();
    start_inner(store, root, backoff, none)
}

pub(super) fn start_inner(
    store: Arc<HotStore>,
    root: Option<&Addr<Root>>,
    backoff: RestartBackoff,
    mut samplers: Vec<Option<TailSampler>>,
) -> HotWriterHandle {
    let sealer = start_sealer(
        store.clone(),
        StageHandle::new(root, "storage", "segment_sealer"),
    );
    let janitor = StageHandle::new(root, "storage", "retention_janitor");
    let janitor_addr = Supervisor::start({
        let (sealer, janitor) = (sealer.clone(), janitor.clone());
        move |_| RetentionJanitor::new(sealer, RETENTION_EVERY, janitor)
    });
    janitor.register(Some(janitor_addr.recipient()));
    let shards = (0..store.shards())
        .map(|shard| {
            let stage = StageHandle::new(root, "storage", format!("hot_writer-{shard}"));
            let stats = stage.stats.clone();
            let up = Arc::new(AtomicBool::new(false));
            let arbiter = Arbiter::new();
            arbiter.spawn_fn(move || super::name_thread(&format!("hot-writer-{shard}")));
            let writer = HotWriter {
                store: store.clone(),
                shard,
                sealer: sealer.clone(),
                pending: Vec::new(),
                flush_scheduled: false,
                stats: stats.clone(),
                stage: stage.clone(),
                up: up.clone(),
                backoff: backoff.clone(),
                sealing: Vec::new(),
                tail: samplers[shard].take(),
            };
            let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| writer);
            stage.register(Some(addr.clone().recipient()));
            ShardWriter { addr, up, stats }
        })
        .collect::<Vec<ShardWriter>>();
    // Until `started` ran on its arbiter, a writer's mailbox still has
    // actix's default capacity and writes would be refused as overload.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !shards.iter().all(|s| s.up.load(Ordering::SeqCst))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    HotWriterHandle {
        shards: Arc::new(shards),
        store,
    }
}

#[path = "writer_tail.rs"]
mod tail;
pub use tail::start_hot_writer_tail;

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
