//! The Elasticsearch sink's stages, both in the tree's `search` group.
//! `EsWriterHandle::write` makes spans durable in the on-disk backlog and
//! returns, so indexing never blocks ingest; the supervised `EsWriter`
//! actor installs the index template and drains the backlog with `_bulk`
//! (see `elasticsearch::writer`). A failed drain loop is reported to the
//! tree, stops the actor, and its supervisor restarts it after a capped
//! backoff; it restarts itself only (a group restart must not drop a bulk
//! in flight). `EsJanitor` deletes daily indices past retention.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use async_trait::async_trait;
use tokio::sync::{watch, Notify};

use crate::actors::tree::{RestartStage, Root, StageHandle};
use crate::backoff::Backoff;
use crate::config::{ElasticsearchConfig, IndexConfig};
use crate::elasticsearch::backlog::{Backlog, Pending, DEFAULT_SEGMENT_BYTES};
use crate::elasticsearch::deadletter::DeadLetterFile;
use crate::elasticsearch::writer::{BulkFlusher, FlushLimits, Step};
use crate::elasticsearch::{client, document, janitor, mapping};
use crate::error::{Error, Result};
use crate::metrics::{ActorStats, Counter};
use crate::model::{now_ns, Span, SpanWriter};

pub const ACTOR_NAME: &str = "es_writer";
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Wake up this often even without news, to refresh gauges.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// How spans become bulk entries (shared by the handle's callers).
struct Encoder {
    prefix: String,
    allow_list: HashSet<String>,
    route_by_trace_id: bool,
}

impl Encoder {
    fn entries(&self, spans: &[Span]) -> Result<Vec<Vec<u8>>> {
        spans
            .iter()
            .map(|s| {
                document::bulk_entry(&self.prefix, s, &self.allow_list, self.route_by_trace_id)
            })
            .collect()
    }
}

struct Shared {
    wake: Notify,
    shutdown: watch::Sender<bool>,
    stopped: watch::Sender<bool>,
    stats: Arc<ActorStats>,
    stage: StageHandle,
}

impl Shared {
    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The write side of the Elasticsearch tier.
pub struct EsWriterHandle {
    backlog: Arc<Backlog>,
    encoder: Arc<Encoder>,
    shared: Arc<Shared>,
    dead_letter_path: PathBuf,
    written: Counter,
    overloaded: Counter,
    _addr: Addr<EsWriter>,
}

/// Starts the writer over the backlog in `data_dir` (created if needed).
/// Must run inside an actix `System`. Elasticsearch need not be reachable:
/// writes go to the backlog and are indexed once it is.
pub fn start_es_writer(
    cfg: &ElasticsearchConfig,
    index: &IndexConfig,
    data_dir: &Path,
    root: Option<&Addr<Root>>,
) -> Result<EsWriterHandle> {
    cfg.validate()?;
    let backlog = Arc::new(Backlog::open(
        &data_dir.join("backlog"),
        cfg.backlog_max_bytes,
        DEFAULT_SEGMENT_BYTES,
    )?);
    let dead_letter_path = data_dir.join("dead-letter.jsonl");
    let dead = DeadLetterFile::open(&dead_letter_path)?;
    let stage = StageHandle::new(root, "search", ACTOR_NAME);
    let stats = stage.stats.clone();
    let limits = FlushLimits {
        max_docs: cfg.bulk_max_docs,
        max_bytes: cfg.bulk_max_bytes,
        max_delay: Duration::from_millis(cfg.bulk_max_delay_ms),
    };
    let es = client(cfg)?;
    let flusher = BulkFlusher::new(es.clone(), backlog.clone(), dead, limits, stats.clone());
    let shared = Arc::new(Shared {
        wake: Notify::new(),
        shutdown: watch::channel(false).0,
        stopped: watch::channel(false).0,
        stats,
        stage: stage.clone(),
    });
    let actor_shared = shared.clone();
    let (cfg_owned, keys) = (cfg.clone(), index.attribute_keys.clone());
    let janitor = StageHandle::new(root, "search", "es_janitor");
    let janitor_addr = Supervisor::start({
        let (client, cfg, janitor) = (es, cfg.clone(), janitor.clone());
        move |_| EsJanitor {
            client,
            cfg,
            stage: janitor,
        }
    });
    janitor.register(Some(janitor_addr.recipient()));
    let addr = Supervisor::start(move |_| EsWriter {
        flusher: Some(flusher),
        shared: actor_shared,
        cfg: cfg_owned,
        attribute_keys: keys,
        restart_backoff: Backoff::new(Duration::from_millis(100), RESTART_BACKOFF_MAX),
        restart_delay: Duration::ZERO,
    });
    stage.register(None);
    let encoder = Encoder {
        prefix: cfg.index_prefix.clone(),
        allow_list: index.attribute_keys.iter().cloned().collect(),
        route_by_trace_id: cfg.route_by_trace_id,
    };
    Ok(EsWriterHandle {
        backlog,
        encoder: Arc::new(encoder),
        shared,
        dead_letter_path,
        written: Counter::new(
            "strand_es_spans_accepted_total",
            "spans made durable in the elasticsearch backlog",
            &[],
        ),
        overloaded: Counter::new(
            "strand_es_writes_rejected_total",
            "writes refused because the elasticsearch backlog was full",
            &[],
        ),
        _addr: addr,
    })
}

impl EsWriterHandle {
    /// Where refused documents are written, one JSON object per line.
    pub fn dead_letter_path(&self) -> &Path {
        &self.dead_letter_path
    }

    /// Documents (and bytes) not yet indexed or dead-lettered.
    pub fn pending(&self) -> Pending {
        self.backlog.pending()
    }

    /// Stops accepting writes, stops the drain loop and releases the
    /// backlog (once this handle is dropped too). What is not yet indexed
    /// stays in the backlog for the next start.
    pub async fn shutdown(&self) {
        self.backlog.close();
        self.shared.shutdown.send_replace(true);
        self.shared.wake.notify_one();
        let mut rx = self.shared.stopped.subscribe();
        let _ = tokio::time::timeout(RESTART_BACKOFF_MAX * 2, rx.wait_for(|v| *v)).await;
        // A blocking read the drain loop started may still hold the backlog
        // for a moment after the loop is gone; released means released.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.backlog) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[async_trait]
impl SpanWriter for EsWriterHandle {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        if spans.is_empty() {
            return Ok(());
        }
        let n = spans.len() as u64;
        let (encoder, backlog) = (self.encoder.clone(), self.backlog.clone());
        // Encoding and the fsync are blocking work: off the async threads.
        let res = tokio::task::spawn_blocking(move || {
            backlog.append(&encoder.entries(&spans)?, now_ns())
        })
        .await
        .map_err(|e| Error::Internal(format!("elasticsearch backlog append: {e}")))?;
        match res {
            Ok(()) => {
                self.written.add(n);
                self.shared
                    .stats
                    .messages_in
                    .fetch_add(n, Ordering::Relaxed);
                self.shared.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                if matches!(e, Error::Overloaded(_)) {
                    self.overloaded.inc();
                }
                Err(e)
            }
        }
    }
}

pub struct EsWriter {
    /// Taken by the running drain loop, returned when it fails.
    flusher: Option<BulkFlusher>,
    shared: Arc<Shared>,
    cfg: ElasticsearchConfig,
    attribute_keys: Vec<String>,
    restart_backoff: Backoff,
    restart_delay: Duration,
}

impl Actor for EsWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.shared.shutting_down() {
            // Idle from now on; the flusher (and its backlog) is gone.
            self.flusher = None;
            self.shared.stopped.send_replace(true);
            return;
        }
        ctx.run_later(self.restart_delay, |act, ctx| {
            act.shared.stage.up();
            act.spawn_drain(ctx)
        });
    }
}

impl Supervised for EsWriter {}

impl EsWriter {
    fn spawn_drain(&mut self, ctx: &mut Context<Self>) {
        let Some(flusher) = self.flusher.take() else {
            return;
        };
        if self.shared.shutting_down() {
            ctx.stop();
            return;
        }
        let fut = run(
            flusher,
            self.shared.clone(),
            self.cfg.clone(),
            self.attribute_keys.clone(),
        );
        ctx.spawn(
            fut.into_actor(self)
                .map(|(flusher, res, ran_for), act, ctx| {
                    match res {
                        Ok(()) => drop(flusher), // shut down: release the backlog
                        Err(e) => {
                            tracing::error!(error = %e, "elasticsearch writer failed; restarting");
                            act.shared.stage.failed(&e);
                            act.flusher = Some(flusher);
                            if ran_for > RESTART_BACKOFF_MAX * 2 {
                                act.restart_backoff.reset();
                            }
                            act.restart_delay = act.restart_backoff.next_delay();
                        }
                    }
                    ctx.stop();
                }),
        );
    }
}

/// Deletes daily indices past `retention_days`, every
/// `janitor_interval_secs`. A failed pass is reported and tried again at
/// the next interval.
pub struct EsJanitor {
    client: elasticsearch::Elasticsearch,
    cfg: ElasticsearchConfig,
    stage: StageHandle,
}

impl EsJanitor {
    fn pass(&mut self, ctx: &mut Context<Self>) {
        let client = self.client.clone();
        let (prefix, days) = (self.cfg.index_prefix.clone(), self.cfg.retention_days);
        let stage = self.stage.clone();
        ctx.spawn(
            async move {
                match janitor::run_once(&client, &prefix, days, now_ns()).await {
                    Ok(_) => stage.up(),
                    Err(e) => {
                        tracing::warn!(error = %e, "elasticsearch janitor pass failed");
                        stage.failed(&e);
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for EsJanitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.pass(ctx);
        let every = Duration::from_secs(self.cfg.janitor_interval_secs);
        ctx.run_interval(every, |act, ctx| act.pass(ctx));
    }
}

impl Supervised for EsJanitor {}

impl Handler<RestartStage> for EsJanitor {
    type Result = ();

    fn handle(&mut self, _: RestartStage, ctx: &mut Context<Self>) {
        self.stage.restarting();
        ctx.stop();
    }
}

/// The drain loop, until shutdown (Ok) or an error worth a restart.
async fn run(
    mut flusher: BulkFlusher,
    shared: Arc<Shared>,
    cfg: ElasticsearchConfig,
    keys: Vec<String>,
) -> (BulkFlusher, Result<()>, Duration) {
    let t0 = Instant::now();
    let mut shutdown = shared.shutdown.subscribe();
    let res = tokio::select! {
        r = drain(&mut flusher, &shared, &cfg, &keys) => r,
        _ = shutdown.wait_for(|v| *v) => Ok(()),
    };
    (flusher, res, t0.elapsed())
}

async fn drain(
    flusher: &mut BulkFlusher,
    shared: &Shared,
    cfg: &ElasticsearchConfig,
    keys: &[String],
) -> Result<()> {
    // Nothing is indexed before the template is in place, or Elasticsearch
    // would guess the mapping of the first daily index.
    let mut backoff = Backoff::new(Duration::from_millis(100), RESTART_BACKOFF_MAX);
    loop {
        match mapping::install(flusher.client(), cfg, keys).await {
            Ok(()) => break,
            Err(e) if e.is_retryable() => {
                shared.stats.record_error(&e);
                // Keep the backlog gauges live while Elasticsearch is down.
                let until = tokio::time::Instant::now() + backoff.next_delay();
                while tokio::time::Instant::now() < until {
                    let _ = flusher.observe().await;
                    tokio::time::sleep_until(until.min(tokio::time::Instant::now() + IDLE_TICK))
                        .await;
                }
            }
            Err(e) => return Err(e),
        }
    }
    loop {
        let wait = match flusher.step().await? {
            Step::Idle => IDLE_TICK,
            Step::Wait(d) => d.min(IDLE_TICK),
            Step::Flushed(0) => Duration::from_millis(100),
            Step::Flushed(_) => continue,
        };
        let _ = tokio::time::timeout(wait, shared.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpanId, TraceId};

    fn spans(n: u64) -> Vec<Span> {
        (0..n)
            .map(|i| Span {
                trace_id: TraceId([1; 16]),
                span_id: SpanId((i + 1).to_be_bytes()),
                name: "op".into(),
                start_ns: 1_700_000_000_000_000_000 + i,
                end_ns: 1_700_000_000_000_000_100 + i,
                ..Default::default()
            })
            .collect()
    }

    #[actix_rt::test]
    async fn a_full_backlog_pushes_back_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens on port 9: nothing drains.
        let cfg = ElasticsearchConfig {
            url: "http://127.0.0.1:9".into(),
            bulk_max_bytes: 1024,
            backlog_max_bytes: 8 << 10,
            ..Default::default()
        };
        let index = IndexConfig::default();
        let w = start_es_writer(&cfg, &index, dir.path(), None).unwrap();
        let mut accepted = 0;
        let err = loop {
            match w.write(spans(3)).await {
                Ok(()) => accepted += 3,
                Err(e) => break e,
            }
            assert!(accepted < 10_000, "the backlog never filled");
        };
        assert!(
            matches!(err, Error::Overloaded(_)) && err.is_retryable(),
            "{err}"
        );
        let pending = w.pending();
        assert_eq!(pending.records, accepted);
        assert!(pending.bytes <= cfg.backlog_max_bytes);
        w.shutdown().await;
        drop(w);
        let w = start_es_writer(&cfg, &index, dir.path(), None).unwrap();
        assert_eq!(w.pending(), pending, "acknowledged spans survive a restart");
        w.shutdown().await;
    }
}
