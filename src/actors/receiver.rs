//! `OtlpReceiver`: the actor both OTLP servers hand decoded requests to. It
//! validates, scrubs and samples them (crate::ingest::pipeline), writes the
//! result to the sink, and replies only once `sink.write` returned, i.e.
//! once the spans are durable. The request's in-flight byte permit travels
//! inside the message and is released when the reply is decided.
//!
//! Supervised: a terminal sink error (`Internal`, `Corrupt`) stops the actor
//! after replying, and the `Supervisor` restarts it with its state (budget,
//! sampler) intact, after a capped backoff (`restart_backoff`). Requests in
//! flight at that moment are answered UNAVAILABLE / 503 and retried by the
//! client.

use actix::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ingest::admission::{Admission, InflightPermit};
use crate::ingest::pipeline::{Processed, Processor};
use crate::ingest::{Transport, TransportMetrics};
use crate::metrics::ActorStats;
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::store::SpanWriter;

/// Messages waiting beyond this make senders wait (the byte budget is the
/// real bound; this only caps the queue's length).
pub const MAILBOX_CAPACITY: usize = 1024;

/// Requests with more spans than this are processed on the blocking pool,
/// so a 16 MiB request never stalls the actor's thread.
const BLOCKING_SPANS: usize = 1024;

/// Command: validate, scrub, sample and durably write one request.
#[derive(Message)]
#[rtype(result = "Result<ExportOutcome>")]
pub struct ExportTraces {
    pub request: ExportTraceServiceRequest,
    pub transport: Transport,
    /// Released when the outcome is known (the data is durable or failed).
    pub permit: Option<InflightPermit>,
}

/// What the client is told (OTLP partial success).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    pub accepted: u64,
    pub rejected: u64,
    /// Empty on full success; otherwise explains rejections/truncations.
    pub message: String,
}

/// Query: the receiver's shared in-flight budget (servers ask once).
#[derive(Message)]
#[rtype(result = "Arc<Admission>")]
pub struct GetAdmission;

pub struct OtlpReceiver {
    processor: Arc<Processor>,
    sink: Arc<dyn SpanWriter>,
    admission: Arc<Admission>,
    stats: Arc<ActorStats>,
    /// Consecutive terminal sink failures (reset by a successful write).
    failures: u32,
}

impl OtlpReceiver {
    pub fn new(cfg: &Config, sink: Arc<dyn SpanWriter>) -> OtlpReceiver {
        OtlpReceiver {
            processor: Arc::new(Processor::new(cfg)),
            sink,
            admission: Admission::new(cfg.ingest.max_inflight_bytes),
            stats: ActorStats::get("receiver"),
            failures: 0,
        }
    }
}

/// Starts the supervised receiver (call inside an actix System).
pub fn start_receiver(cfg: &Config, sink: Arc<dyn SpanWriter>) -> Addr<OtlpReceiver> {
    let receiver = OtlpReceiver::new(cfg, sink);
    Supervisor::start(move |_| receiver)
}

impl Actor for OtlpReceiver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if self.failures > 0 {
            // Restarted after a failure: hold the mailbox (senders wait)
            // for a capped backoff before touching the sink again.
            ctx.wait(actix::fut::wrap_future(tokio::time::sleep(
                restart_backoff(self.failures),
            )));
        }
    }
}

impl Supervised for OtlpReceiver {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.stats.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "receiver restarting after: {}",
            self.stats.last_error.lock()
        );
    }
}

impl Handler<GetAdmission> for OtlpReceiver {
    type Result = MessageResult<GetAdmission>;

    fn handle(&mut self, _: GetAdmission, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.admission.clone())
    }
}

impl Handler<ExportTraces> for OtlpReceiver {
    type Result = ResponseActFuture<Self, Result<ExportOutcome>>;

    fn handle(&mut self, msg: ExportTraces, _: &mut Self::Context) -> Self::Result {
        self.stats.messages_in.fetch_add(1, Ordering::Relaxed);
        let depth = DepthGuard::new(self.stats.clone());
        let processor = self.processor.clone();
        let sink = self.sink.clone();
        let ExportTraces {
            request,
            transport,
            permit,
        } = msg;
        let work = async move {
            let n: usize = request
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum();
            let processed: Processed = if n > BLOCKING_SPANS {
                tokio::task::spawn_blocking(move || processor.process(request))
                    .await
                    .map_err(|e| Error::Internal(format!("ingest pipeline task failed: {e}")))?
            } else {
                processor.process(request)
            };
            let m = TransportMetrics::get(transport);
            m.spans_received.add(processed.received);
            m.spans_rejected.add(processed.rejected);
            let accepted = processed.received - processed.rejected;
            if !processed.spans.is_empty() {
                sink.write(processed.spans).await?;
            }
            m.spans_accepted.add(accepted);
            // Durable: the bytes leave the budget now.
            drop(permit);
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
                    act.stats.messages_out.fetch_add(1, Ordering::Relaxed);
                    match &res {
                        Ok(_) => act.failures = 0,
                        Err(e) => {
                            act.stats.record_error(e);
                            if matches!(e, Error::Internal(_) | Error::Corrupt(_)) {
                                tracing::error!(
                                    "receiver stopping after a terminal sink error: {e}"
                                );
                                act.failures = act.failures.saturating_add(1);
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
struct DepthGuard(Arc<ActorStats>);

impl DepthGuard {
    fn new(stats: Arc<ActorStats>) -> DepthGuard {
        stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        DepthGuard(stats)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.0.queue_depth.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Pause before serving again after the n-th consecutive terminal failure:
/// 100 ms doubling, capped at 5 s, so a broken sink is not hammered.
pub fn restart_backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << failures.saturating_sub(1).min(6));
    Duration::from_millis(ms.min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(restart_backoff(1), Duration::from_millis(100));
        assert_eq!(restart_backoff(2), Duration::from_millis(200));
        assert_eq!(restart_backoff(6), Duration::from_millis(3_200));
        assert_eq!(restart_backoff(7), Duration::from_secs(5));
        assert_eq!(restart_backoff(u32::MAX), Duration::from_secs(5));
    }
}
