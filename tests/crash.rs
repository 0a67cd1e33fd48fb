//! Crash safety through the real binary: a strand child ingests under
//! concurrent load with small segments (so sealing is under way too), is
//! killed with SIGKILL mid-stream and restarted. Every span whose export was
//! acknowledged must be served; a request that was in flight is served
//! whole or not at all, and every served span is exactly what was sent.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use serde_json::Value;

use common::jaeger::{tag, trace_spans};
use common::otlp::{self, any_value, kv, ExportTraceServiceRequest};
use common::process::Strand;
use common::wait;

const SPANS_PER_REQUEST: usize = 20;

/// Request `seq` of `worker`: one trace of service `crash-<worker>`, each
/// span tagged with `seq`.
fn request(worker: u64, seq: u64) -> (String, ExportTraceServiceRequest) {
    let trace_id = otlp::trace_id(worker + 1, seq + 1);
    let seq_attr = kv("seq", any_value::Value::IntValue(seq as i64));
    let first_span = 1 + (seq << 8);
    let spans = otlp::spans_now(
        trace_id,
        SPANS_PER_REQUEST as u64,
        first_span,
        vec![seq_attr],
    );
    let req = otlp::request(&format!("crash-{worker}"), spans);
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

    let mut workers = Vec::new();
    for w in 0..6u64 {
        let (ledger, client, http) = (ledger.clone(), client.clone(), strand.http.clone());
        workers.push(tokio::spawn(async move {
            for seq in 0..100_000u64 {
                let (trace, req) = request(w, seq);
                let body = req.encode_to_vec();
                ledger.lock().unwrap().in_flight.insert(trace.clone(), seq);
                loop {
                    let resp = otlp::post(&client, &http, body.clone()).await;
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
    wait::until(
        "10,000 acknowledged spans (ingest made no progress)",
        Duration::from_secs(60),
        async || ledger.lock().unwrap().acked.len() * SPANS_PER_REQUEST >= 10_000,
    )
    .await;
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
    let seq_of = |s: &Value| tag(s, "seq")["value"].as_i64().unwrap() as u64;
    for (trace, seq) in &acked {
        let spans = trace_spans(&strand.query, trace).await;
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
        let spans = trace_spans(&strand.query, trace).await;
        assert!(
            spans.is_empty() || spans.len() == SPANS_PER_REQUEST,
            "in-flight trace {trace} served half-written: {} spans",
            spans.len()
        );
        assert!(spans.iter().all(|s| seq_of(s) == *seq));
    }
}
