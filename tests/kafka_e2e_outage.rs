//! Kafka mode through the real binary with a private broker (own ports
//! and state, `scripts/kafka.sh`) stopped for 30 s under load: retryable
//! answers only, bounded ingest memory, and no acknowledged trace lost.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::metric;
use common::jaeger::all_served;
use common::kafka;
use common::load::{Load, SPANS_PER_REQUEST};
use common::process::{free_port, Strand};
use common::wait;

/// A private broker (own ports and state), stopped on drop.
struct PrivateBroker {
    env: Vec<(String, String)>,
    addr: String,
}

impl PrivateBroker {
    fn command(&self, cmd: &str) -> std::process::Command {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
        let mut c = std::process::Command::new(script);
        c.arg(cmd).envs(self.env.iter().cloned());
        c
    }

    fn script(&self, cmd: &str) {
        let out = self.command(cmd).output().expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "kafka.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(state: &Path) -> PrivateBroker {
        let port = free_port();
        let b = PrivateBroker {
            env: vec![
                ("KAFKA_PORT".into(), port.to_string()),
                ("KAFKA_CONTROLLER_PORT".into(), free_port().to_string()),
                ("KAFKA_STATE_DIR".into(), state.display().to_string()),
                ("KAFKA_HEAP".into(), "-Xms128m -Xmx384m".into()),
            ],
            addr: format!("127.0.0.1:{port}"),
        };
        b.script("start");
        b
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.command("stop").output();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Upper bound on the ingest process's resident memory through the outage.
/// Measured peak: ≈ 22 MiB with `max_inflight_bytes` = 8 MiB.
const INGEST_RSS_BOUND_KIB: u64 = 128 << 10;
/// How long the broker stays stopped under load: longer than the
/// consumer's session timeout (10 s), so its group membership expires.
const BROKER_DOWN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_outage_gives_retryable_errors_bounded_memory_and_no_loss() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(
        tokio::task::spawn_blocking({
            let state = dir.path().join("broker");
            move || PrivateBroker::start(&state)
        })
        .await
        .unwrap(),
    );
    let (k, _) = kafka::toml_section(
        &broker.addr,
        "outage",
        "delivery_timeout_ms = 3000\nmax_inflight_bytes = 8388608",
    );
    let writer = Strand::start_target(&dir.path().join("w"), "writer", "", &k);
    let ingest = Strand::start_target(&dir.path().join("i"), "ingest", "", &k);
    let svc = kafka::unique("outage");
    let load = Arc::new(Load::default());
    let workers = load.start(&ingest, &svc, 3, 100_000);
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (max_rss, load, pid) = (max_rss.clone(), load.clone(), ingest.child.id());
        tokio::spawn(async move {
            while !load.stop.load(Ordering::SeqCst) {
                max_rss.fetch_max(rss_kib(pid), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Flowing end to end (the writer's group has settled) before the outage.
    let w = writer.query.clone();
    let flowing = wait::eventually(Duration::from_secs(60), async || {
        load.acked().len() >= 100 && metric(&w, "strand_kafka_consumed_spans_total").await > 0
    })
    .await;
    assert!(flowing, "nothing flowed to the writer before the outage");

    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.script("stop"))
        .await
        .unwrap();
    let down_since = Instant::now();
    let before = load.retryable.load(Ordering::SeqCst);
    // Each refused request takes up to a few delivery timeouts (3 s here).
    let refused = wait::eventually(Duration::from_secs(30), async || {
        load.retryable.load(Ordering::SeqCst) >= before + 3
    })
    .await;
    assert!(refused, "no retryable errors while the broker was down");
    // Stay down for the whole outage under load, then come back.
    tokio::time::sleep(BROKER_DOWN.saturating_sub(down_since.elapsed())).await;
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.script("start"))
        .await
        .unwrap();
    let at_restart = load.acked().len();
    let resumed = wait::eventually(Duration::from_secs(60), async || {
        load.acked().len() >= at_restart + 100
    })
    .await;
    if !resumed {
        panic!(
            "ingest did not recover after the broker came back\ningest log (newest first):\n{}",
            ingest.log_tail(30)
        );
    }
    load.finish(workers).await;
    sampler.await.unwrap();
    let acked = load.acked();
    // Generous: after a 30 s outage the writer's group may first have to
    // time out and rejoin before it reads on.
    let within = Duration::from_secs(240);
    if let Err(e) = all_served(&writer.query, &acked, SPANS_PER_REQUEST, within).await {
        let lag = metric(&writer.query, "strand_kafka_consumer_lag").await;
        panic!(
            "{e}\nwriter consumer lag {lag}\nwriter log (newest first):\n{}",
            writer.log_tail(40)
        );
    }
    let rss = max_rss.load(Ordering::SeqCst);
    assert!(
        rss > 0 && rss < INGEST_RSS_BOUND_KIB,
        "ingest RSS peaked at {rss} KiB (bound {INGEST_RSS_BOUND_KIB} KiB)"
    );
    let rebuilt = metric(&writer.query, "strand_actor_restarts_total").await;
    eprintln!(
        "outage: {} traces acked, {} retryable replies, ingest peak RSS {} MiB, writer actor restarts {rebuilt}",
        acked.len(),
        load.retryable.load(Ordering::SeqCst),
        rss >> 10
    );
}
