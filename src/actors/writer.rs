//! `HotWriter`: the durable write path of the hot store. One actor on its
//! own Arbiter thread (so fsync never blocks async threads) owns the WAL.
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

/// Mailbox bound: beyond this many queued batches writers get `Overloaded`.
pub const MAILBOX: usize = 1024;
const TICK: Duration = Duration::from_secs(1);
const RETENTION_EVERY: Duration = Duration::from_secs(60);

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
    sealer: Addr<SegmentSealer>,
    pending: Vec<WriteSpans>,
    flush_scheduled: bool,
    stats: Arc<ActorStats>,
    stage: StageHandle,
    up: Arc<AtomicBool>,
    backoff: RestartBackoff,
    /// Frozen segments with a seal request in flight.
    sealing: Vec<u64>,
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
        if self.store.should_rotate() {
            match self.store.rotate() {
                Ok(Some(seg)) => self.request_seal(seg, ctx),
                Ok(None) => {}
                Err(e) => return self.crash(e, ctx),
            }
        }
        let pending = std::mem::take(&mut self.pending);
        if self.store.is_backlogged() {
            for w in pending {
                let _ = w
                    .ack
                    .send(Err(Error::Overloaded("hot store sealing is behind".into())));
            }
            return;
        }
        let mut acks = Vec::with_capacity(pending.len());
        let mut batches = Vec::with_capacity(pending.len());
        for w in pending {
            acks.push(w.ack);
            batches.push(w.batch);
        }
        match self.store.commit(batches) {
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
        if self.store.should_rotate() {
            match self.store.rotate() {
                Ok(_) => {}
                Err(e) => return self.crash(e, ctx),
            }
        }
        for seg in self.store.frozen() {
            self.request_seal(seg, ctx);
        }
    }

    fn recover(&mut self, ctx: &mut Context<Self>) {
        match self.store.reset_wal() {
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
        let rotated = self.store.rotate();
        let sealer = self.sealer.clone();
        let frozen = self.store.frozen();
        Box::pin(async move {
            rotated?;
            let mut out = Vec::new();
            // The sealer is one thread: these run after any in-flight seal,
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

/// The handle others use to write: cheap to clone.
#[derive(Clone)]
pub struct HotWriterHandle {
    addr: Addr<HotWriter>,
    up: Arc<AtomicBool>,
    stats: Arc<ActorStats>,
    store: Arc<HotStore>,
}

impl HotWriterHandle {
    /// Rotates the active segment and seals every frozen segment, waiting
    /// for the files and the manifest to be durable.
    pub async fn seal_now(&self) -> Result<Vec<SegmentSealed>> {
        self.addr
            .send(SealNow)
            .await
            .map_err(|e| Error::Unavailable(format!("hot writer: {e}")))?
    }

    pub fn store(&self) -> &Arc<HotStore> {
        &self.store
    }

    /// Whether the writer is running (not stopped or waiting to restart).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SpanWriter for HotWriterHandle {
    /// Returns `Ok` only once the spans are in an fsynced WAL.
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        if spans.is_empty() {
            return Ok(());
        }
        if !self.is_up() {
            return Err(Error::Unavailable("hot writer is restarting".into()));
        }
        // Encoding the WAL record here spreads that CPU over the callers'
        // threads; the writer thread only copies bytes and fsyncs.
        // A very large write (a Kafka consumer batch) becomes several WAL
        // records; the caller is acknowledged once all of them are durable.
        let mut acks = Vec::new();
        for batch in Batch::split_for_wal(spans) {
            let (ack, rx) = oneshot::channel();
            self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.addr.try_send(WriteSpans { batch, ack }) {
                self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                return Err(match e {
                    SendError::Full(_) => Error::Overloaded("hot writer queue is full".into()),
                    SendError::Closed(_) => Error::Unavailable("hot writer is down".into()),
                });
            }
            acks.push(rx);
        }
        for rx in acks {
            rx.await.unwrap_or_else(|_| {
                Err(Error::Unavailable("hot writer dropped the write".into()))
            })?;
        }
        Ok(())
    }
}

/// Starts the sealer, the retention janitor and the supervised writer on
/// its own arbiter (`hot-writer`), each a stage of the `storage` group.
/// Must be called from inside a running actix System.
pub fn start_hot_writer(store: Arc<HotStore>, root: Option<&Addr<Root>>) -> HotWriterHandle {
    start_with_backoff(store, root, RestartBackoff::default())
}

pub(crate) fn start_with_backoff(
    store: Arc<HotStore>,
    root: Option<&Addr<Root>>,
    backoff: RestartBackoff,
) -> HotWriterHandle {
    let sealer = start_sealer(store.clone(), StageHandle::new(root, "storage", "segment_sealer"));
    let janitor = StageHandle::new(root, "storage", "retention_janitor");
    let janitor_addr = Supervisor::start({
        let (sealer, janitor) = (sealer.clone(), janitor.clone());
        move |_| RetentionJanitor::new(sealer, RETENTION_EVERY, janitor)
    });
    janitor.register(Some(janitor_addr.recipient()));
    let stage = StageHandle::new(root, "storage", "hot_writer");
    let stats = stage.stats.clone();
    let up = Arc::new(AtomicBool::new(true));
    let arbiter = Arbiter::new();
    arbiter.spawn_fn(|| super::name_thread("hot-writer"));
    let writer = {
        let (store, stats, up) = (store.clone(), stats.clone(), up.clone());
        HotWriter {
            store,
            sealer,
            pending: Vec::new(),
            flush_scheduled: false,
            stats,
            stage: stage.clone(),
            up,
            backoff,
            sealing: Vec::new(),
        }
    };
    let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| writer);
    stage.register(Some(addr.clone().recipient()));
    HotWriterHandle {
        addr,
        up,
        stats,
        store,
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
