//! What the receivers count per transport: spans received, accepted and
//! rejected, request bytes, and the latency of answered requests.

use std::sync::OnceLock;
use std::time::Duration;

use crate::metrics::Counter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
    /// Zipkin v2 `POST /api/v2/spans`.
    Zipkin,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
            Transport::Zipkin => "zipkin",
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
        static ZIPKIN: OnceLock<TransportMetrics> = OnceLock::new();
        let cell = match t {
            Transport::Grpc => &GRPC,
            Transport::Http => &HTTP,
            Transport::Zipkin => &ZIPKIN,
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
