//! Kafka mode through the real binary and a real broker: `strand serve
//! --target ingest` → Kafka → `--target writer` → `--target query`.
//! Needs `scripts/kafka.sh start` (127.0.0.1:9092); fails without it. The
//! broker-outage test runs a second, private broker of its own.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::process::{free_port, Strand};
use common::wait::eventually;
use futures::stream::{self, StreamExt};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue as OtelKv};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::Message;
use serde_json::Value;
use strand::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use strand::otlp::proto::common::v1::{any_value, AnyValue, KeyValue};
use strand::otlp::proto::resource::v1::Resource;
use strand::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

const BROKER: &str = "127.0.0.1:9092";
const SPANS_PER_REQUEST: usize = 10;

fn require_broker(addr: &str) {
    let a: SocketAddr = addr.parse().unwrap();
    if TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_err() {
        panic!("no Kafka broker on {addr}: start one with `scripts/kafka.sh start`");
    }
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// `[kafka]` for a fresh topic and group; returns (toml, topic).
fn kafka_toml(brokers: &str, name: &str, extra: &str) -> (String, String) {
    require_broker(brokers);
    let u = unique(name);
    let topic = format!("e2e-{u}");
    let toml = format!(
        "\n[kafka]\nenabled = true\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\ngroup_id = \"e2e-group-{u}\"\npartitions = 4\nbatch_max_wait_ms = 50\n{extra}\n"
    );
    (toml, topic)
}

fn peers(nodes: &[&Strand]) -> String {
    let urls: Vec<String> = nodes.iter().map(|n| format!("{:?}", n.query)).collect();
    format!("peers = [{}]", urls.join(", "))
}

/// One request = one trace of SPANS_PER_REQUEST spans of `service`.
fn request(service: &str, worker: u64, seq: u64) -> (String, Vec<u8>) {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(worker + 1).to_be_bytes());
    trace_id[8..].copy_from_slice(&(seq + 1).to_be_bytes());
    let now = strand::model::now_ns();
    let spans = (0..SPANS_PER_REQUEST as u64)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: (i + 1 + (seq << 8) + (worker << 40)).to_be_bytes().to_vec(),
            name: format!("op-{i}"),
            kind: 2,
            start_time_unix_nano: now + i,
            end_time_unix_nano: now + i + 1_000_000,
            ..Default::default()
        })
        .collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    key_strindex: 0,
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (hex::encode(trace_id), req.encode_to_vec())
}

/// Concurrent OTLP/HTTP senders that retry 429/503 (as OTel exporters do)
/// and record which traces were acknowledged.
#[derive(Default)]
struct Load {
    acked: Mutex<Vec<String>>,
    retryable: AtomicU64,
    stop: AtomicBool,
}

impl Load {
    fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap().clone()
    }

    fn start(
        self: &Arc<Self>,
        ingest: &Strand,
        service: &str,
        workers: u64,
        per_worker: u64,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let url = format!("{}/v1/traces", ingest.http);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        (0..workers)
            .map(|w| {
                let (load, url, client, service) = (
                    self.clone(),
                    url.clone(),
                    client.clone(),
                    service.to_string(),
                );
                tokio::spawn(async move {
                    for seq in 0..per_worker {
                        let (trace, body) = request(&service, w, seq);
                        loop {
                            if load.stop.load(Ordering::SeqCst) {
                                return;
                            }
                            let r = client
                                .post(&url)
                                .header("content-type", "application/x-protobuf")
                                .body(body.clone())
                                .send()
                                .await
                                .expect("the ingest process stays up");
                            match r.status().as_u16() {
                                200 => break,
                                429 | 503 => {
                                    load.retryable.fetch_add(1, Ordering::SeqCst);
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                                other => panic!("non-retryable status {other}"),
                            }
                        }
                        load.acked.lock().unwrap().push(trace);
                    }
                })
            })
            .collect()
    }

    async fn finish(&self, workers: Vec<tokio::task::JoinHandle<()>>) {
        self.stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await.expect("load worker");
        }
    }
}

/// GET with a few retries of transport errors: a loaded machine (2 cores
/// running a broker and several strand processes) occasionally drops a
/// connection; a status is always returned as is.
async fn get_json(url: &str) -> (u16, Value) {
    let mut attempt = 0;
    loop {
        match reqwest::get(url).await {
            Ok(r) => {
                let code = r.status().as_u16();
                return (code, r.json().await.unwrap_or(Value::Null));
            }
            Err(e) if attempt < 5 => {
                attempt += 1;
                eprintln!("GET {url}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("query API unreachable at {url}: {e}"),
        }
    }
}

/// Span ids of a trace as served by the Jaeger API (empty when unknown).
async fn span_ids(query: &str, trace: &str) -> Vec<String> {
    match get_json(&format!("{query}/api/traces/{trace}")).await {
        (404, _) => Vec::new(),
        (200, v) => v["data"][0]["spans"]
            .as_array()
            .map(|s| s.iter().map(|s| s["spanID"].to_string()).collect())
            .unwrap_or_default(),
        (code, v) => panic!("GET trace {trace}: {code} {v}"),
    }
}

async fn search_ids(query: &str, service: &str) -> Vec<String> {
    let (code, v) = get_json(&format!("{query}/api/traces?service={service}&limit=1500")).await;
    assert_eq!(code, 200, "{v}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect()
}

/// Traces among `acked` not (yet) served whole.
async fn missing(query: &str, acked: &[String]) -> Vec<String> {
    stream::iter(acked.iter().cloned())
        .map(|t| async move {
            let ids = span_ids(query, &t).await;
            let distinct: HashSet<&String> = ids.iter().collect();
            assert_eq!(distinct.len(), ids.len(), "trace {t} served a span twice");
            (ids.len() != SPANS_PER_REQUEST).then_some(t)
        })
        .buffer_unordered(16)
        .filter_map(|m| async move { m })
        .collect()
        .await
}

async fn assert_all_served(query: &str, acked: &[String], within: Duration) {
    if let Err(e) = all_served(query, acked, within).await {
        panic!("{e}");
    }
}

/// Polls until every trace in `acked` is served whole, or says what is not.
async fn all_served(query: &str, acked: &[String], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let m = missing(query, acked).await;
        if m.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} of {} acknowledged traces not served whole after {within:?}, e.g. {:?}",
                m.len(),
                acked.len(),
                &m[..m.len().min(3)]
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sum of a counter over its label sets, from a node's /metrics.
async fn metric(node: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{node}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn otel_provider(service: &str, grpc: &str) -> SdkTracerProvider {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(grpc)
        .with_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn otel_sdk_trace_flows_ingest_to_writer_to_query() {
    let (k, _) = kafka_toml(BROKER, "flow", "");
    let dir = tempfile::tempdir().unwrap();
    let writer = Strand::start_target(&dir.path().join("w"), "writer", "", &k);
    let ingest = Strand::start_target(&dir.path().join("i"), "ingest", "", &k);
    let query = Strand::start_target(&dir.path().join("q"), "query", &peers(&[&writer]), "");
    let (front_svc, back_svc) = (unique("frontend"), unique("checkout"));
    let user = unique("user");

    let front = otel_provider(&front_svc, &ingest.grpc);
    let back = otel_provider(&back_svc, &ingest.grpc);
    let (ft, bt) = (front.tracer("e2e"), back.tracer("e2e"));
    let mut root = ft
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .start(&ft);
    root.set_attribute(OtelKv::new("user_id", user.clone()));
    let trace_id = root.span_context().trace_id().to_string();
    let cx = Context::current_with_span(root);
    bt.span_builder("charge card")
        .with_kind(SpanKind::Client)
        .start_with_context(&bt, &cx)
        .end();
    cx.span().end();
    back.force_flush().unwrap();
    front.force_flush().unwrap();

    let q = query.query.clone();
    let whole = eventually(Duration::from_secs(30), async || {
        span_ids(&q, &trace_id).await.len() == 2
    })
    .await;
    assert!(whole, "trace {trace_id} not served whole by the query node");
    let (_, body) = get_json(&format!("{q}/api/traces/{trace_id}")).await;
    let trace = &body["data"][0];
    let services: HashSet<&str> = trace["processes"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["serviceName"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        HashSet::from([front_svc.as_str(), back_svc.as_str()])
    );
    let search = format!(
        "{q}/api/traces?service={front_svc}&tags=%7B%22user_id%22%3A%22{user}%22%7D&limit=5"
    );
    let (code, found) = get_json(&search).await;
    assert_eq!(code, 200, "{found}");
    assert_eq!(found["data"][0]["traceID"], trace_id.as_str(), "{found}");
    let (_, svcs) = get_json(&format!("{q}/api/services")).await;
    assert!(svcs["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == front_svc.as_str()));
    // The ingest node serves health only, not the query API.
    assert_eq!(get_json(&format!("{}/healthz", ingest.query)).await.0, 200);
    assert_eq!(
        get_json(&format!("{}/api/services", ingest.query)).await.0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_split_partitions_and_the_query_node_sees_each_span_once() {
    let (k, _) = kafka_toml(BROKER, "split", "");
    let dir = tempfile::tempdir().unwrap();
    let w1 = Strand::start_target(&dir.path().join("w1"), "writer", "", &k);
    let w2 = Strand::start_target(&dir.path().join("w2"), "writer", "", &k);
    let ingest = Strand::start_target(&dir.path().join("i"), "ingest", "", &k);
    let query = Strand::start_target(&dir.path().join("q"), "query", &peers(&[&w1, &w2]), "");
    let svc = unique("split");

    let load = Arc::new(Load::default());
    let workers = load.start(&ingest, &svc, 2, 300);
    // Keep producing until the group has settled and both writers hold data.
    let (a, b) = (w1.query.clone(), w2.query.clone());
    let split = eventually(Duration::from_secs(60), async || {
        load.acked().len() >= 200
            && !search_ids(&a, &svc).await.is_empty()
            && !search_ids(&b, &svc).await.is_empty()
    })
    .await;
    assert!(split, "the two writers never both received partitions");
    load.finish(workers).await;
    let acked = load.acked();
    assert_all_served(&query.query, &acked, Duration::from_secs(60)).await;

    let found = search_ids(&query.query, &svc).await;
    let distinct: HashSet<&String> = found.iter().collect();
    assert_eq!(distinct.len(), found.len(), "a trace listed twice");
    assert_eq!(distinct, acked.iter().collect::<HashSet<_>>());
    let (n1, n2) = (
        search_ids(&a, &svc).await.len(),
        search_ids(&b, &svc).await.len(),
    );
    assert!(
        n1 < acked.len() && n2 < acked.len() && n1 + n2 >= acked.len(),
        "{n1} + {n2} vs {}",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_writer_resumes_from_committed_offsets_and_loses_nothing() {
    let (k, _) = kafka_toml(BROKER, "kill", "batch_max_messages = 20");
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Strand::start_target(&dir.path().join("w"), "writer", "", &k);
    let ingest = Strand::start_target(&dir.path().join("i"), "ingest", "", &k);
    let svc = unique("kill");
    let load = Arc::new(Load::default());
    let workers = load.start(&ingest, &svc, 3, 400);

    let w = writer.query.clone();
    let consuming = eventually(Duration::from_secs(60), async || {
        metric(&w, "strand_kafka_consumed_spans_total").await >= 3_000
    })
    .await;
    assert!(consuming, "the writer consumed too little");
    writer.kill9();
    let at_kill = load.acked().len();
    let more = eventually(Duration::from_secs(60), async || {
        load.acked().len() >= at_kill + 100
    })
    .await;
    assert!(more, "ingest stalled while the writer was down");
    writer.restart();
    load.finish(workers).await;
    let acked = load.acked();
    assert_all_served(&writer.query, &acked, Duration::from_secs(60)).await;
    let reread = metric(&writer.query, "strand_kafka_consumed_spans_total").await;
    let sent = (acked.len() * SPANS_PER_REQUEST) as u64;
    assert!(
        reread > 0 && reread < sent.saturating_sub(2_000),
        "the restarted writer consumed {reread} of {sent} spans: not from its committed offsets"
    );
}

/// A private broker (own ports and state), stopped on drop.
struct PrivateBroker {
    env: Vec<(String, String)>,
    addr: String,
}

impl PrivateBroker {
    fn script(&self, cmd: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
        let out = std::process::Command::new(script)
            .arg(cmd)
            .envs(self.env.iter().cloned())
            .output()
            .expect("run scripts/kafka.sh");
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
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
        let _ = std::process::Command::new(script)
            .arg("stop")
            .envs(self.env.iter().cloned())
            .output();
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
    let (k, _) = kafka_toml(
        &broker.addr,
        "outage",
        "delivery_timeout_ms = 3000\nmax_inflight_bytes = 8388608",
    );
    let writer = Strand::start_target(&dir.path().join("w"), "writer", "", &k);
    let ingest = Strand::start_target(&dir.path().join("i"), "ingest", "", &k);
    let svc = unique("outage");
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
    let flowing = eventually(Duration::from_secs(60), async || {
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
    let refused = eventually(Duration::from_secs(30), async || {
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
    let resumed = eventually(Duration::from_secs(60), async || {
        load.acked().len() >= at_restart + 100
    })
    .await;
    if !resumed {
        let log = |d: &str| std::fs::read_to_string(dir.path().join(d).join("strand.log"));
        let tail = |s: String| s.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        panic!(
            "ingest did not recover after the broker came back\ningest log (newest first):\n{}",
            tail(log("i").unwrap_or_default())
        );
    }
    load.finish(workers).await;
    sampler.await.unwrap();
    let acked = load.acked();
    // Generous: after a 30 s outage the writer's group may first have to
    // time out and rejoin before it reads on.
    if let Err(e) = all_served(&writer.query, &acked, Duration::from_secs(240)).await {
        let log = |d: &str| std::fs::read_to_string(dir.path().join(d).join("strand.log"));
        let tail = |s: String| s.lines().rev().take(40).collect::<Vec<_>>().join("\n");
        let lag = metric(&writer.query, "strand_kafka_consumer_lag").await;
        panic!(
            "{e}\nwriter consumer lag {lag}\nwriter log (newest first):\n{}",
            tail(log("w").unwrap_or_default())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_message_goes_to_the_dead_letter_topic_through_the_writer() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

    let (k, topic) = kafka_toml(BROKER, "poison", "");
    let dir = tempfile::tempdir().unwrap();
    let writer = Strand::start_target(&dir.path().join("w"), "writer", "", &k);
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", BROKER)
        .set("group.id", unique("dlq-reader"))
        .set("enable.auto.commit", "false");
    let producer: FutureProducer = client.create().unwrap();
    let garbage = b"\x0a\xff\xff\xff not protobuf".to_vec();
    let (trace, good) = request(&unique("poison"), 0, 0);
    for (key, value) in [
        (&b"bad"[..], &garbage),
        (&hex::decode(&trace).unwrap()[..], &good),
    ] {
        producer
            .send(
                FutureRecord::to(&topic)
                    .partition(0)
                    .key(key)
                    .payload(value),
                Duration::from_secs(10),
            )
            .await
            .expect("produce to the span topic");
    }
    let w = writer.query.clone();
    let flowed = eventually(Duration::from_secs(30), async || {
        span_ids(&w, &trace).await.len() == SPANS_PER_REQUEST
    })
    .await;
    assert!(flowed, "the message after the poison one was not stored");

    let dead = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = client.create().unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&format!("{topic}-dlq"), 0, Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                return Some(m.payload().unwrap_or_default().to_vec());
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(
        dead.as_deref(),
        Some(&garbage[..]),
        "poison message in the DLQ"
    );
}
