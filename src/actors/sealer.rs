//! `SegmentSealer`: turns frozen in-memory segments into sealed segment
//! files (Arrow IPC + index, fsync, manifest swap, WAL delete) and applies
//! retention. It runs on a `SyncArbiter` pool (`sealer-N`) because all of
//! that is blocking file I/O, and sealing is the heaviest single job of
//! ingest; segments are sealed in parallel, each by one thread (the store
//! locks per segment). A `SyncArbiter` makes a fresh actor when one
//! stops, which is how a group restart reaches it. `RetentionJanitor` is
//! the timer that asks it to enforce retention. Both are stages of the
//! `storage` group: a failed seal or retention pass is reported to the tree
//! (and retried by the writer's tick).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::tree::{RestartStage, StageHandle};
use crate::error::Result;
use crate::metrics::{ActorStats, Counter};
use crate::store::active::MemSegment;
use crate::store::hot::{HotStore, SealInfo};

/// Command: seal this frozen segment.
#[derive(Message)]
#[rtype(result = "Result<Option<SegmentSealed>>")]
pub struct SealSegment {
    pub segment: Arc<MemSegment>,
}

/// Event: a segment is sealed, listed in the manifest, its WAL deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSealed(pub SealInfo);

/// Command: delete segments past retention or over the disk budget.
#[derive(Message)]
#[rtype(result = "Result<Vec<u64>>")]
pub struct EnforceRetention {
    pub now_ns: u64,
}

pub struct SegmentSealer {
    store: Arc<HotStore>,
    stage: StageHandle,
    stats: Arc<ActorStats>,
    sealed: Counter,
    expired: Counter,
}

impl SegmentSealer {
    pub fn new(store: Arc<HotStore>, stage: StageHandle) -> SegmentSealer {
        SegmentSealer {
            store,
            stats: stage.stats.clone(),
            stage,
            sealed: Counter::new(
                "strand_store_segments_sealed_total",
                "segments sealed to disk",
                &[],
            ),
            expired: Counter::new(
                "strand_store_segments_expired_total",
                "sealed segments deleted by retention",
                &[],
            ),
        }
    }
}

impl Actor for SegmentSealer {
    type Context = SyncContext<Self>;

    /// Also after a restart: the SyncArbiter starts a fresh sealer.
    fn started(&mut self, _: &mut Self::Context) {
        self.stage.up();
    }
}

impl Handler<SealSegment> for SegmentSealer {
    type Result = Result<Option<SegmentSealed>>;

    fn handle(&mut self, msg: SealSegment, _: &mut Self::Context) -> Self::Result {
        self.stats.messages_in.fetch_add(1, Ordering::Relaxed);
        let trace = crate::selftrace::Pending::begin()
            .and_then(|p| crate::selftrace::hooks::seal_trace(p, msg.segment.id));
        // Inside the span: the log lines below carry its ids.
        let _in_span = trace.as_ref().map(|t| t.context().clone().attach());
        let res = self.store.seal(&msg.segment);
        if let (Some(t), Ok(Some(info))) = (&trace, &res) {
            t.set_attribute(opentelemetry::KeyValue::new(
                "strand.rows",
                info.rows as i64,
            ));
        }
        if let (Some(t), Err(e)) = (&trace, &res) {
            t.set_error(e.to_string());
        }
        match &res {
            Ok(Some(info)) => {
                self.sealed.inc();
                self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    segment = info.id,
                    rows = info.rows,
                    bytes = info.bytes,
                    "segment sealed"
                );
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(segment = msg.segment.id, error = %e, "sealing failed; will retry");
                self.stage.failed(e);
            }
        }
        res.map(|o| o.map(SegmentSealed))
    }
}

impl Handler<EnforceRetention> for SegmentSealer {
    type Result = Result<Vec<u64>>;

    fn handle(&mut self, msg: EnforceRetention, _: &mut Self::Context) -> Self::Result {
        let res = self.store.enforce_retention(msg.now_ns);
        match &res {
            Ok(ids) if !ids.is_empty() => {
                self.expired.add(ids.len() as u64);
                tracing::info!(segments = ?ids, "retention deleted segments");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "retention failed");
                self.stage.failed(e);
            }
        }
        res
    }
}

impl Handler<RestartStage> for SegmentSealer {
    type Result = ();

    fn handle(&mut self, _: RestartStage, ctx: &mut Self::Context) {
        self.stage.restarting();
        ctx.stop(); // the SyncArbiter builds a fresh sealer
    }
}

/// Starts the sealer pool (`sealer-N` threads: as many as write shards,
/// at least two, so segments frozen together are sealed together) and
/// lists it in the tree.
pub fn start_sealer(store: Arc<HotStore>, stage: StageHandle) -> Addr<SegmentSealer> {
    let s = stage.clone();
    let threads = store.shards().max(2);
    let n = std::sync::atomic::AtomicUsize::new(0);
    let addr = SyncArbiter::start_with_thread_builder(
        threads,
        move || {
            let i = n.fetch_add(1, Ordering::Relaxed);
            std::thread::Builder::new().name(format!("sealer-{i}"))
        },
        move || SegmentSealer::new(store.clone(), s.clone()),
    );
    stage.register(Some(addr.clone().recipient()));
    addr
}

/// Periodically asks the sealer to enforce retention.
pub struct RetentionJanitor {
    sealer: Addr<SegmentSealer>,
    interval: Duration,
    stage: StageHandle,
}

impl RetentionJanitor {
    pub fn new(
        sealer: Addr<SegmentSealer>,
        interval: Duration,
        stage: StageHandle,
    ) -> RetentionJanitor {
        RetentionJanitor {
            sealer,
            interval,
            stage,
        }
    }
}

impl Actor for RetentionJanitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, _| {
            act.sealer.do_send(EnforceRetention {
                now_ns: crate::model::now_ns(),
            });
        });
    }
}

impl Supervised for RetentionJanitor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.stage.up();
    }
}

impl Handler<RestartStage> for RetentionJanitor {
    type Result = ();

    fn handle(&mut self, _: RestartStage, ctx: &mut Context<Self>) {
        self.stage.restarting();
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IndexConfig, StorageConfig};
    use crate::store::hot::Batch;
    use crate::store::testutil::span;

    #[actix_rt::test]
    async fn seals_idempotently_and_enforces_retention() {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageConfig {
            dir: dir.path().to_path_buf(),
            max_disk_bytes: u64::MAX,
            ..Default::default()
        };
        let store = HotStore::open(&storage, &IndexConfig::default()).unwrap();
        store
            .commit(
                0,
                vec![Batch::new((0..10).map(|i| span(1, i, "a", "op")).collect())],
            )
            .unwrap();
        let seg = store.rotate(0).unwrap().unwrap();
        let sealer = start_sealer(
            store.clone(),
            StageHandle::new(None, "storage", "sealer_test"),
        );
        let first = sealer
            .send(SealSegment {
                segment: seg.clone(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.map(|s| s.0.rows), Some(10));
        assert_eq!(
            sealer
                .send(SealSegment { segment: seg })
                .await
                .unwrap()
                .unwrap(),
            None
        );
        assert_eq!(store.sealed_ids().len(), 1);
        // Spans start near t=1ms: far past any retention window "now".
        let gone = sealer
            .send(EnforceRetention {
                now_ns: crate::model::now_ns(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(gone.len(), 1);
        assert!(store.sealed_ids().is_empty());
        assert!(
            std::fs::read_dir(dir.path().join("segments"))
                .unwrap()
                .next()
                .is_none(),
            "files deleted"
        );
    }
}
