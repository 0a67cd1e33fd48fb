//! The Jaeger JSON API: reading its answers, and asking a running process.

use std::collections::HashSet;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::http::{enc, get_json};
use super::wait;

/// The tag `key` of a span in Jaeger JSON.
pub fn tag<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("no tags in {span}"))
        .iter()
        .find(|t| t["key"] == key)
        .unwrap_or_else(|| panic!("no tag {key} in {span}"))
}

/// The trace ids of a search answer, in its order.
pub fn trace_ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(|t| t["traceID"].as_str().expect("traceID").to_string())
        .collect()
}

/// The operation names of a trace in Jaeger JSON, sorted.
pub fn op_names(trace: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = trace["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("no spans in {trace}"))
        .iter()
        .filter_map(|s| s["operationName"].as_str())
        .collect();
    names.sort_unstable();
    names
}

/// The service names of a trace's processes in Jaeger JSON, sorted.
pub fn service_names(trace: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = trace["processes"]
        .as_object()
        .unwrap_or_else(|| panic!("no processes in {trace}"))
        .values()
        .map(|p| p["serviceName"].as_str().expect("serviceName"))
        .collect();
    names.sort_unstable();
    names
}

/// Search of `service` for traces whose `user_id` tag is `user`.
pub fn user_search_url(query: &str, service: &str, user: &str) -> String {
    let tags = enc(&format!(r#"{{"user_id":"{user}"}}"#));
    format!("{query}/api/traces?service={service}&tags={tags}&limit=5")
}

/// The spans of `trace` served by the query API at `query` (none on 404).
pub async fn trace_spans(query: &str, trace: &str) -> Vec<Value> {
    match get_json(&format!("{query}/api/traces/{trace}")).await {
        (404, _) => Vec::new(),
        (200, v) => v["data"][0]["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        (code, v) => panic!("GET trace {trace} at {query}: {code} {v}"),
    }
}

/// Waits until `trace` is served by id, and returns the answer.
pub async fn wait_trace(query: &str, trace: &str, within: Duration) -> Value {
    let url = format!("{query}/api/traces/{trace}");
    let found = wait::eventually(within, async || get_json(&url).await.0 == 200).await;
    assert!(
        found,
        "trace {trace} not fetchable at {query} within {within:?}"
    );
    get_json(&url).await.1
}

/// Traces among `acked` not (yet) served with `spans` spans each; fails on
/// a trace that is served with a span twice.
pub async fn missing(query: &str, acked: &[String], spans: usize) -> Vec<String> {
    stream::iter(acked.iter().cloned())
        .map(|t| async move {
            let ids: Vec<String> = trace_spans(query, &t)
                .await
                .iter()
                .map(|s| s["spanID"].to_string())
                .collect();
            let distinct: HashSet<&String> = ids.iter().collect();
            assert_eq!(distinct.len(), ids.len(), "trace {t} served a span twice");
            (ids.len() != spans).then_some(t)
        })
        .buffer_unordered(16)
        .filter_map(|m| async move { m })
        .collect()
        .await
}

/// Polls until every trace in `acked` is served whole, or says what is not.
pub async fn all_served(
    query: &str,
    acked: &[String],
    spans: usize,
    within: Duration,
) -> Result<(), String> {
    let mut left = Vec::new();
    let done = wait::poll(within, Duration::from_millis(500), async || {
        left = missing(query, acked, spans).await;
        left.is_empty().then_some(())
    })
    .await;
    match done {
        Some(()) => Ok(()),
        None => Err(format!(
            "{} of {} acknowledged traces not served whole after {within:?}, e.g. {:?}",
            left.len(),
            acked.len(),
            &left[..left.len().min(3)]
        )),
    }
}
