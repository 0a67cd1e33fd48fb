//! OTLP ingest in-process: the receiver actor and both servers on ephemeral
//! ports over a test sink, and raw clients that can send anything.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BufMut;
use prost::Message;

use strand::config::Config;
use strand::error::{Error, Result};
use strand::ingest::{http_server_on, serve_grpc_on};
use strand::model::Span;
use strand::model::SpanWriter;
use strand::otlp::proto::trace::v1 as pt;

use super::otlp::{self, ExportTraceServiceRequest, ExportTraceServiceResponse};
use super::store::MemoryStore;

pub use strand::ingest::Intake;

/// The receiver pool and what the servers share, over `sink`.
pub fn start_receiver(
    cfg: &Config,
    sink: Arc<dyn SpanWriter>,
    root: Option<&actix::Addr<strand::actors::tree::Root>>,
) -> Intake {
    Intake::start(cfg, sink, root)
}

pub struct Ingest {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

/// Runs receiver + servers in their own actix System on a background thread
/// (the test's runtime stays free for clients).
pub fn start(cfg: Config, sink: Arc<dyn SpanWriter>) -> Ingest {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let intake = start_receiver(&cfg, sink, None);
            let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind grpc");
            let http_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind http");
            let addrs = (
                grpc_listener.local_addr().expect("addr"),
                http_listener.local_addr().expect("addr"),
            );
            let http = http_server_on(http_listener, intake.clone(), cfg.ingest.worker_count())
                .expect("http server");
            actix_rt::spawn(serve_grpc_on(grpc_listener, intake, std::future::pending()));
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
pub struct TestSink {
    pub store: MemoryStore,
    pub hold: AtomicBool,
    pub gate: tokio::sync::Notify,
    pub waiting: AtomicUsize,
    pub fail: parking_lot::Mutex<Option<fn() -> Error>>,
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

/// Span `id` of trace `trace` (both bytes repeated), 100 ms in November 2023.
pub fn span(trace: u8, id: u8, name: &str) -> pt::Span {
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

/// `s` with one more string attribute.
pub fn with_str(mut s: pt::Span, key: &str, value: &str) -> pt::Span {
    let value = otlp::any_value::Value::StringValue(value.into());
    s.attributes.push(otlp::kv(key, value));
    s
}

/// `spans` of the service `svc`.
pub fn request(spans: Vec<pt::Span>) -> ExportTraceServiceRequest {
    otlp::request("svc", spans)
}

pub struct HttpReply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// POSTs `body` to `/v1/traces` as `content_type`, with more `headers`.
pub async fn post(
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

pub async fn post_proto(addr: SocketAddr, req: &ExportTraceServiceRequest) -> HttpReply {
    post(addr, "application/x-protobuf", &[], req.encode_to_vec()).await
}

/// Sends raw message bytes over gRPC, so malformed messages can be sent.
pub async fn grpc_raw(
    addr: SocketAddr,
    body: Vec<u8>,
    meta: &[(&'static str, &str)],
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    grpc_raw_on(ch, body, meta).await
}

/// [`grpc_raw`] over a channel of the caller's (TLS, for one).
pub async fn grpc_raw_on(
    ch: tonic::transport::Channel,
    body: Vec<u8>,
    meta: &[(&'static str, &str)],
) -> Result<ExportTraceServiceResponse, tonic::Status> {
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

/// (rejected spans, error message) of a partial success; zeros for none.
pub fn partial(r: &ExportTraceServiceResponse) -> (i64, String) {
    r.partial_success
        .as_ref()
        .map(|p| (p.rejected_spans, p.error_message.clone()))
        .unwrap_or_default()
}
