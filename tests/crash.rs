//! Crash safety through the real binary: a strand child ingests under
//! concurrent load with small segments (so sealing is under way too), is
//! killed with SIGKILL mid-stream and restarted. Every span whose export was
//! acknowledged must be served; a request that was in flight is served
//! whole or not at all, and every served span is exactly what was sent.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::Strand;
use prost::Message;
use serde_json::Value;
use strand::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use strand::otlp::proto::common::v1::{any_value, AnyValue, KeyValue};
use strand::otlp::proto::resource::v1::Resource;
use strand::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

const SPANS_PER_REQUEST: usize = 20;

fn request(worker: u64, seq: u64) -> (String, ExportTraceServiceRequest) {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(worker + 1).to_be_bytes());
    trace_id[8..].copy_from_slice(&(seq + 1).to_be_bytes());
    let now = strand::model::now_ns();
    let spans = (0..SPANS_PER_REQUEST as u64)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: (i + 1 + (seq << 8)).to_be_bytes().to_vec(),
            name: format!("op-{i}"),
            kind: 2,
            start_time_unix_nano: now + i,
            end_time_unix_nano: now + i + 1_000_000,
            attributes: vec![KeyValue {
                key: "seq".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(seq as i64)),
                }),
                key_strindex: 0,
            }],
            ..Default::default()
        })
        .collect();
    let service = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!("crash-{worker}"))),
        }),
        key_strindex: 0,
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![service],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (hex::encode(trace_id), req)
}

#[derive(Default)]
struct Ledger {
    acked: Vec<(String, u64)>,
    in_flight: HashMap<String, u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_spans_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut strand = Strand::start(dir.path(), "segment_max_spans = 400\n");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let client = reqwest::Client::new();
    let url = format!("{}/v1/traces", strand.http);

    let mut workers = Vec::new();
    for w in 0..6u64 {
        let (ledger, client, url) = (ledger.clone(), client.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            for seq in 0..100_000u64 {
                let (trace, req) = request(w, seq);
                let body = req.encode_to_vec();
                ledger.lock().unwrap().in_flight.insert(trace.clone(), seq);
                loop {
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(body.clone())
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().is_success() => {
                            let mut l = ledger.lock().unwrap();
                            l.in_flight.remove(&trace);
                            l.acked.push((trace, seq));
                            break;
                        }
                        // Backpressure: retry as an OTLP exporter would.
                        Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        // The server is gone: this request's fate is unknown.
                        Err(_) => return,
                    }
                }
            }
        }));
    }
    // Let load build up until a few seals must have happened, then crash.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ledger.lock().unwrap().acked.len() * SPANS_PER_REQUEST < 10_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingest made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    strand.kill9();
    for w in workers {
        let _ = w.await;
    }
    let (acked, in_flight) = {
        let l = ledger.lock().unwrap();
        (l.acked.clone(), l.in_flight.clone())
    };
    assert!(acked.len() * SPANS_PER_REQUEST >= 10_000);

    strand.restart();
    let fetch = |trace: String| {
        let (client, q) = (client.clone(), strand.query.clone());
        async move {
            let r = client
                .get(format!("{q}/api/traces/{trace}"))
                .send()
                .await
                .unwrap();
            match r.status().as_u16() {
                404 => Vec::new(),
                200 => {
                    let v: Value = r.json().await.unwrap();
                    v["data"][0]["spans"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                }
                other => panic!("unexpected status {other} for {trace}"),
            }
        }
    };
    let seq_of = |s: &Value| {
        s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "seq")
            .and_then(|t| t["value"].as_i64())
            .unwrap() as u64
    };
    for (trace, seq) in &acked {
        let spans = fetch(trace.clone()).await;
        assert_eq!(
            spans.len(),
            SPANS_PER_REQUEST,
            "acknowledged trace {trace} lost spans after SIGKILL"
        );
        assert!(
            spans.iter().all(|s| seq_of(s) == *seq),
            "trace {trace} served foreign data"
        );
    }
    for (trace, seq) in &in_flight {
        let spans = fetch(trace.clone()).await;
        assert!(
            spans.is_empty() || spans.len() == SPANS_PER_REQUEST,
            "in-flight trace {trace} served half-written: {} spans",
            spans.len()
        );
        assert!(spans.iter().all(|s| seq_of(s) == *seq));
    }
}
