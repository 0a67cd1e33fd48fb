//! OTLP ingest in-process (`common::ingest`): the real OpenTelemetry Rust
//! SDK exporters over gRPC and HTTP, and hand-made bad requests getting the
//! answers listed in docs/INGEST.md, then good requests still succeeding.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use common::ingest::{
    grpc_raw, partial, post, post_proto, request, span, start, with_str, HttpReply, Ingest,
    TestSink,
};
use common::otlp::ExportTraceServiceResponse;
use common::{otel, wait};
use strand::config::Config;
use strand::model::SpanReader;
use strand::model::{AttrValue, StatusCode, TraceId};

/// Emits one trace across two services with the real SDK: frontend
/// (server span with typed attributes and an event, a DB child) calling
/// payments (a server span, remote parent, error status). Returns the
/// trace id. Runs on a blocking thread: the simple processor exports
/// synchronously when each span ends.
fn emit_trace(grpc: Option<SocketAddr>, http: Option<SocketAddr>, tag: &str) -> TraceId {
    use opentelemetry::trace::{
        Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
    };
    use opentelemetry::{Context, KeyValue};
    let provider = |service: String| {
        let exporter = match (grpc, http) {
            (Some(a), _) => otel::grpc_exporter(&format!("http://{a}")),
            (_, Some(a)) => otel::http_exporter(&format!("http://{a}")),
            _ => unreachable!(),
        };
        otel::provider(&service, exporter)
    };
    let frontend = provider(format!("frontend-{tag}"));
    let payments = provider(format!("payments-{tag}"));
    let ft = frontend.tracer("ingest-test");
    let pt_ = payments.tracer("ingest-test");

    let mut root = ft
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .with_attributes(vec![
            KeyValue::new("http.status_code", 500i64),
            KeyValue::new("sample.ratio", 0.25f64),
            KeyValue::new("cache.hit", false),
            KeyValue::new("user.email", "jane@example.com"),
        ])
        .start(&ft);
    root.add_event("cache miss", vec![KeyValue::new("cache.key", "cart:42")]);
    let cx = Context::new().with_span(root);
    let trace_id = TraceId(cx.span().span_context().trace_id().to_bytes());
    let mut db = ft
        .span_builder("SELECT carts")
        .with_kind(SpanKind::Client)
        .start_with_context(&ft, &cx);
    db.end();
    let remote = Context::new().with_remote_span_context(cx.span().span_context().clone());
    let mut charge = pt_
        .span_builder("charge")
        .with_kind(SpanKind::Server)
        .start_with_context(&pt_, &remote);
    charge.set_status(Status::error("card declined"));
    charge.end();
    cx.span().end();
    frontend.shutdown().expect("frontend shutdown");
    payments.shutdown().expect("payments shutdown");
    trace_id
}

async fn sdk_round_trip(ingest: &Ingest, store: &TestSink, grpc: bool) {
    let (g, h, tag) = if grpc {
        (Some(ingest.grpc), None, "grpc")
    } else {
        (None, Some(ingest.http), "http")
    };
    let id = tokio::task::spawn_blocking(move || emit_trace(g, h, tag))
        .await
        .expect("sdk thread");
    let spans = wait::value("three spans", Duration::from_secs(10), async || {
        let s = store.store.trace(id).await.expect("trace");
        (s.len() == 3).then_some(s)
    })
    .await;
    let by = |n: &str| {
        spans
            .iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("no span {n}: {spans:?}"))
    };
    let (root, db, charge) = (by("GET /checkout"), by("SELECT carts"), by("charge"));
    assert_eq!(root.parent_span_id, None);
    assert_eq!(
        db.parent_span_id,
        Some(root.span_id),
        "{tag}: child of root"
    );
    assert_eq!(
        charge.parent_span_id,
        Some(root.span_id),
        "{tag}: remote child of root"
    );
    assert_eq!(root.service_name(), format!("frontend-{tag}"));
    assert_eq!(charge.service_name(), format!("payments-{tag}"));
    assert_eq!(root.attr("http.status_code"), Some(&AttrValue::Int(500)));
    assert_eq!(root.attr("sample.ratio"), Some(&AttrValue::Double(0.25)));
    assert_eq!(root.attr("cache.hit"), Some(&AttrValue::Bool(false)));
    assert_eq!(
        root.attr("user.email"),
        Some(&AttrValue::Str("[REDACTED:email]".into())),
        "PII scrubbed"
    );
    assert_eq!(root.events.len(), 1);
    assert_eq!(root.events[0].name, "cache miss");
    assert_eq!(
        root.events[0].attributes[0].value,
        AttrValue::Str("cart:42".into())
    );
    assert_eq!(charge.status.code, StatusCode::Error);
    assert_eq!(charge.status.message, "card declined");
    assert_eq!(root.kind, strand::model::SpanKind::Server);
    assert!(root.end_ns >= root.start_ns && root.start_ns > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sdk_exports_over_grpc_and_http() {
    let sink = Arc::new(TestSink::default());
    let ingest = start(Config::default(), sink.clone());
    sdk_round_trip(&ingest, &sink, true).await;
    sdk_round_trip(&ingest, &sink, false).await;
    let metrics = strand::metrics::render();
    for t in ["grpc", "http"] {
        let line = format!("strand_ingest_spans_accepted_total{{transport=\"{t}\"}} ");
        let n: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line} in metrics"));
        assert!(n >= 3, "{t}: {n}");
    }
    assert!(metrics.contains("strand_scrub_redactions_total{kind=\"email\"}"));
}

fn small_cfg() -> Config {
    let mut cfg = Config::default();
    cfg.ingest.max_request_bytes = 2 << 20;
    cfg.ingest.max_inflight_bytes = 64 << 20;
    cfg
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

/// A protobuf body whose span name holds invalid UTF-8 (same length, so
/// the framing stays valid: only the string check can catch it).
fn invalid_utf8_body() -> Vec<u8> {
    let mut body = request(vec![span(7, 7, "name-XYZ")]).encode_to_vec();
    let at = body.windows(3).position(|w| w == b"XYZ").expect("marker");
    body[at..at + 3].copy_from_slice(&[0xff, 0xfe, 0xfd]);
    body
}

fn google_status_json(r: &HttpReply) -> (i64, String) {
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON Status body");
    (
        v["code"].as_i64().unwrap_or(-1),
        v["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_documented_answers() {
    let sink = Arc::new(TestSink::default());
    let ing = start(small_cfg(), sink.clone());
    let garbage = vec![0xff, 0xff, 0xff, 0x01, 0x02];
    let oversize = request(vec![with_str(
        span(9, 9, "big"),
        "pad",
        &"x".repeat(3 << 20),
    )])
    .encode_to_vec();

    // Malformed protobuf / JSON / UTF-8 → 400 with a google.rpc.Status body.
    let r = post(ing.http, "application/x-protobuf", &[], garbage.clone()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.content_type, "application/x-protobuf");
    let st = tonic_types::pb::Status::decode(r.body.as_slice()).expect("protobuf Status body");
    assert_eq!(st.code, 3);
    assert!(
        st.message.contains("invalid OTLP protobuf"),
        "{}",
        st.message
    );
    let r = post(
        ing.http,
        "application/json",
        &[],
        b"{\"resourceSpans\": [".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(google_status_json(&r).0, 3);
    let r = post(ing.http, "application/x-protobuf", &[], invalid_utf8_body()).await;
    assert_eq!(r.status, 400);
    // Unsupported media type.
    assert_eq!(
        post(ing.http, "text/plain", &[], b"hi".to_vec())
            .await
            .status,
        415
    );
    // Oversize: plain and as a gzip bomb (small compressed, huge inflated).
    let r = post(ing.http, "application/x-protobuf", &[], oversize.clone()).await;
    assert_eq!(r.status, 413);
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    let r = post(
        ing.http,
        "application/x-protobuf",
        &[("content-encoding", "gzip")],
        bomb,
    )
    .await;
    assert_eq!(r.status, 413);
    assert!(r.retry_after.is_none(), "not retryable");
    let r = post(
        ing.http,
        "application/x-protobuf",
        &[("content-encoding", "gzip")],
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);

    // Per-span rejections: 200 with partial_success; the good span is kept.
    let mut zero = span(0, 1, "zero-trace");
    zero.trace_id = vec![0; 16];
    let mut short = span(3, 3, "short-span-id");
    short.span_id = vec![3; 5];
    let mut backwards = span(3, 4, "backwards");
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let good = span(3, 5, "good");
    let r = post_proto(ing.http, &request(vec![zero, short, backwards, good])).await;
    assert_eq!(r.status, 200);
    let resp = ExportTraceServiceResponse::decode(r.body.as_slice()).expect("response");
    let (rejected, msg) = partial(&resp);
    assert_eq!(rejected, 3);
    for want in [
        "trace_id is all zero",
        "span_id is 5 bytes",
        "before start_time_unix_nano",
    ] {
        assert!(msg.contains(want), "{want:?} not in {msg:?}");
    }
    let stored = sink.store.trace(TraceId([3; 16])).await.expect("trace");
    assert_eq!(
        stored.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["good"]
    );

    // Same over JSON (hex ids), answered in JSON.
    let body = serde_json::json!({"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"00000000000000000000000000000000","spanId":"0101010101010101","name":"z",
         "startTimeUnixNano":"1","endTimeUnixNano":"2"},
        {"traceId":"0404040404040404040404040404040404","spanId":"0101010101010101","name":"long-trace-id",
         "startTimeUnixNano":"1","endTimeUnixNano":"2"},
        {"traceId":"0D0D0D0D0D0D0D0D0D0D0D0D0D0D0D0D","spanId":"0101010101010101","parentSpanId":"0202020202020202",
         "name":"json-good","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":"1700000000000000000",
         "endTimeUnixNano":1700000000000000500u64,"status":{"code":2},
         "attributes":[{"key":"n","value":{"intValue":"9007199254740993"}}]}]}]}]});
    let r = post(
        ing.http,
        "application/json",
        &[],
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "2");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("trace_id is 17 bytes"),
        "{v}"
    );
    let stored = sink.store.trace(TraceId([13; 16])).await.expect("trace");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].kind, stored[0].duration_ns()),
        (strand::model::SpanKind::Client, 500)
    );
    assert_eq!(stored[0].parent_span_id.map(|p| p.0), Some([2; 8]));
    assert_eq!(
        stored[0].attr("n"),
        Some(&AttrValue::Int(9_007_199_254_740_993)),
        "int64 beyond f64 precision"
    );
    assert!(stored[0].is_error());

    // A 1 MB attribute value is truncated (a warning, nothing rejected).
    let big = with_str(span(5, 5, "big-attr"), "blob", &"é".repeat(500_000));
    let r = post_proto(ing.http, &request(vec![big])).await;
    assert_eq!(r.status, 200);
    let (rejected, msg) =
        partial(&ExportTraceServiceResponse::decode(r.body.as_slice()).expect("response"));
    assert_eq!(rejected, 0);
    assert!(
        msg.contains("truncated 1 values longer than 65536 bytes"),
        "{msg}"
    );
    let stored = sink.store.trace(TraceId([5; 16])).await.expect("trace");
    let Some(AttrValue::Str(blob)) = stored[0].attr("blob") else {
        panic!("blob missing")
    };
    assert_eq!(blob.len(), 65536);

    // gRPC: malformed, invalid UTF-8, oversize (plain and gzip) → INVALID_ARGUMENT.
    for (what, body) in [
        ("garbage", garbage),
        ("utf8", invalid_utf8_body()),
        ("oversize", oversize),
    ] {
        let e = grpc_raw(ing.grpc, body, &[]).await.expect_err(what);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
    }
    let mut client = strand::otlp::proto::collector::trace::v1::trace_service_client::TraceServiceClient::connect(
        format!("http://{}", ing.grpc),
    )
    .await
    .expect("connect")
    .send_compressed(tonic::codec::CompressionEncoding::Gzip)
    .max_encoding_message_size(usize::MAX);
    let huge = with_str(span(8, 8, "gzip-bomb"), "pad", &"0".repeat(8 << 20));
    let e = client
        .export(request(vec![huge]))
        .await
        .expect_err("gzip oversize");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let zero = span(6, 0, "zero-span-id");
    let r = client
        .export(request(vec![zero, span(6, 6, "ok")]))
        .await
        .expect("partial")
        .into_inner();
    assert_eq!(partial(&r).0, 1);
    assert!(partial(&r).1.contains("span_id is all zero"));

    // And afterwards good requests still succeed on every path.
    let r = client
        .export(request(vec![span(10, 1, "after-grpc")]))
        .await
        .expect("grpc ok")
        .into_inner();
    assert_eq!(r.partial_success, None);
    let r = post_proto(ing.http, &request(vec![span(11, 1, "after-http")])).await;
    assert_eq!(
        (r.status, r.body.is_empty()),
        (200, true),
        "full success is an empty response"
    );
    let r = post(
        ing.http,
        "application/x-protobuf",
        &[("content-encoding", "gzip")],
        gzip(&request(vec![span(12, 1, "after-gzip")]).encode_to_vec()),
    )
    .await;
    assert_eq!(r.status, 200);
    for t in [6u8, 10, 11, 12] {
        assert_eq!(
            sink.store
                .trace(TraceId([t; 16]))
                .await
                .expect("trace")
                .len(),
            1,
            "trace {t}"
        );
    }
}
