//! Zipkin v2 ingest through the real binary: the OpenTelemetry Python
//! SDK's Zipkin exporters (JSON and protobuf) send a two-service trace to
//! `strand serve`, found whole through the Jaeger and Tempo APIs; raw
//! requests check gzip, shared spans, partial acceptance and the answers to
//! bad input (400 with the reason, 413, 415).

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::http::{client, get_json, metric};
use common::jaeger::{service_names, tag, wait_trace};
use common::process::Strand;
use common::python;
use common::query::otlp_spans;
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(20);

fn span<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["operationName"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {trace}"))
}

fn parent(span: &Value) -> Option<&str> {
    span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")?["spanID"]
        .as_str()
}

fn has_tag(span: &Value, key: &str) -> bool {
    span["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == key)
}

async fn post(s: &Strand, content_type: &str, gzip: bool, body: Vec<u8>) -> (u16, String) {
    let mut req = client()
        .post(format!("{}/api/v2/spans", s.zipkin))
        .header("content-type", content_type);
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    let r = req
        .body(body)
        .send()
        .await
        .expect("zipkin endpoint reachable");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[tokio::test]
async fn python_zipkin_exporters_json_and_protobuf() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start(dir.path(), "");
    let endpoint = format!("{}/api/v2/spans", s.zipkin);
    for enc in ["json", "proto"] {
        let sent = python::run_json("zipkin_clients.py", &[&endpoint, enc, "r1"]);
        let id = sent["trace_id"].as_str().unwrap();
        let ids = |n: &str| sent["spans"][n].as_str().unwrap().to_string();
        let body = wait_trace(&s.query, id, WITHIN).await;
        let trace = &body["data"][0];
        assert_eq!(
            trace["spans"].as_array().unwrap().len(),
            3,
            "{enc}: {trace}"
        );
        let names = service_names(trace);
        assert_eq!(
            names,
            [format!("zk-back-{enc}"), format!("zk-front-{enc}")],
            "{enc}"
        );
        let (root, call, reserve) = (
            span(trace, "GET /order"),
            span(trace, "call inventory"),
            span(trace, "reserve"),
        );
        assert_eq!(root["spanID"], ids("GET /order"), "{enc}");
        assert_eq!(parent(root), None, "{enc}");
        assert_eq!(parent(call), Some(ids("GET /order").as_str()), "{enc}");
        assert_eq!(
            parent(reserve),
            Some(ids("call inventory").as_str()),
            "{enc}"
        );
        assert_eq!(tag(root, "span.kind")["value"], "server", "{enc}");
        assert_eq!(tag(call, "span.kind")["value"], "client", "{enc}");
        assert_eq!(tag(root, "http.method")["value"], "GET", "{enc}");
        assert_eq!(tag(root, "net.host.ip")["value"], "10.0.0.7", "{enc}");
        assert_eq!(tag(root, "net.host.port")["value"], 8080, "{enc}");
        assert_eq!(tag(reserve, "error")["value"], true, "{enc}");
        assert_eq!(
            tag(reserve, "otel.status_description")["value"],
            "out of stock"
        );
        let event = reserve["logs"][0]["fields"][0]["value"].as_str().unwrap();
        assert!(event.contains("stock checked"), "{enc}: {event}");
        // µs on the wire, µs in Jaeger: the durations survive the ns trip.
        assert!(root["duration"].as_u64().unwrap() >= reserve["duration"].as_u64().unwrap());

        let (code, tempo) = get_json(&format!("{}/api/v2/traces/{id}", s.query)).await;
        assert_eq!(code, 200, "{enc}: {tempo}");
        assert_eq!(otlp_spans(&tempo["trace"]).len(), 3, "{enc}: {tempo}");
    }
    let received = r#"strand_ingest_spans_received_total{transport="zipkin"}"#;
    assert!(metric(&s.query, received).await >= 6);
}

#[tokio::test]
async fn gzip_shared_spans_partial_acceptance_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start(dir.path(), "");
    let t = now_us() - 5_000_000;
    // A client span and the server half that reuses its id (B3 shared
    // spans), plus the server's own child, gzipped.
    let trace = "5af7183fb1d4cf5f";
    let spans = format!(
        r#"[{{"traceId":"{trace}","id":"00000000000000a1","name":"checkout","kind":"SERVER","timestamp":{t},"duration":900,"localEndpoint":{{"serviceName":"web"}}}},
           {{"traceId":"{trace}","id":"00000000000000b2","parentId":"00000000000000a1","name":"pay","kind":"CLIENT","timestamp":{},"duration":500,"localEndpoint":{{"serviceName":"web"}},"remoteEndpoint":{{"serviceName":"payments","ipv4":"10.1.1.1","port":443}}}},
           {{"traceId":"{trace}","id":"00000000000000b2","parentId":"00000000000000a1","name":"pay","kind":"SERVER","shared":true,"timestamp":{},"duration":300,"localEndpoint":{{"serviceName":"payments"}},"debug":true}},
           {{"traceId":"{trace}","id":"00000000000000c3","parentId":"00000000000000b2","name":"charge","timestamp":{},"duration":100,"localEndpoint":{{"serviceName":"payments"}},"tags":{{"error":"card declined"}}}}]"#,
        t + 100,
        t + 150,
        t + 200
    );
    let (code, body) = post(&s, "application/json", true, gzip(spans.as_bytes())).await;
    assert_eq!((code, body.as_str()), (202, ""));
    // 64-bit trace ids are left-padded to 128 bits.
    let full = format!("{trace:0>32}");
    let got = wait_trace(&s.query, &full, WITHIN).await;
    let trace_v = &got["data"][0];
    let all = trace_v["spans"].as_array().unwrap();
    assert_eq!(all.len(), 4, "{trace_v}");
    let client = all
        .iter()
        .find(|s| s["operationName"] == "pay" && tag(s, "span.kind")["value"] == "client")
        .unwrap();
    let server = all
        .iter()
        .find(|s| s["operationName"] == "pay" && tag(s, "span.kind")["value"] == "server")
        .unwrap();
    assert_eq!(client["spanID"], "00000000000000b2");
    assert_ne!(
        server["spanID"], client["spanID"],
        "shared halves kept apart"
    );
    assert_eq!(
        parent(server),
        Some("00000000000000b2"),
        "server under its client"
    );
    assert_eq!(
        tag(server, "zipkin.shared_span_id")["value"],
        "00000000000000b2"
    );
    assert_eq!(parent(span(trace_v, "charge")), server["spanID"].as_str());
    assert_eq!(tag(client, "peer.service")["value"], "payments");
    assert_eq!(tag(client, "net.peer.ip")["value"], "10.1.1.1");
    assert_eq!(tag(client, "net.peer.port")["value"], 443);
    assert_eq!(
        tag(span(trace_v, "charge"), "otel.status_description")["value"],
        "card declined"
    );
    assert!(has_tag(server, "sampling.priority"), "debug marks keep");

    // Protobuf with an invalid span: the rest is stored, the reason told.
    let (code, body) = post(
        &s,
        "application/json",
        false,
        format!(r#"[{{"traceId":"77","id":"1","name":"ok","timestamp":{t}}},{{"traceId":"0","id":"2","timestamp":{t}}}]"#).into_bytes(),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert!(
        body.contains("rejected 1 of 2 spans") && body.contains("trace_id is all zero"),
        "{body}"
    );
    wait_trace(&s.query, &format!("{:0>32}", "77"), WITHIN).await;

    for (body, want) in [
        (&b"{\"not\": \"a list\"}"[..], "invalid Zipkin JSON"),
        (br#"[{"traceId":"zz","id":"1"}]"#, "traceId \"zz\""),
        (
            b"[{\"traceId\":\"1\",\"id\":\"1\",\"timestamp\":\"x\"}]",
            "invalid type",
        ),
    ] {
        let (code, text) = post(&s, "application/json", false, body.to_vec()).await;
        assert_eq!(code, 400, "{text}");
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    let (code, text) = post(
        &s,
        "application/x-protobuf",
        false,
        b"\x0a\xff\xff".to_vec(),
    )
    .await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("invalid Zipkin protobuf"), "{text}");
    let (code, text) = post(&s, "application/x-thrift", false, b"[]".to_vec()).await;
    assert_eq!(code, 415, "{text}");
    // Over the 16 MiB default, declared and as a gzip bomb.
    let (code, _) = post(&s, "application/json", false, vec![b' '; (16 << 20) + 1]).await;
    assert_eq!(code, 413);
    let (code, text) = post(&s, "application/json", true, gzip(&vec![b' '; 17 << 20])).await;
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("max_request_bytes"), "{text}");
    // And good requests still go through.
    let (code, _) = post(&s, "application/json", false, b"[]".to_vec()).await;
    assert_eq!(code, 202);
}
