//! Load on a running ingest process: concurrent OTLP/HTTP senders that
//! retry 429/503 (as OTel exporters do) and record which traces were
//! acknowledged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;

use super::otlp;
use super::process::Strand;

/// Spans in each request; one request is one trace.
pub const SPANS_PER_REQUEST: usize = 10;

/// Request `seq` of `worker`: a trace of SPANS_PER_REQUEST spans of
/// `service`, span ids unique across workers. Returns (trace id, body).
pub fn request(service: &str, worker: u64, seq: u64) -> (String, Vec<u8>) {
    let trace_id = otlp::trace_id(worker + 1, seq + 1);
    let first_span = 1 + (seq << 8) + (worker << 40);
    let spans = otlp::spans_now(trace_id, SPANS_PER_REQUEST as u64, first_span, vec![]);
    let req = otlp::request(service, spans);
    (hex::encode(trace_id), req.encode_to_vec())
}

#[derive(Default)]
pub struct Load {
    acked: Mutex<Vec<String>>,
    pub retryable: AtomicU64,
    pub stop: AtomicBool,
}

impl Load {
    pub fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap().clone()
    }

    /// `workers` senders of up to `per_worker` requests each to `ingest`.
    pub fn start(
        self: &Arc<Self>,
        ingest: &Strand,
        service: &str,
        workers: u64,
        per_worker: u64,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        // A client of this test's runtime, keeping its connections alive.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        (0..workers)
            .map(|w| {
                let (load, http, client, service) = (
                    self.clone(),
                    ingest.http.clone(),
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
                            let r = otlp::post(&client, &http, body.clone())
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

    /// Stops the senders and waits for them.
    pub async fn finish(&self, workers: Vec<tokio::task::JoinHandle<()>>) {
        self.stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await.expect("load worker");
        }
    }
}
