//! Ingest-to-visible lag: sampled trace ids are polled on the query API
//! (`GET /api/traces/{id}`) from the moment their request was sent until
//! the trace is returned.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use super::stats::{Histogram, Percentiles};
use crate::model::TraceId;

const POLL_EVERY: Duration = Duration::from_millis(25);

#[derive(Clone, Debug, Default, Serialize)]
pub struct LagReport {
    pub sampled: u64,
    pub found: u64,
    /// Sampled traces not visible within the timeout.
    pub missing: u64,
    pub missing_ids: Vec<String>,
    pub lag_ms: Percentiles,
}

/// Whether a `GET /api/traces/{id}` response carries the trace (Jaeger
/// `data`, or Tempo/OTLP `batches` / `resourceSpans`).
pub fn response_has_trace(body: &serde_json::Value) -> bool {
    let nonempty = |k: &str| {
        body.get(k)
            .and_then(|v| v.as_array())
            .is_some_and(|a| !a.is_empty())
    };
    nonempty("data") || nonempty("batches") || nonempty("resourceSpans")
}

pub async fn is_visible(client: &reqwest::Client, query_url: &str, id: TraceId) -> bool {
    let url = format!(
        "{}/api/traces/{}",
        query_url.trim_end_matches('/'),
        id.to_hex()
    );
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => r
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|b| response_has_trace(&b)),
        _ => false,
    }
}

/// Polls every sample received on `rx` until found or `timeout` after its
/// send; returns when `rx` is closed and nothing is pending.
pub async fn track(
    query_url: String,
    mut rx: mpsc::UnboundedReceiver<(TraceId, Instant)>,
    timeout: Duration,
) -> LagReport {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut pending: Vec<(TraceId, Instant)> = Vec::new();
    let mut hist = Histogram::default();
    let mut report = LagReport::default();
    let mut open = true;
    loop {
        while open {
            match rx.try_recv() {
                Ok(s) => {
                    report.sampled += 1;
                    pending.push(s);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && pending.is_empty() {
            break;
        }
        let checks = pending
            .iter()
            .map(|(id, _)| is_visible(&client, &query_url, *id));
        let visible = futures::future::join_all(checks).await;
        let now = Instant::now();
        let mut keep = Vec::with_capacity(pending.len());
        for ((id, sent), seen) in pending.into_iter().zip(visible) {
            if seen {
                hist.record(now.duration_since(sent).as_micros() as u64);
                report.found += 1;
            } else if now.duration_since(sent) > timeout {
                report.missing += 1;
                report.missing_ids.push(id.to_hex());
            } else {
                keep.push((id, sent));
            }
        }
        pending = keep;
        tokio::time::sleep(POLL_EVERY).await;
    }
    report.lag_ms = hist.percentiles_ms();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_jaeger_and_tempo_shapes() {
        assert!(response_has_trace(
            &serde_json::json!({"data": [{"traceID": "ab", "spans": []}]})
        ));
        assert!(response_has_trace(&serde_json::json!({"batches": [{}]})));
        assert!(!response_has_trace(
            &serde_json::json!({"data": [], "errors": [{"code": 404}]})
        ));
        assert!(!response_has_trace(&serde_json::json!({"data": null})));
    }
}
