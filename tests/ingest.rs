//! OTLP ingest end to end: the receiver actor and both servers in-process on
//! ephemeral ports, fed by the real OpenTelemetry Rust SDK exporters and by
//! hand-made good and bad requests. Every answer checked here is listed in
//! docs/INGEST.md.

use async_trait::async_trait;
use bytes::BufMut;
use prost::Message;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strand::config::Config;
use strand::error::{Error, Result};
use strand::ingest::{http_server_on, serve_grpc_on, start_receiver};
use strand::model::{AttrValue, Span, StatusCode, TraceId};
use strand::otlp::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use strand::otlp::proto::common::v1 as pc;
use strand::otlp::proto::resource::v1 as pr;
use strand::otlp::proto::trace::v1 as pt;
use strand::store::memory::MemoryStore;
use strand::store::{SpanReader, SpanWriter};

// ---- harness ---------------------------------------------------------------

struct Ingest {
    grpc: SocketAddr,
    http: SocketAddr,
}

/// Runs receiver + servers in their own actix System on a background thread
/// (the test's runtime stays free for clients).
fn start(cfg: Config, sink: Arc<dyn SpanWriter>) -> Ingest {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let receiver = start_receiver(&cfg, sink);
            let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind grpc");
            let http_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind http");
            let addrs = (
                grpc_listener.local_addr().expect("addr"),
                http_listener.local_addr().expect("addr"),
            );
            let http = http_server_on(http_listener, receiver.clone(), cfg.ingest.clone())
                .expect("http server");
            actix_rt::spawn(serve_grpc_on(
                grpc_listener,
                receiver,
                cfg.ingest.clone(),
                std::future::pending(),
            ));
            tx.send(addrs).expect("send addrs");
            http.await.expect("http server ran");
        })
    });
    let (grpc, http) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ingest servers did not start");
    Ingest { grpc, http }
}

/// A MemoryStore in front of which writes can be held (overload) or failed.
#[derive(Default)]
struct TestSink {
    store: MemoryStore,
    hold: AtomicBool,
    gate: tokio::sync::Notify,
    waiting: AtomicUsize,
    fail: parking_lot::Mutex<Option<fn() -> Error>>,
}

#[async_trait]
impl SpanWriter for TestSink {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        if let Some(f) = *self.fail.lock() {
            return Err(f());
        }
        if self.hold.load(Ordering::SeqCst) {
            let notified = self.gate.notified();
            self.waiting.fetch_add(1, Ordering::SeqCst);
            notified.await;
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        self.store.write(spans).await
    }
}

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

// ---- request builders --------------------------------------------------------

fn sv(s: &str) -> Option<pc::AnyValue> {
    Some(pc::AnyValue {
        value: Some(pc::any_value::Value::StringValue(s.into())),
    })
}

fn span(trace: u8, id: u8, name: &str) -> pt::Span {
    pt::Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        ..Default::default()
    }
}

fn request(spans: Vec<pt::Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(pr::Resource {
                attributes: vec![pc::KeyValue {
                    key: "service.name".into(),
                    value: sv("svc"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

// ---- clients -------------------------------------------------------------------

struct HttpReply {
    status: u16,
    retry_after: Option<String>,
    content_type: String,
    body: Vec<u8>,
}

async fn post(
    addr: SocketAddr,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpReply {
    let mut rb = reqwest::Client::new()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", content_type);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.body(body).send().await.expect("http request");
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (status, retry_after, content_type) = (
        r.status().as_u16(),
        h("retry-after"),
        h("content-type").unwrap_or_default(),
    );
    HttpReply {
        status,
        retry_after,
        content_type,
        body: r.bytes().await.expect("body").to_vec(),
    }
}

async fn post_proto(addr: SocketAddr, req: &ExportTraceServiceRequest) -> HttpReply {
    post(addr, "application/x-protobuf", &[], req.encode_to_vec()).await
}

/// Sends raw message bytes over gRPC, so malformed messages can be sent.
async fn grpc_raw(
    addr: SocketAddr,
    body: Vec<u8>,
    meta: &[(&'static str, &str)],
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut g = tonic::client::Grpc::new(ch).max_encoding_message_size(usize::MAX);
    g.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let mut req = tonic::Request::new(body);
    for (k, v) in meta {
        req.metadata_mut().insert(*k, v.parse().expect("metadata"));
    }
    g.unary(req, path, RawCodec).await.map(|r| r.into_inner())
}

#[derive(Clone, Default)]
struct RawCodec;
struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<ExportTraceServiceResponse>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        Default::default()
    }
}

fn partial(r: &ExportTraceServiceResponse) -> (i64, String) {
    r.partial_success
        .as_ref()
        .map(|p| (p.rejected_spans, p.error_message.clone()))
        .unwrap_or_default()
}

// ---- real OpenTelemetry SDK ------------------------------------------------------

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
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;

    let provider = |service: String| {
        let exporter = match (grpc, http) {
            (Some(a), _) => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(format!("http://{a}"))
                .build(),
            (_, Some(a)) => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("http://{a}/v1/traces"))
                .build(),
            _ => unreachable!(),
        }
        .expect("exporter");
        SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(Resource::builder_empty().with_service_name(service).build())
            .build()
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
    let spans = eventually("three spans", async || {
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

// ---- bad input -----------------------------------------------------------------

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
    let oversize = request(vec![{
        let mut s = span(9, 9, "big");
        s.attributes.push(pc::KeyValue {
            key: "pad".into(),
            value: sv(&"x".repeat(3 << 20)),
            ..Default::default()
        });
        s
    }])
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
    let mut big = span(5, 5, "big-attr");
    big.attributes.push(pc::KeyValue {
        key: "blob".into(),
        value: sv(&"é".repeat(500_000)),
        ..Default::default()
    });
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
    let mut huge = span(8, 8, "gzip-bomb");
    huge.attributes.push(pc::KeyValue {
        key: "pad".into(),
        value: sv(&"0".repeat(8 << 20)),
        ..Default::default()
    });
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

// ---- overload, unavailability, auth, supervision ------------------------------------

fn padded(trace: u8, kib: usize) -> ExportTraceServiceRequest {
    let mut s = span(trace, 1, "padded");
    s.attributes.push(pc::KeyValue {
        key: "pad".into(),
        value: sv(&"p".repeat(kib * 1024)),
        ..Default::default()
    });
    request(vec![s])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodies_are_charged_to_the_budget_before_they_are_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cfg = Config::default();
    cfg.ingest.max_request_bytes = 64 << 10;
    cfg.ingest.max_inflight_bytes = 64 << 10;
    cfg.ingest.max_attribute_value_bytes = 64 << 10;
    let ing = start(cfg, Arc::new(TestSink::default()));

    // A slow client declares a 40 KiB body and sends only half of it.
    let body = padded(30, 40).encode_to_vec();
    let mut slow = tokio::net::TcpStream::connect(ing.http).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: strand\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..body.len() / 2]).await.unwrap();

    // Its declared bytes are already held: 30 KiB more do not fit.
    eventually("a 429 while the slow body is in flight", async || {
        (post_proto(ing.http, &padded(31, 30)).await.status == 429).then_some(())
    })
    .await;

    // Once the slow body completes, it is stored and the budget is free.
    slow.write_all(&body[body.len() / 2..]).await.unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&reply).contains("\r\n\r\n") {
        let n = slow.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a reply");
        reply.extend_from_slice(&buf[..n]);
    }
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(post_proto(ing.http, &padded(31, 30)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_retryable_and_recovers() {
    let mut cfg = Config::default();
    cfg.ingest.max_request_bytes = 64 << 10;
    cfg.ingest.max_inflight_bytes = 64 << 10;
    cfg.ingest.max_attribute_value_bytes = 64 << 10;
    let sink = Arc::new(TestSink::default());
    sink.hold.store(true, Ordering::SeqCst);
    let ing = start(cfg, sink.clone());

    // Request A is admitted and parks in the sink, holding 40 KiB.
    let http = ing.http;
    let first = tokio::spawn(async move { post_proto(http, &padded(20, 40)).await });
    eventually("a held write", async || {
        (sink.waiting.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;

    // B does not fit: 429 + Retry-After, RESOURCE_EXHAUSTED + RetryInfo.
    let r = post_proto(ing.http, &padded(21, 40)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    let st = tonic_types::pb::Status::decode(r.body.as_slice()).expect("protobuf Status body");
    assert_eq!(st.code, tonic::Code::ResourceExhausted as i32);
    let e = grpc_raw(ing.grpc, padded(21, 40).encode_to_vec(), &[])
        .await
        .expect_err("overloaded");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    use tonic_types::StatusExt;
    let retry = e.get_details_retry_info().expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));

    // Releasing the sink completes A and frees the budget: B now succeeds.
    sink.hold.store(false, Ordering::SeqCst);
    sink.gate.notify_waiters();
    assert_eq!(first.await.expect("task").status, 200);
    let r = post_proto(ing.http, &padded(21, 40)).await;
    assert_eq!(r.status, 200);
    assert!(grpc_raw(ing.grpc, padded(22, 40).encode_to_vec(), &[])
        .await
        .is_ok());

    // A sink that is unavailable: 503 + Retry-After / UNAVAILABLE.
    *sink.fail.lock() = Some(|| Error::Unavailable("disk full".into()));
    let r = post_proto(ing.http, &padded(23, 1)).await;
    assert_eq!((r.status, r.retry_after.as_deref()), (503, Some("1")));
    let e = grpc_raw(ing.grpc, padded(23, 1).encode_to_vec(), &[])
        .await
        .expect_err("unavailable");
    assert_eq!(e.code(), tonic::Code::Unavailable);

    // A terminal sink error stops the receiver; it is restarted and serves again.
    let restarts = strand::metrics::ActorStats::get("receiver")
        .restarts
        .load(Ordering::SeqCst);
    *sink.fail.lock() = Some(|| Error::Internal("bug".into()));
    assert_eq!(post_proto(ing.http, &padded(24, 1)).await.status, 500);
    *sink.fail.lock() = None;
    eventually("a receiver restart", async || {
        (strand::metrics::ActorStats::get("receiver")
            .restarts
            .load(Ordering::SeqCst)
            > restarts)
            .then_some(())
    })
    .await;
    assert_eq!(post_proto(ing.http, &padded(25, 1)).await.status, 200);
    assert_eq!(
        sink.store
            .trace(TraceId([25; 16]))
            .await
            .expect("trace")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_when_configured() {
    let mut cfg = Config::default();
    cfg.ingest.api_key = "s3cret".into();
    let sink = Arc::new(TestSink::default());
    let ing = start(cfg, sink.clone());
    let body = request(vec![span(30, 1, "authed")]).encode_to_vec();
    assert_eq!(
        post(ing.http, "application/x-protobuf", &[], body.clone())
            .await
            .status,
        401
    );
    let wrong = [("authorization", "Bearer nope")];
    assert_eq!(
        post(ing.http, "application/x-protobuf", &wrong, body.clone())
            .await
            .status,
        401
    );
    let ok = [("authorization", "Bearer s3cret")];
    assert_eq!(
        post(ing.http, "application/x-protobuf", &ok, body.clone())
            .await
            .status,
        200
    );
    let e = grpc_raw(ing.grpc, body.clone(), &[])
        .await
        .expect_err("unauthenticated");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(grpc_raw(ing.grpc, body, &[("x-strand-api-key", "s3cret")])
        .await
        .is_ok());
}

/// The entry points `strand serve` calls: bind by address, stop cleanly.
#[actix_rt::test]
async fn public_entry_points_bind_and_stop() {
    let cfg = Config::default();
    let receiver = start_receiver(&cfg, Arc::new(MemoryStore::new()));
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    strand::ingest::serve_grpc(any, receiver.clone(), cfg.ingest.clone(), async {})
        .await
        .expect("gRPC server starts and stops on shutdown");
    let server = strand::ingest::http_server(any, receiver, cfg.ingest).expect("http server binds");
    let handle = server.handle();
    let running = actix_rt::spawn(server);
    handle.stop(true).await;
    running
        .await
        .expect("join")
        .expect("http server stopped cleanly");
}
