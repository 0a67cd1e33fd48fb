//! The Elasticsearch tier through the real binary with Elasticsearch
//! unreachable under load (`common::es`): every request is acknowledged,
//! hot queries keep answering, and once Elasticsearch is back the durable
//! backlog drains into it, every span searchable there.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strand::model::SpanReader;

use common::http::{get_json, metric};
use common::jaeger::{missing, trace_ids, trace_spans};
use common::otlp::{self, any_value, kv, ExportTraceServiceRequest};
use common::process::{free_port, Strand};
use common::{es, wait};

const SPANS_PER_REQUEST: u64 = 50;
const WORKERS: u64 = 4;

/// How long Elasticsearch stays unreachable (the 60 s by default).
fn outage() -> Duration {
    let secs = std::env::var("STRAND_ES_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Request `seq` of `worker`: one trace of service `outage-<worker>`.
fn load_request(worker: u64, seq: u64) -> (String, ExportTraceServiceRequest) {
    let id = otlp::trace_id(0xE5_0000 + worker, seq + 1);
    let seq_attr = kv("seq", any_value::Value::IntValue(seq as i64));
    let mut spans = otlp::spans_now(id, SPANS_PER_REQUEST, 1, vec![seq_attr]);
    for (i, s) in spans.iter_mut().enumerate() {
        s.name = format!("op-{}", i % 5);
    }
    (
        hex::encode(id),
        otlp::request(&format!("outage-{worker}"), spans),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn elasticsearch_outage_under_load_loses_nothing_and_drains() {
    let url = es::require().await;
    let prefix = es::unique_prefix("e2e-outage");
    // strand talks to Elasticsearch through a port where nothing listens
    // yet (connections refused, as when the node is stopped); the shared
    // server stays undisturbed for other tests. Later a forwarder to the
    // real node opens on that port: Elasticsearch is back.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let strand = Strand::start(
        dir.path(),
        &es::toml_section(&format!("http://127.0.0.1:{port}"), &prefix),
    );
    // The senders' own client, keeping its connections alive.
    let client = reqwest::Client::new();

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (acked, stop, client, http) = (
            acked.clone(),
            stop.clone(),
            client.clone(),
            strand.http.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let (trace, req) = load_request(w, seq);
                // Retried until acknowledged: every attempted span is then
                // acknowledged, so the final counts are exact.
                let mut tries = 0;
                while otlp::post_status(&client, &http, &req).await != 200 {
                    tries += 1;
                    assert!(tries < 100, "request {trace} never acknowledged");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                acked.lock().unwrap().push(trace);
                seq += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    // Throughout the outage, hot queries answer: the newest acknowledged
    // trace is served whole and search finds traces.
    let deadline = tokio::time::Instant::now() + outage();
    let mut probes = 0;
    while tokio::time::Instant::now() < deadline {
        let last = acked.lock().unwrap().last().cloned();
        if let Some(trace) = last {
            assert_eq!(
                trace_spans(&strand.query, &trace).await.len(),
                SPANS_PER_REQUEST as usize,
                "hot query for {trace} failed while Elasticsearch was down"
            );
            let (code, body) = get_json(&format!(
                "{}/api/traces?service=outage-0&limit=3",
                strand.query
            ))
            .await;
            assert_eq!(
                code, 200,
                "search failed while Elasticsearch was down: {body}"
            );
            assert!(!trace_ids(&body).is_empty(), "{body}");
            probes += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let total = acked.len() as u64 * SPANS_PER_REQUEST;
    assert!(
        probes >= 10 && total >= 5_000,
        "too little load: {total} spans, {probes} probes"
    );
    assert_eq!(es::count_all(&url, &prefix).await, 0);
    // The writer reports them all waiting in its durable backlog.
    let backlog = async || metric(&strand.query, "strand_es_backlog_records").await;
    let reported =
        wait::eventually(Duration::from_secs(10), async || backlog().await == total).await;
    assert!(
        reported,
        "backlog gauge {} != {total} spans",
        backlog().await
    );

    // Every acknowledged span is served (from the hot store).
    let missing = missing(&strand.query, &acked, SPANS_PER_REQUEST as usize).await;
    assert!(
        missing.is_empty(),
        "acknowledged traces not served: {missing:?}"
    );

    // Elasticsearch is back, for the same running process: its backlog
    // drains on its own.
    let back = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("outage port still free");
    let target = url.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = back.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let drained = wait::eventually(Duration::from_secs(120), async || {
        es::count_all(&url, &prefix).await >= total
    })
    .await;
    let got = es::count_all(&url, &prefix).await;
    assert!(
        drained && got == total,
        "{got} of {total} spans in Elasticsearch"
    );

    // Searchable from Elasticsearch itself, not the hot store.
    let store = strand::elasticsearch::EsStore::open(&es::config(&prefix)).unwrap();
    let sample: Vec<&String> = acked.iter().step_by((acked.len() / 40).max(1)).collect();
    for t in sample {
        let id = strand::model::TraceId::from_hex(t).unwrap();
        assert_eq!(
            store.trace(id).await.unwrap().len(),
            SPANS_PER_REQUEST as usize,
            "{t}"
        );
    }
    for w in 0..WORKERS {
        let n = es::count(
            &url,
            &format!("{prefix}-spans-*"),
            serde_json::json!({"term": {"service": format!("outage-{w}")}}),
        )
        .await;
        let sent = acked
            .iter()
            .filter(|t| t.starts_with(&format!("{:016x}", 0xE5_0000 + w)))
            .count() as u64;
        assert_eq!(n, sent * SPANS_PER_REQUEST, "service outage-{w}");
    }
    let q = strand::model::SearchQuery {
        service: Some("outage-1".into()),
        limit: 10_000,
        ..Default::default()
    };
    let hits: HashSet<String> = store
        .search(&q)
        .await
        .unwrap()
        .iter()
        .map(|h| h.trace_id.to_string())
        .collect();
    let want: HashSet<String> = acked
        .iter()
        .filter(|t| t.starts_with(&format!("{:016x}", 0xE5_0001)))
        .cloned()
        .collect();
    assert_eq!(hits, want, "search in Elasticsearch for service outage-1");
    es::delete_indices(&url, &prefix).await;
}
