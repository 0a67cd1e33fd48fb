//! Remote sampling from the client side: an `opentelemetry_http` client
//! for the SDK's Jaeger remote sampler, strategies files, the endpoint's
//! answers, and how many of a batch of new root spans an SDK samples.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use prost::Message;
use rand::{RngCore, SeedableRng};
use serde_json::Value;

/// The SDK's remote sampler over the tests' reqwest client.
#[derive(Clone, Debug, Default)]
pub struct Client(reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let resp = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let mut out = Response::builder().status(resp.status().as_u16());
        for (k, v) in resp.headers() {
            out = out.header(k.as_str(), v.as_bytes());
        }
        Ok(out.body(resp.bytes().await?)?)
    }
}

/// Replaces the strategies file in one rename, so the poller never reads
/// half a file.
pub fn write_strategies(path: &Path, json: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A strategies file with one probabilistic service and a default.
pub fn probabilistic(service: &str, p: f64, default: f64) -> String {
    format!(
        r#"{{"service_strategies":[{{"service":"{service}","type":"probabilistic","param":{p}}}],
"default_strategy":{{"type":"probabilistic","param":{default}}}}}"#
    )
}

/// The answer of `{base}{path}?service=`.
pub async fn served(base: &str, path: &str, service: &str) -> (u16, Value) {
    crate::common::http::get_json(&format!("{base}{path}?service={service}")).await
}

/// The sampling probability `answer` gives to `operation` (its default
/// when the operation is not listed).
pub fn probability_of(answer: &Value, operation: &str) -> f64 {
    let ops = &answer["operationSampling"];
    if ops.is_object() {
        let listed = ops["perOperationStrategies"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["operation"] == operation);
        return match listed {
            Some(o) => o["probabilisticSampling"]["samplingRate"].as_f64().unwrap(),
            None => ops["defaultSamplingProbability"].as_f64().unwrap(),
        };
    }
    answer["probabilisticSampling"]["samplingRate"]
        .as_f64()
        .unwrap_or(1.0)
}

/// How many of `n` new root spans named `name` `tracer` samples.
pub fn sampled_of(tracer: &opentelemetry_sdk::trace::SdkTracer, name: &str, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let span = tracer.start(name.to_string());
            let sampled = span.span_context().is_sampled();
            drop(span);
            sampled
        })
        .count()
}

/// Whether `k` of `n` is within `sigmas` standard deviations of `n × p`.
pub fn near(k: usize, n: usize, p: f64, sigmas: f64) -> bool {
    let sd = (n as f64 * p * (1.0 - p)).sqrt().max(1.0);
    (k as f64 - n as f64 * p).abs() <= sigmas * sd
}

/// Sends `rate` root spans per second (in ten batches a second) until
/// dropped; `sent` counts what was acknowledged.
pub fn traffic(
    http: String,
    rate: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut rng = rand::rngs::StdRng::from_entropy();
        loop {
            tick.tick().await;
            let n = rate.load(Ordering::Relaxed) / 10;
            let now = strand::model::now_ns();
            let spans: Vec<crate::common::otlp::Span> = (0..n)
                .map(|_| {
                    let mut id = vec![0u8; 16];
                    rng.fill_bytes(&mut id);
                    crate::common::otlp::Span {
                        trace_id: id,
                        span_id: rng.next_u64().max(1).to_be_bytes().to_vec(),
                        name: "checkout".into(),
                        kind: 2,
                        flags: 0x03,
                        start_time_unix_nano: now,
                        end_time_unix_nano: now + 1_000_000,
                        ..Default::default()
                    }
                })
                .collect();
            let body = crate::common::otlp::request("shop", spans).encode_to_vec();
            if let Ok(r) = crate::common::otlp::post(&client, &http, body).await {
                if r.status() == 200 {
                    sent.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    })
}
