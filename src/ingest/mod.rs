//! OTLP ingest: the gRPC (:4317) and HTTP (:4318) servers in front of the
//! `OtlpReceiver` actor. The servers authenticate, bound and decode
//! requests, take bytes from the shared in-flight budget, and await the
//! receiver's reply, which comes only once the spans are durable.
//! docs/INGEST.md lists every answer.

pub mod admission;
pub mod grpc;
pub mod http;
pub mod pipeline;

use actix::Addr;
use std::sync::OnceLock;
use std::time::Duration;

pub use crate::actors::receiver::{start_receiver, ExportOutcome, OtlpReceiver};
pub use grpc::{serve_grpc, serve_grpc_on};
pub use http::{http_server, http_server_on};

use crate::actors::receiver::ExportTraces;
use crate::error::{Error, Result};
use crate::metrics::Counter;
use crate::otlp::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use admission::InflightPermit;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

const LATENCY_BUCKETS: [(f64, &str); 11] = [
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (5.0, "5"),
    (f64::INFINITY, "+Inf"),
];

/// Per-transport ingest metrics, looked up once.
pub struct TransportMetrics {
    pub spans_received: Counter,
    pub spans_accepted: Counter,
    pub spans_rejected: Counter,
    pub request_bytes: Counter,
    latency_buckets: Vec<Counter>,
    latency_sum_us: Counter,
    latency_count: Counter,
    transport: Transport,
}

impl TransportMetrics {
    pub fn get(t: Transport) -> &'static TransportMetrics {
        static GRPC: OnceLock<TransportMetrics> = OnceLock::new();
        static HTTP: OnceLock<TransportMetrics> = OnceLock::new();
        let cell = match t {
            Transport::Grpc => &GRPC,
            Transport::Http => &HTTP,
        };
        cell.get_or_init(|| {
            let l = [("transport", t.label())];
            TransportMetrics {
                spans_received: Counter::new(
                    "strand_ingest_spans_received_total",
                    "spans in export requests",
                    &l,
                ),
                spans_accepted: Counter::new(
                    "strand_ingest_spans_accepted_total",
                    "spans accepted (durable or sampled out)",
                    &l,
                ),
                spans_rejected: Counter::new(
                    "strand_ingest_spans_rejected_total",
                    "spans rejected by validation",
                    &l,
                ),
                request_bytes: Counter::new(
                    "strand_ingest_request_bytes_total",
                    "decompressed request bytes received",
                    &l,
                ),
                latency_buckets: LATENCY_BUCKETS
                    .iter()
                    .map(|(_, le)| {
                        Counter::new(
                            "strand_ingest_export_duration_seconds_bucket",
                            "export requests answered within `le` seconds (cumulative)",
                            &[("transport", t.label()), ("le", le)],
                        )
                    })
                    .collect(),
                latency_sum_us: Counter::new(
                    "strand_ingest_export_duration_us_sum",
                    "total export latency, microseconds",
                    &l,
                ),
                latency_count: Counter::new(
                    "strand_ingest_export_duration_count",
                    "export requests answered",
                    &l,
                ),
                transport: t,
            }
        })
    }

    /// Records one answered request: its latency and outcome.
    pub fn finish(&self, elapsed: Duration, outcome: &str) {
        let secs = elapsed.as_secs_f64();
        for ((le, _), c) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *le {
                c.inc();
            }
        }
        self.latency_sum_us.add(elapsed.as_micros() as u64);
        self.latency_count.inc();
        Counter::new(
            "strand_ingest_requests_total",
            "export requests by transport and outcome",
            &[("transport", self.transport.label()), ("outcome", outcome)],
        )
        .inc();
    }
}

/// Outcome label for a result (the gRPC code name, snake-cased).
pub fn outcome_label(r: &Result<ExportOutcome>) -> &'static str {
    match r {
        Ok(o) if o.rejected > 0 => "partial",
        Ok(_) => "ok",
        Err(e) => match e.grpc_code() {
            tonic::Code::InvalidArgument => "invalid_argument",
            tonic::Code::ResourceExhausted => "resource_exhausted",
            tonic::Code::Unavailable => "unavailable",
            tonic::Code::Unauthenticated => "unauthenticated",
            _ => "internal",
        },
    }
}

/// Hands a decoded request to the receiver and waits for the durable reply.
pub async fn export(
    receiver: &Addr<OtlpReceiver>,
    request: ExportTraceServiceRequest,
    transport: Transport,
    permit: InflightPermit,
) -> Result<ExportOutcome> {
    let msg = ExportTraces {
        request,
        transport,
        permit: Some(permit),
    };
    receiver
        .send(msg)
        .await
        .map_err(|e| Error::Unavailable(format!("receiver unavailable: {e}")))?
}

/// The OTLP response: `partial_success` only when something was rejected
/// or changed (OTLP's "warning" is rejected_spans 0 with a message).
pub fn response_for(o: &ExportOutcome) -> ExportTraceServiceResponse {
    let partial = o.rejected > 0 || !o.message.is_empty();
    ExportTraceServiceResponse {
        partial_success: partial.then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(o.rejected).unwrap_or(i64::MAX),
            error_message: o.message.clone(),
        }),
    }
}

/// Work larger than this (bytes) is decoded on the blocking pool.
pub(crate) const BLOCKING_BYTES: usize = 256 << 10;

/// Decodes an OTLP protobuf body; errors are `InvalidArgument`.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    <ExportTraceServiceRequest as prost::Message>::decode(body)
        .map_err(|e| Error::InvalidArgument(format!("invalid OTLP protobuf body: {e}")))
}

/// Runs `f` inline when small, on the blocking pool when large.
pub(crate) async fn maybe_blocking<T: Send + 'static>(
    size: usize,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if size <= BLOCKING_BYTES {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("decode task failed: {e}")))?
}
