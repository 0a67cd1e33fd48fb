//! Adaptive sampling with two receivers: two `--target ingest` nodes in
//! Kafka mode each take half the traffic of one operation; a `--target
//! writer` stores the span metrics of both (the metrics topic). Each ingest
//! node's controller reads the writer's totals (`metrics_peers`), so both
//! serve the probability for the global rate and together store the
//! target, not twice it (what per-node rates would give). Real broker.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::metric;
use common::kafka::{self, unique};
use common::process::Strand;
use common::sampling::{probability_of, served, traffic};
use common::wait;

const TARGET: f64 = 20.0;
/// Traces per second sent to each ingest node.
const EACH: u64 = 100;

async fn served_p(s: &Strand) -> Option<f64> {
    let (code, v) = served(&s.sampling, "/sampling", "shop").await;
    (code == 200 && v["operationSampling"].is_object()).then(|| probability_of(&v, "checkout"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_receivers_reading_the_writers_totals_together_hold_the_target() {
    let (k, _) = kafka::toml_section(&kafka::brokers(), "adaptive", "");
    let topic = unique("adaptive-metrics");
    let base = format!("{k}\n[span_metrics]\nflush_interval_ms = 200\nkafka_topic = \"{topic}\"\n");
    let dir = tempfile::tempdir().unwrap();
    let writer = Strand::start_target(&dir.path().join("w"), "writer", "", &base);
    let cfg = format!(
        "{base}\n[sampling.adaptive]\nenabled = true\ntarget_traces_per_sec = {TARGET}\n\
         interval_ms = 1000\nsmoothing = 0.5\nmetrics_peers = [{:?}]\n",
        writer.query
    );
    let a = Strand::start_target(&dir.path().join("a"), "ingest", "", &cfg);
    let b = Strand::start_target(&dir.path().join("b"), "ingest", "", &cfg);
    let (sent_a, sent_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let gen_a = traffic(
        a.http.clone(),
        Arc::new(AtomicU64::new(EACH)),
        sent_a.clone(),
    );
    let gen_b = traffic(
        b.http.clone(),
        Arc::new(AtomicU64::new(EACH)),
        sent_b.clone(),
    );

    // The global rate is 2 × EACH: both nodes must serve target / global,
    // half of what each would compute from its own traffic.
    let global = 2.0 * EACH as f64;
    let right = |p: f64| (global * p - TARGET).abs() <= 0.2 * TARGET;
    for (name, node) in [("a", &a), ("b", &b)] {
        wait::until(
            &format!("node {name} to serve target / global rate"),
            Duration::from_secs(90),
            async || served_p(node).await.is_some_and(right),
        )
        .await;
    }

    // What the two receivers store together: sent − sampled out, over 10 s.
    let out = async || {
        metric(&a.query, "strand_ingest_spans_sampled_out_total").await
            + metric(&b.query, "strand_ingest_spans_sampled_out_total").await
    };
    let sent = || sent_a.load(Ordering::Relaxed) + sent_b.load(Ordering::Relaxed);
    let (t0, sent0, out0) = (Instant::now(), sent(), out().await);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (sent1, out1) = (sent(), out().await);
    let secs = t0.elapsed().as_secs_f64();
    let offered = (sent1 - sent0) as f64 / secs;
    let stored = (sent1 - sent0).saturating_sub(out1 - out0) as f64 / secs;
    println!("offered {offered:.0}/s to two receivers, stored {stored:.1}/s together");
    assert!(
        offered > 0.8 * global,
        "the generators kept up: {offered}/s"
    );
    assert!(
        (stored - TARGET).abs() <= 0.2 * TARGET,
        "two receivers stored {stored:.1}/s together for a target of {TARGET}/s"
    );
    gen_a.abort();
    gen_b.abort();
}
