//! Remote sampling from the client side: an `opentelemetry_http` client
//! for the SDK's Jaeger remote sampler, strategies files, the endpoint's
//! answers, and how many of a batch of new root spans an SDK samples.

use std::path::Path;

use bytes::Bytes;
use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
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
