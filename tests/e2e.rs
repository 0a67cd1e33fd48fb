//! End to end through the real binary: real OpenTelemetry SDK exporters
//! (gRPC and HTTP) into `strand serve`, then the query API finds the trace
//! by id and by search, with references, typed attributes, events and status.

mod common;

use std::time::Duration;

use common::http::get_json;
use common::jaeger::{tag, trace_ids, user_search_url, wait_trace};
use common::otel::{self, grpc_exporter, http_exporter, provider};
use common::process::Strand;
use opentelemetry::trace::{Span as _, Status};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;

/// Emits frontend → checkout (error, with an event) across two services
/// and returns the trace id.
fn emit(front: &SdkTracerProvider, back: &SdkTracerProvider, user: &str) -> String {
    let root_attrs = vec![
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.response.status_code", 502i64),
        KeyValue::new("user_id", user.to_string()),
    ];
    otel::emit_trace(
        front,
        back,
        "GET /checkout",
        root_attrs,
        "charge card",
        |child| {
            child.set_attribute(KeyValue::new("payment.amount", 12.5f64));
            child.set_attribute(KeyValue::new("payment.retry", true));
            child.add_event("card declined", vec![KeyValue::new("attempt", 2i64)]);
            child.set_status(Status::error("declined"));
        },
    )
}

async fn check_trace(query: &str, trace_id: &str, user: &str) {
    let body = wait_trace(query, trace_id, Duration::from_secs(10)).await;
    let trace = &body["data"][0];
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{body}");
    let root = spans
        .iter()
        .find(|s| s["operationName"] == "GET /checkout")
        .unwrap();
    let child = spans
        .iter()
        .find(|s| s["operationName"] == "charge card")
        .unwrap();
    assert_eq!(child["references"][0]["refType"], "CHILD_OF");
    assert_eq!(child["references"][0]["spanID"], root["spanID"]);
    assert_eq!(
        trace["processes"][root["processID"].as_str().unwrap()]["serviceName"],
        "frontend"
    );
    assert_eq!(
        trace["processes"][child["processID"].as_str().unwrap()]["serviceName"],
        "checkout"
    );
    let status = tag(root, "http.response.status_code");
    assert_eq!(
        (status["type"].as_str(), status["value"].as_i64()),
        (Some("int64"), Some(502))
    );
    let amount = tag(child, "payment.amount");
    assert_eq!(
        (amount["type"].as_str(), amount["value"].as_f64()),
        (Some("float64"), Some(12.5))
    );
    assert_eq!(tag(child, "payment.retry")["type"], "bool");
    assert_eq!(tag(child, "error")["value"], true);
    assert_eq!(tag(child, "otel.status_code")["value"], "ERROR");
    let log = &child["logs"][0];
    assert!(
        log["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["value"] == "card declined"),
        "{log}"
    );

    // Search by service + tag finds it; a different user's value does not.
    let (code, body) = get_json(&user_search_url(query, "frontend", user)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(trace_ids(&body), vec![trace_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn otel_sdk_over_grpc_and_http_reaches_query_api() {
    let dir = tempfile::tempdir().unwrap();
    let strand = Strand::start(dir.path(), "");

    for (user, front, back) in [
        (
            "grpc-user",
            grpc_exporter(&strand.grpc),
            grpc_exporter(&strand.grpc),
        ),
        (
            "http-user",
            http_exporter(&strand.http),
            http_exporter(&strand.http),
        ),
    ] {
        let (f, b) = (provider("frontend", front), provider("checkout", back));
        let id = tokio::task::block_in_place(|| emit(&f, &b, user));
        check_trace(&strand.query, &id, user).await;
    }

    let (code, body) = get_json(&format!("{}/api/services", strand.query)).await;
    assert_eq!(code, 200);
    let services: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        services.contains(&"frontend") && services.contains(&"checkout"),
        "{body}"
    );
}
