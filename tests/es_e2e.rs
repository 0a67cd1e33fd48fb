//! The Elasticsearch tier through the real binary, against a real
//! Elasticsearch (`common::es`). Each test has its own index prefix and
//! deletes its indices at the end.
//!
//! - OTel SDK → `strand serve` → found by id and by tag; then a query-only
//!   process with an empty hot store finds it from Elasticsearch alone.
//! - Spans straddling 00:00 UTC land in two daily indices; the trace is
//!   fetched whole.
//!
//! The outage under load is in es_e2e_outage.rs.

mod common;

use std::time::Duration;

use opentelemetry::trace::Span as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{json, Value};

use common::http::{client, get_json};
use common::jaeger::{op_names, service_names, trace_ids, user_search_url, wait_trace};
use common::otlp::{self, Span};
use common::process::Strand;
use common::{es, otel, wait};

const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// frontend `GET /cart` → cart `load cart`; returns the trace id.
fn emit(front: &SdkTracerProvider, back: &SdkTracerProvider, user: &str) -> String {
    let root_attrs = vec![
        KeyValue::new("user_id", user.to_string()),
        KeyValue::new("http.response.status_code", 200i64),
    ];
    otel::emit_trace(front, back, "GET /cart", root_attrs, "load cart", |child| {
        child.set_attribute(KeyValue::new("db.system", "postgresql"));
    })
}

/// Trace by id (both spans, both services) and tag search through the
/// query API of `query`.
async fn assert_found(query: &str, trace: &str, user: &str) {
    let body = wait_trace(query, trace, Duration::from_secs(15)).await;
    let t = &body["data"][0];
    assert_eq!(op_names(t), ["GET /cart", "load cart"], "{body}");
    assert_eq!(service_names(t), ["cart", "frontend"], "{body}");

    let (code, body) = get_json(&user_search_url(query, "frontend", user)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(trace_ids(&body), vec![trace.to_string()]);
    let (_, body) = get_json(&user_search_url(query, "frontend", "nobody")).await;
    assert!(trace_ids(&body).is_empty(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn otel_trace_is_found_in_elasticsearch_after_the_hot_store_is_gone() {
    let url = es::require().await;
    let prefix = es::unique_prefix("e2e-sdk");
    let es = es::toml_section(&url, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let mut strand = Strand::start(&dir.path().join("all"), &es);

    let (f, b) = (
        otel::grpc_provider("frontend", &strand.grpc),
        otel::grpc_provider("cart", &strand.grpc),
    );
    let user = format!("u-{}", std::process::id());
    let trace = tokio::task::block_in_place(|| emit(&f, &b, &user));
    assert_found(&strand.query, &trace, &user).await;

    // Both spans reach Elasticsearch on their own (the flusher), then the
    // writer goes away with its hot store.
    let pattern = format!("{prefix}-spans-*");
    let indexed = wait::eventually(Duration::from_secs(30), async || {
        es::count(&url, &pattern, json!({"term": {"trace_id": trace}})).await == 2
    })
    .await;
    assert!(
        indexed,
        "trace {trace} not indexed in Elasticsearch within 30 s"
    );
    strand.stop();

    // A query-only process over an empty hot store: every answer comes from
    // Elasticsearch, through the binary's tiered reader.
    let reader = Strand::start_target(&dir.path().join("query"), "query", "", &es);
    assert_found(&reader.query, &trace, &user).await;
    let (_, body) = get_json(&format!("{}/api/services", reader.query)).await;
    let services = body["data"].as_array().cloned().unwrap_or_default();
    assert!(
        services.contains(&json!("frontend")) && services.contains(&json!("cart")),
        "{body}"
    );
    es::delete_indices(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spans_across_midnight_utc_land_in_two_daily_indices() {
    let url = es::require().await;
    let prefix = es::unique_prefix("e2e-midnight");
    let es = es::toml_section(&url, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let strand = Strand::start(&dir.path().join("all"), &es);

    // The last 00:00 UTC; spans from 2 s before to 1 s after it.
    let midnight = strand::model::now_ns() / NS_PER_DAY * NS_PER_DAY;
    let sec = 1_000_000_000u64;
    let trace = [0x4d; 16];
    let starts = [
        midnight - 2 * sec,
        midnight - sec,
        midnight - 1,
        midnight,
        midnight + sec,
    ];
    let spans = starts
        .iter()
        .enumerate()
        .map(|(i, &start)| Span {
            trace_id: trace.to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            parent_span_id: if i == 0 {
                vec![]
            } else {
                1u64.to_be_bytes().to_vec()
            },
            name: format!("step-{i}"),
            kind: 1,
            start_time_unix_nano: start,
            end_time_unix_nano: start + sec / 2,
            ..Default::default()
        })
        .collect();
    let req = otlp::request(&format!("{prefix}-svc"), spans);
    assert_eq!(otlp::post_status(client(), &strand.http, &req).await, 200);

    let (before, after) = (
        strand::elasticsearch::daily_index(&prefix, midnight - 1),
        strand::elasticsearch::daily_index(&prefix, midnight),
    );
    let per_index = async |index: &str| es::count(&url, index, json!({"match_all": {}})).await;
    let split = wait::eventually(Duration::from_secs(30), async || {
        per_index(&before).await == 3 && per_index(&after).await == 2
    })
    .await;
    assert!(
        split,
        "{before}: {} docs (want 3), {after}: {} docs (want 2)",
        per_index(&before).await,
        per_index(&after).await
    );

    // Whole from Elasticsearch alone, by id and by a window across midnight.
    let reader = Strand::start_target(&dir.path().join("query"), "query", "", &es);
    let hex = hex::encode(trace);
    let (code, body) = get_json(&format!("{}/api/traces/{hex}", reader.query)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        op_names(&body["data"][0]),
        ["step-0", "step-1", "step-2", "step-3", "step-4"],
        "{body}"
    );
    for (from, to) in [
        (midnight - 10 * sec, midnight + 10 * sec),
        (midnight - 10 * sec, midnight - sec / 2),
        (midnight, midnight + 10 * sec),
    ] {
        let url = format!(
            "{}/api/traces?service={prefix}-svc&start={}&end={}&limit=5",
            reader.query,
            from / 1000,
            to / 1000
        );
        // Polled: under indexing load Elasticsearch may refuse a search
        // for a moment (strand then answers from the hot store, here empty).
        let mut body = Value::Null;
        let found = wait::eventually(Duration::from_secs(30), async || {
            let (code, b) = get_json(&url).await;
            assert_eq!(code, 200, "{b}");
            body = b;
            trace_ids(&body) == vec![hex.clone()]
        })
        .await;
        assert!(
            found,
            "window {from}..{to}: {body}; strand log (newest first):\n{}",
            reader.log_tail(30)
        );
        let spans = body["data"][0]["spans"].as_array().map_or(0, Vec::len);
        assert_eq!(spans, 5, "search returns the whole trace");
    }
    es::delete_indices(&url, &prefix).await;
}
