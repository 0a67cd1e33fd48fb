//! The hot writer's tail-sampling path (`crate::tailsampling`): commits
//! that log undecided traces to the pending log, and the decisions that
//! move kept traces into the WAL.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;

use super::{start_inner, HotWriter, HotWriterHandle, WriteSpans};
use crate::actors::supervise::RestartBackoff;
use crate::actors::tree::Root;
use crate::error::{Error, Result};
use crate::store::hot::{Batch, HotStore};
use crate::tailsampling::{self, TailSampler, TailSetup};

impl HotWriter {
    /// Undecided traces' spans go to the pending log, spans of traces
    /// already kept to the WAL; both are durable before anyone is told.
    pub(super) fn flush_tail(&mut self, pending: Vec<WriteSpans>, ctx: &mut Context<Self>) {
        let Some(tail) = self.tail.as_mut() else {
            return;
        };
        let now = tailsampling::now_ms();
        let mut acks = Vec::with_capacity(pending.len());
        let mut direct = Vec::new();
        for w in pending {
            acks.push(w.ack);
            direct.extend(tail.admit(w.batch, now));
        }
        let stored = direct.len();
        let r = tail.sync().and_then(|_| match direct.is_empty() {
            true => Ok(0),
            false => self.store.commit(self.shard, Batch::split_for_wal(direct)),
        });
        match r {
            Ok(_) => {
                self.backoff.succeeded();
                self.stats
                    .messages_out
                    .fetch_add(stored as u64, Ordering::Relaxed);
                for a in acks {
                    let _ = a.send(Ok(()));
                }
                self.decide_due(ctx);
            }
            Err(e) => {
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

    /// Decides due traces, stores the kept ones, then logs the decisions.
    pub(super) fn decide_due(&mut self, ctx: &mut Context<Self>) {
        let Some(tail) = self.tail.as_mut() else {
            return;
        };
        let d = tail.take_due(tailsampling::now_ms(), &self.store);
        if d.decisions.is_empty() {
            return;
        }
        let kept = d.keep.len();
        let r = match d.keep.is_empty() {
            true => Ok(0),
            false => self.store.commit(self.shard, Batch::split_for_wal(d.keep)),
        }
        .and_then(|_| tail.applied(&d.decisions));
        match r {
            Ok(()) => {
                self.stats
                    .messages_out
                    .fetch_add(kept as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.record_error(&e);
                self.crash(e, ctx);
            }
        }
    }
}

/// As [`start_hot_writer`], with tail sampling when `tail` is given: each
/// shard first re-reads its pending log (`<data_dir>/tail/<shard>`).
pub fn start_hot_writer_tail(
    store: Arc<HotStore>,
    root: Option<&Addr<Root>>,
    tail: TailSetup,
) -> Result<HotWriterHandle> {
    check_no_orphans(&store, &tail)?;
    let mut samplers = Vec::with_capacity(store.shards());
    // The memory bound is the node's: each shard gets its share.
    let mut cfg = (*tail.cfg).clone();
    cfg.max_pending_bytes /= store.shards() as u64;
    let cfg = Arc::new(cfg);
    for shard in 0..store.shards() {
        samplers.push(Some(TailSampler::open(
            &tailsampling::shard_dir(&store.dir, shard),
            cfg.clone(),
            tail.quantiles.clone(),
            store.storage.fsync,
            tailsampling::now_ms(),
        )?));
    }
    Ok(start_inner(
        store,
        root,
        RestartBackoff::default(),
        samplers,
    ))
}

/// Pending logs of shards beyond `storage.writer_shards` (the count was
/// lowered): removed when nothing in them waits, else start-up stops
/// rather than leave acknowledged spans undecided.
fn check_no_orphans(store: &HotStore, tail: &TailSetup) -> Result<()> {
    let root = store.dir.join("tail");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    for e in entries {
        let path = e?.path();
        let Some(shard) = path
            .file_name()
            .and_then(|n| n.to_str()?.parse::<usize>().ok())
        else {
            continue;
        };
        if shard < store.shards() {
            continue;
        }
        let t = TailSampler::open(&path, tail.cfg.clone(), tail.quantiles.clone(), false, 0)?;
        let waiting = t.waiting_traces();
        drop(t);
        if waiting > 0 {
            return Err(Error::config(
                "storage.writer_shards",
                format!(
                    "{waiting} traces wait for a tail-sampling decision in {} (shard {shard}); \
                     start with the previous shard count to let them drain, or delete that directory to give them up",
                    path.display()
                ),
            ));
        }
        std::fs::remove_dir_all(&path)?;
    }
    Ok(())
}
