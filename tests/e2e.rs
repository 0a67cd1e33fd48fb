//! End to end through the real binary: real OpenTelemetry SDK exporters
//! (gRPC and HTTP) into `strand serve`, then the query API finds the trace
//! by id and by search, with references, typed attributes, events and status.

mod common;

use std::time::Duration;

use common::conformance::eventually;
use common::process::Strand;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::Value;

fn provider(service: &str, exporter: SpanExporter) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build()
}

fn grpc_exporter(url: &str) -> SpanExporter {
    SpanExporter::builder()
        .with_tonic()
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn http_exporter(url: &str) -> SpanExporter {
    SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{url}/v1/traces"))
        .with_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Emits frontend → checkout (error, with an event) across two services
/// and returns the trace id.
fn emit_trace(front: &SdkTracerProvider, back: &SdkTracerProvider, user: &str) -> String {
    let ft = front.tracer("e2e");
    let bt = back.tracer("e2e");
    let mut root = ft
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .start(&ft);
    root.set_attribute(KeyValue::new("http.request.method", "GET"));
    root.set_attribute(KeyValue::new("http.response.status_code", 502i64));
    root.set_attribute(KeyValue::new("user_id", user.to_string()));
    let trace_id = root.span_context().trace_id().to_string();
    let cx = Context::current_with_span(root);
    let mut child = bt
        .span_builder("charge card")
        .with_kind(SpanKind::Client)
        .start_with_context(&bt, &cx);
    child.set_attribute(KeyValue::new("payment.amount", 12.5f64));
    child.set_attribute(KeyValue::new("payment.retry", true));
    child.add_event("card declined", vec![KeyValue::new("attempt", 2i64)]);
    child.set_status(Status::error("declined"));
    child.end();
    cx.span().end();
    back.force_flush().unwrap();
    front.force_flush().unwrap();
    trace_id
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("query API reachable");
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"].as_array()?.iter().find(|t| t["key"] == key)
}

async fn check_trace(query: &str, trace_id: &str, user: &str) {
    let url = format!("{query}/api/traces/{trace_id}");
    let found = eventually(Duration::from_secs(10), async || {
        get_json(&url).await.0 == 200
    })
    .await;
    assert!(found, "trace {trace_id} not fetchable by id within 10 s");
    let (_, body) = get_json(&url).await;
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
    let status = tag(root, "http.response.status_code").unwrap();
    assert_eq!(
        (status["type"].as_str(), status["value"].as_i64()),
        (Some("int64"), Some(502))
    );
    let amount = tag(child, "payment.amount").unwrap();
    assert_eq!(
        (amount["type"].as_str(), amount["value"].as_f64()),
        (Some("float64"), Some(12.5))
    );
    assert_eq!(tag(child, "payment.retry").unwrap()["type"], "bool");
    assert_eq!(tag(child, "error").unwrap()["value"], true);
    assert_eq!(tag(child, "otel.status_code").unwrap()["value"], "ERROR");
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
    let search = format!(
        "{query}/api/traces?service=frontend&tags=%7B%22user_id%22%3A%22{user}%22%7D&limit=5"
    );
    let (code, body) = get_json(&search).await;
    assert_eq!(code, 200, "{body}");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["traceID"].as_str())
        .collect();
    assert_eq!(ids, vec![trace_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn otel_sdk_over_grpc_and_http_reaches_query_api() {
    let dir = tempfile::tempdir().unwrap();
    let strand = Strand::start(dir.path(), "");

    let (f, b) = (
        provider("frontend", grpc_exporter(&strand.grpc)),
        provider("checkout", grpc_exporter(&strand.grpc)),
    );
    let id = tokio::task::block_in_place(|| emit_trace(&f, &b, "grpc-user"));
    check_trace(&strand.query, &id, "grpc-user").await;

    let (f, b) = (
        provider("frontend", http_exporter(&strand.http)),
        provider("checkout", http_exporter(&strand.http)),
    );
    let id = tokio::task::block_in_place(|| emit_trace(&f, &b, "http-user"));
    check_trace(&strand.query, &id, "http-user").await;

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
