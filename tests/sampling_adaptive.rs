//! Adaptive sampling for real: `strand serve` takes a steady stream of
//! root SERVER spans of one operation, then ten times as many. The served
//! probability (`GET /sampling?service=`, perOperationStrategies) follows,
//! so that the stored rate comes back within 20% of the target within a
//! bounded number of intervals, and the spans the receiver then stores
//! (sent − sampled out, over a window) are at the target within 20%.
//! Two receivers in Kafka mode: tests/sampling_adaptive_kafka.rs.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::metric;
use common::process::Strand;
use common::sampling::{probability_of, served, traffic};
use common::wait;

const TARGET: f64 = 20.0;
const INTERVAL_MS: u64 = 1000;

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
