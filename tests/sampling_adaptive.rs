//! Adaptive sampling for real: `strand serve` takes a steady stream of
//! root SERVER spans of one operation, then ten times as many. The served
//! probability (`GET /sampling?service=`, perOperationStrategies) follows,
//! so that the stored rate comes back within 20% of the target within a
//! bounded number of intervals, and the spans the receiver then stores
//! (sent − sampled out, over a window) are at the target within 20%.
//! Two receivers sharing global totals are covered by the controller's
//! unit tests (strategies::adaptive); docs/SAMPLING.md says why.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use rand::{RngCore, SeedableRng};

use common::http::metric;
use common::otlp::{post, request, Span};
use common::process::Strand;
use common::sampling::{probability_of, served};
use common::wait;

const TARGET: f64 = 20.0;
const INTERVAL_MS: u64 = 1000;

/// Sends `rate` root spans per second (in ten batches a second) until
/// dropped; `sent` counts what was acknowledged.
fn traffic(
    http: String,
    rate: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut rng = rand::rngs::StdRng::from_entropy();
        loop {
            tick.tick().await;
            let n = rate.load(Ordering::Relaxed) / 10;
            let now = strand::model::now_ns();
            let spans: Vec<Span> = (0..n)
                .map(|_| {
                    let mut id = vec![0u8; 16];
                    rng.fill_bytes(&mut id);
                    Span {
                        trace_id: id,
                        span_id: rng.next_u64().max(1).to_be_bytes().to_vec(),
                        name: "checkout".into(),
                        kind: 2,
                        flags: 0x03,
                        start_time_unix_nano: now,
                        end_time_unix_nano: now + 1_000_000,
                        ..Default::default()
                    }
                })
                .collect();
            let body = request("shop", spans).encode_to_vec();
            if let Ok(r) = post(&client, &http, body).await {
                if r.status() == 200 {
                    sent.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    })
}

async fn served_p(s: &Strand) -> Option<f64> {
    let (code, v) = served(&s.sampling, "/sampling", "shop").await;
    (code == 200 && v["operationSampling"].is_object()).then(|| probability_of(&v, "checkout"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenfold_shift_converges_back_to_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[span_metrics]\nflush_interval_ms = 200\n\n[sampling.adaptive]\nenabled = true\n\
         target_traces_per_sec = {TARGET}\ninterval_ms = {INTERVAL_MS}\nsmoothing = 0.5\n"
    );
    let s = Strand::start(dir.path(), &cfg);
    let (rate, sent) = (Arc::new(AtomicU64::new(100)), Arc::new(AtomicU64::new(0)));
    let gen = traffic(s.http.clone(), rate.clone(), sent.clone());

    // 100 traces/s: the probability settles near 20 / 100.
    let within = |p: f64, offered: f64| (offered * p - TARGET).abs() <= 0.2 * TARGET;
    wait::until(
        "p to settle at 100/s",
        Duration::from_secs(60),
        async || served_p(&s).await.is_some_and(|p| within(p, 100.0)),
    )
    .await;

    // Ten times the traffic.
    rate.store(1000, Ordering::Relaxed);
    let shifted = Instant::now();
    wait::until(
        "p to follow the 10x shift",
        Duration::from_secs(60),
        async || served_p(&s).await.is_some_and(|p| within(p, 1000.0)),
    )
    .await;
    let took = shifted.elapsed();
    let intervals = took.as_millis() as f64 / INTERVAL_MS as f64;
    println!("converged after {took:?} ({intervals:.1} intervals)");
    assert!(intervals <= 10.0, "{took:?}");

    // What the receivers store now: sent − sampled out, over 10 s.
    let out = || metric(&s.query, "strand_ingest_spans_sampled_out_total");
    let (t0, sent0, out0) = (Instant::now(), sent.load(Ordering::Relaxed), out().await);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (sent1, out1) = (sent.load(Ordering::Relaxed), out().await);
    let secs = t0.elapsed().as_secs_f64();
    let stored = (sent1 - sent0).saturating_sub(out1 - out0) as f64 / secs;
    let offered = (sent1 - sent0) as f64 / secs;
    println!("offered {offered:.0}/s, stored {stored:.1}/s");
    assert!(offered > 500.0, "the generator kept up: {offered}/s");
    assert!(
        (stored - TARGET).abs() <= 0.2 * TARGET,
        "stored {stored:.1}/s of {offered:.0}/s offered"
    );
    gen.abort();
}
