//! Tail sampling in Kafka mode (needs a broker: `scripts/kafka.sh start`):
//! the writer commits offsets once waiting spans are in its pending log,
//! before their traces are decided, and a SIGKILL of the writer then loses
//! none of them: they are decided after the restart, not re-consumed.

mod common;

use std::time::Duration;

use common::kafka::{self, toml_section, PARTITIONS};
use common::otel::grpc_provider;
use common::process::Strand;
use common::tail::{baseline_keeps, emit, metric, stored, Shape};
use common::wait;
use strand::config::KafkaConfig;

const TAIL: &str = r#"
[sampling.tail]
enabled = true
decision_wait_ms = 8000
settle_ms = 8000
max_trace_age_ms = 8000

[[sampling.tail.policies]]
name = "errors"
type = "status_code"
status_codes = ["ERROR"]

[[sampling.tail.policies]]
name = "baseline"
type = "probabilistic"
sampling_percentage = 1.0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_of_waiting_spans_are_committed_only_once_logged_and_survive_sigkill() {
    let brokers = kafka::brokers();
    let (k, topic) = toml_section(&brokers, "tail", "");
    let group = format!("e2e-group-{}", topic.strip_prefix("e2e-").unwrap());
    let cfg = KafkaConfig {
        enabled: true,
        brokers: brokers.clone(),
        topic,
        group_id: group,
        partitions: PARTITIONS,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Strand::start_target(
        &dir.path().join("w"),
        "writer",
        "",
        &format!("fsync = true\n{k}{TAIL}"),
    );
    let ingest = Strand::start_target(&dir.path().join("i"), "ingest", "", &k);

    let grpc = ingest.grpc.clone();
    let ids: Vec<(String, Shape)> = tokio::task::spawn_blocking(move || {
        let p = grpc_provider("tail-kafka", &grpc);
        let ids = (0..20)
            .map(|i| {
                if i % 4 == 0 {
                    Shape::Error
                } else {
                    Shape::Plain
                }
            })
            .map(|s| (emit(&p, s), s))
            .collect();
        p.shutdown().unwrap();
        ids
    })
    .await
    .unwrap();

    let w = writer.query.clone();
    wait::until(
        "every trace waiting at the writer",
        Duration::from_secs(30),
        async || metric(&w, "strand_tail_pending_traces").await == 20,
    )
    .await;
    // Committed to the end of every partition while nothing is decided:
    // the pending log, not the decision, is what the offset waits for.
    kafka::wait_all_committed(&cfg).await;
    assert_eq!(
        metric(&w, "strand_tail_traces_total").await,
        0,
        "still waiting"
    );
    writer.kill9();

    writer.restart();
    let w = writer.query.clone();
    assert_eq!(metric(&w, "strand_tail_recovered_traces_total").await, 20);
    wait::until(
        "the recovered traces decided",
        Duration::from_secs(60),
        async || metric(&w, "strand_tail_traces_total").await == 20,
    )
    .await;
    for (id, shape) in &ids {
        let want = match shape {
            Shape::Error => 2,
            _ if baseline_keeps(id, 1.0) => 2,
            _ => 0,
        };
        assert_eq!(stored(&w, id).await, want, "{shape:?} trace {id}");
    }
    // Nothing was consumed twice: every decision came from the pending log.
    assert_eq!(metric(&w, "strand_tail_pending_traces").await, 0);
    assert_eq!(metric(&w, "strand_tail_late_spans_total").await, 0);
}
