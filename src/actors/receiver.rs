//! The receiver pool: `ingest.workers` `ReceiverWorker` actors, each on an
//! arbiter thread of its own (`receiver-N`), so the per-request work —
//! decode, validate, scrub, sample, convert (`crate::pipeline`) — runs on
//! as many threads as the machine has cores (the servers' threads only
//! move bytes).
//! A worker writes the result to the sink and replies only once
//! `sink.write` returned, i.e. once the spans are durable; the request's
//! in-flight hold travels inside the message and is released when the
//! reply is decided.
//!
//! Supervised: a terminal sink error (`Internal`, `Corrupt`) stops the
//! worker after replying; its `Supervisor` restarts it with its state
//! intact after the stage's backoff, and the tree hears of it. Requests in
//! flight on that worker are answered UNAVAILABLE / 503 and retried by the
//! client; the other workers go on.

use actix::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::supervise::{pause_then, RestartBackoff};
use super::tree::{RestartStage, Root, StageHandle};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::SpanWriter;
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::pipeline::{Processed, Processor, Transport, TransportMetrics};
use crate::spanmetrics::accum::{Accumulator, Hub};

/// Messages waiting per worker beyond this make senders wait (the byte
/// budget is the real bound; this only caps the queue's length).
pub const MAILBOX_CAPACITY: usize = 1024;

/// Held until the outcome of a request is known (its in-flight bytes).
pub type Hold = Box<dyn Send>;

/// A request body as received, decoded by the worker.
pub enum Payload {
    Protobuf(bytes::Bytes),
    Json(bytes::Bytes),
    /// Zipkin v2: a JSON list of spans, or a protobuf `ListOfSpans`.
    ZipkinJson(bytes::Bytes),
    ZipkinProtobuf(bytes::Bytes),
    Decoded(Box<ExportTraceServiceRequest>),
}

impl Payload {
    /// Bad protobuf or JSON (OTLP or Zipkin) is `InvalidArgument`.
    fn decode(self) -> Result<ExportTraceServiceRequest> {
        match self {
            Payload::Protobuf(b) => crate::otlp::decode_protobuf(&b),
            Payload::Json(b) => crate::otlp::json::decode_request(&b),
            Payload::ZipkinJson(b) => crate::ingest::zipkin::decode_json(&b),
            Payload::ZipkinProtobuf(b) => crate::ingest::zipkin::decode_protobuf(&b),
            Payload::Decoded(r) => Ok(*r),
        }
    }
}

/// Command: decode, validate, scrub, sample and durably write one request.
#[derive(Message)]
#[rtype(result = "Result<ExportOutcome>")]
pub struct ExportTraces {
    pub payload: Payload,
    pub transport: Transport,
    /// Released when the outcome is known (the data is durable or failed).
    pub hold: Option<Hold>,
    /// The authenticated ingest client (`[[ingest.clients]]` name), for
    /// stages that treat senders differently; `None` without ingest auth.
    pub client: Option<Arc<str>>,
}

/// What the client is told (OTLP partial success).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    pub accepted: u64,
    pub rejected: u64,
    /// Empty on full success; otherwise explains rejections/truncations.
    pub message: String,
}

pub struct ReceiverWorker {
    processor: Arc<Processor>,
    /// This worker's span-metrics counts (`None`: span metrics are off).
    metrics: Option<Arc<parking_lot::Mutex<Accumulator>>>,
    sink: Arc<dyn SpanWriter>,
    stage: StageHandle,
    backoff: RestartBackoff,
}

impl Actor for ReceiverWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        // Restarted after a failure: hold the mailbox (senders wait) for
        // the backoff before touching the sink again.
        if let Some(delay) = self.backoff.take_pending() {
            pause_then(ctx, delay, |act: &mut Self, _| act.stage.up());
        }
    }
}

impl Supervised for ReceiverWorker {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let d = self.backoff.arm();
        tracing::warn!(
            worker = %self.stage.name,
            delay_ms = d.as_millis() as u64,
            "receiver worker restarting after: {}",
            self.stage.stats.last_error.lock()
        );
    }
}

impl Handler<RestartStage> for ReceiverWorker {
    type Result = ();

    fn handle(&mut self, _: RestartStage, ctx: &mut Self::Context) {
        self.stage.restarting();
        ctx.stop();
    }
}

impl Handler<ExportTraces> for ReceiverWorker {
    type Result = ResponseActFuture<Self, Result<ExportOutcome>>;

    fn handle(&mut self, msg: ExportTraces, _: &mut Self::Context) -> Self::Result {
        let stats = self.stage.stats.clone();
        stats.messages_in.fetch_add(1, Ordering::Relaxed);
        let depth = DepthGuard::new(stats);
        let processor = self.processor.clone();
        let metrics = self.metrics.clone();
        let sink = self.sink.clone();
        let ExportTraces {
            payload,
            transport,
            hold,
            client: _,
        } = msg;
        let work = async move {
            // Timed only while a self-trace could start (one atomic load).
            let mut timing = crate::selftrace::Pending::begin();
            // On this worker's own thread: the pool is what spreads it.
            let req = payload.decode()?;
            crate::selftrace::phase(&mut timing, "decode");
            let processed: Processed = match &metrics {
                Some(m) => processor.process_counting(req, Some(&mut m.lock())),
                None => processor.process(req),
            };
            crate::selftrace::phase(&mut timing, "process");
            let m = TransportMetrics::get(transport);
            m.spans_received.add(processed.received);
            m.spans_rejected.add(processed.rejected);
            let accepted = processed.received - processed.rejected;
            // strand's own spans coming back in are never traced.
            let trace = timing
                .filter(|_| !crate::selftrace::is_self_only(&processed.spans))
                .and_then(|t| crate::selftrace::ingest_trace(t, transport.label(), &processed));
            if !processed.spans.is_empty() {
                match &trace {
                    Some(t) => {
                        crate::selftrace::durable_write(t, sink.write(processed.spans)).await?
                    }
                    None => sink.write(processed.spans).await?,
                }
            }
            m.spans_accepted.add(accepted);
            // Durable: the bytes leave the budget now.
            drop(hold);
            Ok(ExportOutcome {
                accepted,
                rejected: processed.rejected,
                message: processed.message,
            })
        };
        Box::pin(
            work.into_actor(self)
                .map(move |res: Result<ExportOutcome>, act, ctx| {
                    drop(depth);
                    act.stage.stats.messages_out.fetch_add(1, Ordering::Relaxed);
                    match &res {
                        Ok(_) => act.backoff.succeeded(),
                        Err(e) => {
                            act.stage.stats.record_error(e);
                            if matches!(e, Error::Internal(_) | Error::Corrupt(_)) {
                                tracing::error!(
                                    "receiver worker stopping after a terminal sink error: {e}"
                                );
                                act.stage.failed(e);
                                ctx.stop();
                            }
                        }
                    }
                    res
                }),
        )
    }
}

/// Counts a request as in progress (`queue_depth`) until it is answered or
/// dropped with a stopping actor.
struct DepthGuard(Arc<crate::metrics::ActorStats>);

impl DepthGuard {
    fn new(stats: Arc<crate::metrics::ActorStats>) -> DepthGuard {
        stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        DepthGuard(stats)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.0.queue_depth.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The handle the OTLP servers send requests through: round-robin over
/// the workers. Cheap to clone.
#[derive(Clone)]
pub struct ReceiverPool {
    workers: Arc<Vec<Addr<ReceiverWorker>>>,
    next: Arc<AtomicUsize>,
}

impl ReceiverPool {
    /// Starts `cfg.ingest.worker_count()` workers, each on its own arbiter,
    /// registered under the root's `ingest` group (or detached without a
    /// root, for tests of the servers alone). Call inside an actix System.
    pub fn start(cfg: &Config, sink: Arc<dyn SpanWriter>, root: Option<&Addr<Root>>) -> Self {
        Self::start_counting(cfg, sink, root, None)
    }

    /// [`Self::start`], each worker counting span metrics into its own
    /// accumulator of `metrics`.
    pub fn start_counting(
        cfg: &Config,
        sink: Arc<dyn SpanWriter>,
        root: Option<&Addr<Root>>,
        metrics: Option<&Hub>,
    ) -> Self {
        let processor = Arc::new(Processor::new(cfg));
        let n = cfg.ingest.worker_count().max(1);
        let workers = (0..n)
            .map(|i| {
                let name = format!("receiver-{i}");
                let arbiter = Arbiter::new();
                let thread = name.clone();
                arbiter.spawn_fn(move || super::name_thread(&thread));
                let stage = StageHandle::new(root, "ingest", name);
                let (processor, sink) = (processor.clone(), sink.clone());
                let worker = ReceiverWorker {
                    processor,
                    metrics: metrics.map(Hub::worker),
                    sink,
                    stage: stage.clone(),
                    backoff: RestartBackoff::default(),
                };
                // Set before the actor runs: requests may arrive first.
                let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |ctx| {
                    ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
                    worker
                });
                stage.register(Some(addr.clone().recipient()));
                addr
            })
            .collect();
        ReceiverPool {
            workers: Arc::new(workers),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Hands a request to the next worker and waits for the durable reply.
    pub async fn export(&self, msg: ExportTraces) -> Result<ExportOutcome> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        self.workers[i]
            .send(msg)
            .await
            .map_err(|e| Error::Unavailable(format!("receiver unavailable: {e}")))?
    }
}
