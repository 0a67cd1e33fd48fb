//! Head-sampling ratios nest. Traces an OpenTelemetry Rust SDK kept with
//! `TraceIdRatioBased(0.1)` are sent to two `strand serve` processes at
//! `sampling.ratio = 0.5`: both keep exactly the same traces — those whose
//! 56 low trace-id bits clear strand's threshold — a subset of what the
//! SDK kept, about 5% of all traces.
//!
//! Why 5% and not 10%: the SDK 0.33's TraceIdRatioBased is the legacy
//! algorithm (keep iff the trace id's low 8 bytes, shifted right by one,
//! are below `p × 2^63`), which reads mostly byte 8 — a byte strand's
//! 56-bit randomness (bytes 9..16) does not contain — so the two decisions
//! are independent and the ratios multiply. With a consistent SDK (one
//! that keeps iff R >= T and says so with `ot=th:`), strand at 0.5 keeps
//! every trace the SDK kept at 0.1: the second half of the test.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use prost::Message;

use common::http::get_json;
use common::jaeger::trace_ids;
use common::otlp::{post, request, Span};
use common::process::Strand;
use common::wait;
use strand::pipeline::consistent;

const WITHIN: Duration = Duration::from_secs(60);

/// What strand stores of `service`, as trace ids (hex).
async fn stored(query: &str, service: &str) -> BTreeSet<String> {
    let url = format!("{query}/api/traces?service={service}&limit=1500&lookback=1h");
    let (code, body) = get_json(&url).await;
    assert_eq!(code, 200, "{body}");
    trace_ids(&body).into_iter().collect()
}

fn root_span(id: &[u8; 16], i: u64, tracestate: &str) -> Span {
    let now = strand::model::now_ns();
    Span {
        trace_id: id.to_vec(),
        span_id: (i + 1).to_be_bytes().to_vec(),
        name: "GET /nest".into(),
        kind: 2,
        start_time_unix_nano: now,
        end_time_unix_nano: now + 1_000_000,
        trace_state: tracestate.into(),
        // sampled, and the W3C Level 2 random flag
        flags: 0x03,
        ..Default::default()
    }
}

async fn send(http: &str, service: &str, spans: &[Span]) {
    let client = reqwest::Client::new();
    for chunk in spans.chunks(500) {
        let body = request(service, chunk.to_vec()).encode_to_vec();
        let r = post(&client, http, body).await.expect("posted");
        assert_eq!(r.status(), 200);
    }
}

async fn wait_stored(s: &Strand, service: &str, want: &BTreeSet<String>) -> BTreeSet<String> {
    let got = wait::value("the kept traces to be served", WITHIN, async || {
        let got = stored(&s.query, service).await;
        (got.len() >= want.len()).then_some(got)
    })
    .await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_ratio_then_strand_ratio_keep_a_consistent_subset_on_two_processes() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = "[sampling]\nratio = 0.5\nkeep_errors = false\n";
    let (a, b) = (Strand::start(d1.path(), cfg), Strand::start(d2.path(), cfg));

    // The SDK decides, with its own random ids.
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::TraceIdRatioBased(0.1))
        .build();
    let tracer = provider.tracer("nesting");
    let n = 10_000usize;
    let mut kept_by_sdk = Vec::new();
    for _ in 0..n {
        let span = tracer.start("GET /nest");
        let cx = span.span_context().clone();
        if cx.is_sampled() {
            kept_by_sdk.push(cx.trace_id().to_bytes());
        }
    }
    let spans: Vec<Span> = kept_by_sdk
        .iter()
        .enumerate()
        .map(|(i, id)| root_span(id, i as u64, ""))
        .collect();
    send(&a.http, "nesting", &spans).await;
    send(&b.http, "nesting", &spans).await;

    // The consistent rule at 0.5: R = the low 56 bits, kept iff R >= 2^55.
    let t = consistent::threshold(0.5);
    let want: BTreeSet<String> = kept_by_sdk
        .iter()
        .filter(|id| consistent::trace_id_randomness(&id[..]) >= t)
        .map(hex::encode)
        .collect();
    let in_a = wait_stored(&a, "nesting", &want).await;
    let in_b = wait_stored(&b, "nesting", &want).await;
    assert_eq!(in_a, want, "strand A keeps exactly the consistent subset");
    assert_eq!(in_b, in_a, "two processes decide alike");
    let sdk: BTreeSet<String> = kept_by_sdk.iter().map(hex::encode).collect();
    assert!(in_a.is_subset(&sdk));
    // 10000 × 0.1 × 0.5, within 5 standard deviations (sd ≈ 21.8).
    let sd = (n as f64 * 0.05 * 0.95).sqrt();
    let k = in_a.len() as f64;
    assert!(
        (k - n as f64 * 0.05).abs() <= 5.0 * sd,
        "kept {k} of {n}, SDK kept {}",
        sdk.len()
    );

    // A consistent SDK at 0.1 (keep iff R >= T(0.1), announced as th):
    // strand at 0.5 keeps every one of its traces.
    let t01 = consistent::threshold(0.1);
    let th = format!("ot=th:{}", consistent::format_th(t01));
    let mut x = 0x853c_49e6_748f_ea9bu64;
    let mut consistent_ids = Vec::new();
    while consistent_ids.len() < 800 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&x.rotate_left(17).to_be_bytes());
        id[8..].copy_from_slice(&x.to_be_bytes());
        if consistent::trace_id_randomness(&id) >= t01 {
            consistent_ids.push(id);
        }
    }
    let spans: Vec<Span> = consistent_ids
        .iter()
        .enumerate()
        .map(|(i, id)| root_span(id, i as u64, &th))
        .collect();
    send(&a.http, "nesting-th", &spans).await;
    let all: BTreeSet<String> = consistent_ids.iter().map(hex::encode).collect();
    assert_eq!(wait_stored(&a, "nesting-th", &all).await, all);
    let _ = provider.shutdown();
}
