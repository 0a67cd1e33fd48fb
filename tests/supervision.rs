//! The supervision tree with its real stages, in-process: every
//! restartable stage comes back after a failure or a group restart
//! (`RestartStage`) and does its work again; a storage group whose hot
//! writer keeps failing escalates, fails, and recovers; the Kafka consumer
//! restarted as a stage of the `kafka` group loses nothing. The real
//! binary's side of the tree is in `supervision_binary.rs`.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use async_trait::async_trait;
use serde_json::Value;

use common::wait::until;
use strand::actors::listener::GrpcListener;
use strand::actors::receiver::{ExportTraces, ReceiverPool};
use strand::actors::sealer::{start_sealer, RetentionJanitor, SealSegment};
use strand::actors::tree::{Health, Policy, RestartStage, Root, StageHandle};
use strand::actors::writer::start_hot_writer;
use strand::config::{Config, IndexConfig, StorageConfig};
use strand::error::{Error, Result};
use strand::metrics::ActorStats;
use strand::model::{AttrValue, KeyValue, Resource, Span, SpanId, SpanReader, SpanWriter, TraceId};
use strand::otlp::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use strand::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use strand::pipeline::Transport;
use strand::store::hot::{Batch, HotStore};
use strand::tiers::memory::MemoryStore;

const WAIT: Duration = Duration::from_secs(20);

/// Stages with fixed names (`receiver-N`) share those names' process-wide
/// `ActorStats`; tests that count them run one at a time.
static NAMED_STAGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `n` spans of one trace, `seed` keeping ids apart between batches,
/// `start_ns` their start.
fn spans_at(seed: u8, n: u8, start_ns: u64) -> Vec<Span> {
    let resource = Arc::new(Resource {
        attributes: vec![KeyValue::new("service.name", AttrValue::Str("svc".into()))],
        ..Default::default()
    });
    (0..n)
        .map(|i| Span {
            trace_id: TraceId([seed; 16]),
            span_id: SpanId([seed, i + 1, 0, 0, 0, 0, 0, 1]),
            name: format!("op-{i}"),
            start_ns: start_ns + u64::from(i),
            end_ns: start_ns + 1_000_000 + u64::from(i),
            resource: resource.clone(),
            ..Default::default()
        })
        .collect()
}

fn spans(seed: u8, n: u8) -> Vec<Span> {
    spans_at(seed, n, strand::model::now_ns() - 1_000_000_000)
}

fn request(seed: u8, n: u8) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: strand::otlp::convert::spans_to_proto(&spans(seed, n)),
    }
}

fn export(seed: u8, n: u8) -> ExportTraces {
    ExportTraces {
        payload: strand::actors::receiver::Payload::Decoded(Box::new(request(seed, n))),
        transport: Transport::Grpc,
        hold: None,
        client: None,
    }
}

/// The tree's view of one stage (`Null` until it is registered).
fn stage(health: &Health, group: &str, name: &str) -> Value {
    health.snapshot_json()["groups"][group]["stages"][name].clone()
}

fn restarts(health: &Health, group: &str, name: &str) -> u64 {
    stage(health, group, name)["restarts"].as_u64().unwrap_or(0)
}

fn group_state(health: &Health, group: &str) -> String {
    health.snapshot_json()["groups"][group]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn tree(policy: Policy) -> (Addr<Root>, Health) {
    let health = Health::started();
    (Root::start(policy, health.clone()), health)
}

fn storage(dir: &std::path::Path) -> (Arc<HotStore>, StorageConfig) {
    let cfg = StorageConfig {
        dir: dir.to_path_buf(),
        ..Default::default()
    };
    (HotStore::open(&cfg, &IndexConfig::default()).unwrap(), cfg)
}

/// Fails its first write with a terminal error, then stores.
#[derive(Default)]
struct FailsOnce {
    failed: AtomicBool,
    store: MemoryStore,
}

#[async_trait]
impl SpanWriter for FailsOnce {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(Error::Internal("disk controller gone".into()));
        }
        self.store.write(spans).await
    }
}

#[actix_rt::test]
async fn a_receiver_worker_restarts_after_a_terminal_sink_error() {
    let _named = NAMED_STAGES.lock().await;
    let (root, health) = tree(Policy::default());
    let mut cfg = Config::default();
    cfg.ingest.workers = 1;
    let sink = Arc::new(FailsOnce::default());
    let pool = ReceiverPool::start(&cfg, sink.clone(), Some(&root));
    until("receiver-0 registered", WAIT, async || {
        stage(&health, "ingest", "receiver-0").is_object()
    })
    .await;
    let stats = ActorStats::get("receiver-0");
    let before = stats.restarts.load(Ordering::Relaxed);

    let err = pool.export(export(1, 3)).await.unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err}");
    until("the restart in the tree", WAIT, async || {
        restarts(&health, "ingest", "receiver-0") == 1
    })
    .await;
    let s = stage(&health, "ingest", "receiver-0");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .contains("disk controller gone"),
        "{s}"
    );
    assert_eq!(s["recent_failures"], 1);
    assert_eq!(group_state(&health, "ingest"), "degraded");

    // The one worker there is serves the next request once it is back.
    let out = pool
        .export(export(2, 4))
        .await
        .expect("served after restart");
    assert_eq!((out.accepted, out.rejected), (4, 0));
    assert_eq!(sink.store.trace(TraceId([2; 16])).await.unwrap().len(), 4);
    assert!(sink.store.trace(TraceId([1; 16])).await.unwrap().is_empty());
    assert_eq!(stats.restarts.load(Ordering::Relaxed), before + 1);
    until("receiver-0 running again", WAIT, async || {
        stage(&health, "ingest", "receiver-0")["status"] == "running"
    })
    .await;
}

#[actix_rt::test]
async fn receiver_workers_restart_with_their_group() {
    let _named = NAMED_STAGES.lock().await;
    let (root, health) = tree(Policy {
        max_restarts: 0,
        ..Policy::default()
    });
    let mut cfg = Config::default();
    cfg.ingest.workers = 2;
    let sink = Arc::new(MemoryStore::new());
    let pool = ReceiverPool::start(&cfg, sink.clone(), Some(&root));
    let probe = StageHandle::new(Some(&root), "ingest", "ingest_probe");
    probe.register(None);
    pool.export(export(1, 2)).await.expect("served before");
    let before: Vec<u64> = (0..2)
        .map(|i| {
            ActorStats::get(&format!("receiver-{i}"))
                .restarts
                .load(Ordering::Relaxed)
        })
        .collect();

    // One failure of another ingest stage escalates: the root sends
    // RestartStage to every worker.
    probe.failed(&"probe failure");
    for w in ["receiver-0", "receiver-1"] {
        until(&format!("{w} restarted by its group"), WAIT, async || {
            restarts(&health, "ingest", w) == 1
        })
        .await;
        let s = stage(&health, "ingest", w);
        assert_eq!(
            s["recent_failures"], 0,
            "{w}: a group restart is no failure"
        );
        assert_eq!(s["last_error"], "", "{w}");
    }
    assert_eq!(health.snapshot_json()["groups"]["ingest"]["escalations"], 1);
    // Round robin: both workers serve again.
    for seed in [2, 3] {
        let out = pool.export(export(seed, 2)).await.expect("served after");
        assert_eq!(out.accepted, 2);
    }
    for seed in [1, 2, 3] {
        assert_eq!(sink.trace(TraceId([seed; 16])).await.unwrap().len(), 2);
    }
    for (i, b) in before.iter().enumerate() {
        let now = ActorStats::get(&format!("receiver-{i}"))
            .restarts
            .load(Ordering::Relaxed);
        assert_eq!(now, b + 1, "receiver-{i} restart counted in its ActorStats");
    }
}

#[actix_rt::test]
async fn the_segment_sealer_restarted_by_its_group_still_seals() {
    let (root, health) = tree(Policy::default());
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = storage(dir.path());
    let name = "sealer_under_test";
    let sealer = start_sealer(
        store.clone(),
        StageHandle::new(Some(&root), "storage", name),
    );
    let seal = async |seed: u8, n: u8| {
        store.commit(0, vec![Batch::new(spans(seed, n))]).unwrap();
        let segment = store.rotate(0).unwrap().expect("a segment to seal");
        sealer.send(SealSegment { segment }).await.unwrap()
    };
    let first = seal(1, 5).await.unwrap().expect("sealed");
    assert_eq!(first.0.rows, 5);

    sealer.send(RestartStage).await.unwrap();
    until("the sealer's restart in the tree", WAIT, async || {
        restarts(&health, "storage", name) == 1
    })
    .await;
    let second = seal(2, 7).await.unwrap().expect("sealed after the restart");
    assert_eq!(second.0.rows, 7);
    assert_eq!(store.sealed_ids().len(), 2);
    assert_eq!(store.unsealed_spans(), 0);
    assert_eq!(store.trace(TraceId([2; 16])).await.unwrap().len(), 7);
    // The fresh sealer reported itself up.
    until("the sealer running", WAIT, async || {
        stage(&health, "storage", name)["status"] == "running"
    })
    .await;
    assert_eq!(stage(&health, "storage", name)["recent_failures"], 0);
}

#[actix_rt::test]
async fn the_retention_janitor_restarted_by_its_group_still_enforces_retention() {
    let (root, health) = tree(Policy::default());
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = storage(dir.path());
    let sealer = start_sealer(
        store.clone(),
        StageHandle::new(Some(&root), "storage", "janitor_test_sealer"),
    );
    let name = "janitor_under_test";
    let js = StageHandle::new(Some(&root), "storage", name);
    let janitor = Supervisor::start({
        let (sealer, js) = (sealer.clone(), js.clone());
        move |_| RetentionJanitor::new(sealer, Duration::from_millis(100), js)
    });
    js.register(Some(janitor.clone().recipient()));

    janitor.send(RestartStage).await.unwrap();
    until("the janitor's restart in the tree", WAIT, async || {
        restarts(&health, "storage", name) == 1
    })
    .await;
    // Spans from 1970 are past any retention: the restarted janitor's
    // next pass deletes their segment (nothing else asks for retention).
    store
        .commit(0, vec![Batch::new(spans_at(9, 4, 1_000_000))])
        .unwrap();
    let segment = store.rotate(0).unwrap().unwrap();
    sealer
        .send(SealSegment { segment })
        .await
        .unwrap()
        .unwrap()
        .expect("sealed");
    until("retention after the restart", WAIT, async || {
        store.sealed_ids().is_empty()
    })
    .await;
    assert!(store.trace(TraceId([9; 16])).await.unwrap().is_empty());
    assert_eq!(stage(&health, "storage", name)["status"], "running");
}

#[actix_rt::test]
async fn the_grpc_listener_restarted_by_its_group_serves_again_on_its_port() {
    let _named = NAMED_STAGES.lock().await;
    let (root, health) = tree(Policy::default());
    let mut cfg = Config::default();
    cfg.ingest.workers = 1;
    let sink = Arc::new(MemoryStore::new());
    let intake = strand::ingest::Intake::start(&cfg, sink.clone(), Some(&root));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stage_handle = StageHandle::new(Some(&root), "ingest", "otlp_grpc");
    let grpc = GrpcListener::start(listener, intake, 1, stage_handle).unwrap();

    // A client stays connected across the restart.
    let mut old = TraceServiceClient::connect(url.clone())
        .await
        .expect("connect");
    old.export(request(1, 2)).await.expect("export before");
    until("the listener running", WAIT, async || {
        stage(&health, "ingest", "otlp_grpc")["status"] == "running"
    })
    .await;

    grpc.send(RestartStage).await.unwrap();
    // `restarting` on the order, `running` once it serves again.
    until("the listener drained and serving again", WAIT, async || {
        let s = stage(&health, "ingest", "otlp_grpc");
        s["restarts"] == 1 && s["status"] == "running"
    })
    .await;
    let mut new = TraceServiceClient::connect(url.clone())
        .await
        .expect("reconnect");
    let r = new.export(request(2, 3)).await.expect("export after");
    assert!(r.into_inner().partial_success.is_none());
    assert_eq!(sink.trace(TraceId([1; 16])).await.unwrap().len(), 2);
    assert_eq!(sink.trace(TraceId([2; 16])).await.unwrap().len(), 3);
    assert_eq!(stage(&health, "ingest", "otlp_grpc")["recent_failures"], 0);
    drop(old);
    grpc.do_send(strand::actors::listener::StopListener);
}

#[actix_rt::test]
async fn the_es_janitor_restarted_by_its_group_runs_and_reports_failures() {
    let (root, health) = tree(Policy {
        max_restarts: 1,
        ..Policy::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: every janitor pass fails.
    let cfg = strand::config::ElasticsearchConfig {
        url: "http://127.0.0.1:9".into(),
        request_timeout_ms: 2_000,
        ..Default::default()
    };
    let w = strand::elasticsearch::sink::start_es_writer(
        &cfg,
        &IndexConfig::default(),
        dir.path(),
        Some(&root),
    )
    .unwrap();
    // A pass runs at start (the next one only in janitor_interval_secs).
    until("the first pass reported", WAIT, async || {
        restarts(&health, "search", "es_janitor") == 1
    })
    .await;
    let first = stage(&health, "search", "es_janitor");
    assert_ne!(first["last_error"], "", "{first}");

    // Two failures of another search stage escalate the group.
    let probe = StageHandle::new(Some(&root), "search", "search_probe");
    probe.register(None);
    probe.failed(&"probe failure");
    probe.failed(&"probe failure");
    // Counted: the failed pass, the restart, and the restarted janitor's
    // own pass, which fails again.
    until("the restarted janitor's pass", WAIT, async || {
        restarts(&health, "search", "es_janitor") == 3
    })
    .await;
    let s = stage(&health, "search", "es_janitor");
    assert_eq!(s["recent_failures"], 1, "{s}");
    assert_ne!(s["last_error"], "", "{s}");
    assert_eq!(s["status"], "restarting", "failing: {s}");
    assert_eq!(health.snapshot_json()["groups"]["search"]["escalations"], 1);
    w.shutdown().await;
}

#[actix_rt::test]
async fn a_storage_group_that_keeps_failing_escalates_fails_and_recovers() {
    let window = Duration::from_secs(4);
    let (root, health) = tree(Policy {
        max_restarts: 1,
        max_escalations: 1,
        window,
    });
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = storage(dir.path());
    let h = start_hot_writer(store.clone(), Some(&root));
    h.write(spans(1, 3)).await.expect("write before the faults");
    let sealed_before = restarts(&health, "storage", "segment_sealer");

    // Each fault fails one WAL append: the writer crashes, restarts with
    // its backoff and recovers on a fresh WAL; fail it again and again.
    let mut escalated = false;
    let mut seed = 10;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(std::time::Instant::now() < deadline, "storage never failed");
        // Failed lasts a window: watch for it while the writer is down.
        until("hot writer up or storage failed", WAIT, async || {
            h.is_up() || group_state(&health, "storage") == "failed"
        })
        .await;
        if group_state(&health, "storage") == "failed" {
            break;
        }
        let counted = restarts(&health, "storage", "hot_writer-0");
        store.inject_wal_faults(1);
        let written = h.write(spans(seed, 1)).await;
        seed += 1;
        if written.is_ok() {
            // A group restart replaced the WAL before this write reached it.
            continue;
        }
        until("the failure in the tree", WAIT, async || {
            restarts(&health, "storage", "hot_writer-0") > counted
        })
        .await;
        let v = health.snapshot_json();
        if !escalated && v["groups"]["storage"]["escalations"] == 1 {
            escalated = true;
            // First escalation: the group restarts, degraded but ready.
            until(
                "sealer and janitor restarted with the group",
                WAIT,
                async || {
                    restarts(&health, "storage", "segment_sealer") > sealed_before
                        && restarts(&health, "storage", "retention_janitor") >= 1
                },
            )
            .await;
            if group_state(&health, "storage") != "failed" {
                assert_eq!(group_state(&health, "storage"), "degraded");
                assert!(health.ready().is_ok(), "degraded is still ready");
            }
        }
    }
    assert!(escalated, "failed without escalating first");
    let why = health.ready().unwrap_err();
    assert!(why.contains("storage"), "{why}");
    let v = health.snapshot_json();
    assert_eq!(v["groups"]["storage"]["escalations"], 2, "{v}");
    let w = &v["groups"]["storage"]["stages"]["hot_writer-0"];
    assert!(
        w["last_error"].as_str().unwrap().contains("injected"),
        "{w}"
    );

    // No more faults: once the writer is back and the window has passed
    // without failures, the group is ready again.
    until_written(&h, spans(2, 4)).await;
    until("storage ready again", window * 4, async || {
        health.ready().is_ok()
    })
    .await;
    assert_ne!(group_state(&health, "storage"), "failed");
    h.write(spans(3, 2)).await.expect("write after recovery");
    assert_eq!(store.trace(TraceId([1; 16])).await.unwrap().len(), 3);
    assert_eq!(store.trace(TraceId([2; 16])).await.unwrap().len(), 4);
    assert_eq!(store.trace(TraceId([3; 16])).await.unwrap().len(), 2);
    h.seal_now().await.expect("seals after recovery");
}

/// Retries `write` while the writer is restarting.
async fn until_written(h: &strand::actors::writer::HotWriterHandle, spans: Vec<Span>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match h.write(spans.clone()).await {
            Ok(()) => return,
            Err(e) if e.is_retryable() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the hot writer did not come back: {e}"),
        }
    }
}

/// Records every span a consumer writes.
#[derive(Default)]
struct Recorder(parking_lot::Mutex<Vec<Span>>);

#[async_trait]
impl SpanWriter for Recorder {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        self.0.lock().extend(spans);
        Ok(())
    }
}

impl Recorder {
    fn ids(&self) -> HashSet<SpanId> {
        self.0.lock().iter().map(|s| s.span_id).collect()
    }
}

/// `traces` traces of 5 spans; `seed` keeps span ids apart.
fn kafka_spans(seed: u8, traces: u8) -> Vec<Span> {
    (0..traces)
        .flat_map(|t| {
            let mut v = spans(seed, 5);
            for s in &mut v {
                s.trace_id.0[15] = t;
                s.span_id.0[2] = t;
            }
            v
        })
        .collect()
}

#[actix_rt::test]
async fn the_kafka_consumer_restarted_as_a_stage_loses_nothing() {
    let cfg = common::kafka::config("supervision");
    let (root, health) = tree(Policy::default());
    let producer = strand::kafka::producer::KafkaSink::connect(&cfg)
        .await
        .expect("connect the producer");
    let sink = Arc::new(Recorder::default());
    let consumer =
        strand::kafka::consumer::start_kafka_consumers(&cfg, sink.clone(), Some(&root)).unwrap();
    until("the consumer in the kafka group", WAIT, async || {
        stage(&health, "kafka", "kafka_consumer").is_object()
    })
    .await;

    let before = kafka_spans(1, 40);
    producer.write(before.clone()).await.expect("produce");
    until("some spans consumed", Duration::from_secs(60), async || {
        !sink.ids().is_empty()
    })
    .await;
    let restarts_before = consumer.restarts();
    consumer.restart();
    let after = kafka_spans(2, 40);
    producer.write(after.clone()).await.expect("produce");
    until("the consumer rebuilt", WAIT, async || {
        consumer.restarts() == restarts_before + 1
    })
    .await;
    until("the restart in the tree", WAIT, async || {
        restarts(&health, "kafka", "kafka_consumer") >= 1
    })
    .await;

    let want: HashSet<SpanId> = before.iter().chain(&after).map(|s| s.span_id).collect();
    assert_eq!(want.len(), 400);
    until(
        "every span before and after the restart",
        Duration::from_secs(90),
        async || sink.ids() == want,
    )
    .await;
    assert!(sink.0.lock().len() >= want.len(), "at least once");
    until(
        "partitions assigned again",
        Duration::from_secs(60),
        async || !consumer.assigned_partitions().is_empty(),
    )
    .await;
    assert!(consumer.shutdown().await, "the consumer stopped");
}
