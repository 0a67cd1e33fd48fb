//! Context propagation tested for real: three Python services
//! (tests/propagation_services.py: http.server + the OpenTelemetry SDK)
//! call each other over HTTP carrying the context with W3C TraceContext,
//! B3 single-header or B3 multi-header, and export to `strand serve`
//! (OTLP/HTTP, and the Zipkin exporter on some hops). The stored trace has
//! the parent/child links the SDKs recorded across every hop, and a mixed
//! chain (W3C in, B3 out of service 2) keeps one trace id.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::jaeger::trace_spans;
use common::process::Strand;
use common::python;
use common::wait;
use serde_json::Value;

/// The trace as the SDKs recorded it, checked against what strand serves.
async fn check(s: &Strand, scenario: &str, want_headers: &[&str]) {
    let otlp = format!("{}/v1/traces", s.http);
    let zipkin = format!("{}/api/v2/spans", s.zipkin);
    let sent = python::run_json("propagation_services.py", &[&otlp, &zipkin, scenario, "p1"]);
    let ids = sent["trace_ids"].as_array().unwrap();
    assert_eq!(
        ids.len(),
        1,
        "{scenario}: one trace id across the hops: {sent}"
    );
    let trace = ids[0].as_str().unwrap();
    // Each service saw exactly the headers of its hop's propagator.
    for (i, seen) in sent["headers"].as_array().unwrap().iter().enumerate() {
        let seen: Vec<&str> = seen
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        assert_eq!(
            seen,
            want_headers[i].split(',').collect::<Vec<_>>(),
            "{scenario}: hop {i}"
        );
    }
    let recorded: BTreeMap<String, Option<String>> = sent["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["span_id"].as_str().unwrap().to_string(),
                s["parent_id"].as_str().map(String::from),
            )
        })
        .collect();
    assert_eq!(recorded.len(), 7, "{scenario}: {sent}");
    let mut stored = Vec::new();
    let whole = wait::eventually(Duration::from_secs(20), async || {
        stored = trace_spans(&s.query, trace).await;
        stored.len() == recorded.len()
    })
    .await;
    assert!(whole, "{scenario}: {} of 7 spans stored", stored.len());
    let served: BTreeMap<String, Option<String>> = stored
        .iter()
        .map(|sp: &Value| {
            let parent = sp["references"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["refType"] == "CHILD_OF")
                .map(|r| r["spanID"].as_str().unwrap().to_string());
            (sp["spanID"].as_str().unwrap().to_string(), parent)
        })
        .collect();
    assert_eq!(served, recorded, "{scenario}: parent links");
    // One root; every other span's parent is in the trace.
    let roots = served.values().filter(|p| p.is_none()).count();
    assert_eq!(roots, 1, "{scenario}");
    assert!(
        served.values().flatten().all(|p| served.contains_key(p)),
        "{scenario}"
    );
}

#[tokio::test]
async fn w3c_b3_single_b3_multi_and_a_mixed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start(dir.path(), "");
    let w3c = "traceparent";
    let single = "b3";
    let multi = "x-b3-sampled,x-b3-spanid,x-b3-traceid";
    check(&s, "w3c", &[w3c, w3c, w3c]).await;
    check(&s, "b3single", &[single, single, single]).await;
    check(&s, "b3multi", &[multi, multi, multi]).await;
    check(&s, "mixed", &[w3c, w3c, multi]).await;
}
