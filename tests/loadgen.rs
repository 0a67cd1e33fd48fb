//! The load generator's accounting, first against an in-process OTLP
//! receiver (gRPC and HTTP) that stores into the reference MemoryStore,
//! pushes back with RESOURCE_EXHAUSTED / 429 on some requests, reports
//! partial success for others, and serves `GET /api/traces/{id}` for the
//! lag measurement; then against the real `strand serve` binary, whose hot
//! store must hold exactly the spans the generator counted as accepted (and
//! export them all to Parquet).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use prost::Message;
use strand::loadgen::{run_loadgen, LoadgenArgs, Protocol};
use strand::model::{Span, TraceId};
use strand::model::{SpanReader, SpanWriter};
use strand::otlp::convert::spans_from_proto;
use strand::otlp::proto::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use strand::otlp::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use common::store::{scan_all, MemoryStore};

/// Rejects (as partial success) the spans of this service.
const REJECTED_SERVICE: &str = "ad";

struct Receiver {
    store: Arc<MemoryStore>,
    calls: AtomicU64,
    stored: AtomicU64,
}

impl Receiver {
    /// Every 4th call is pushed back; otherwise stores all spans but those
    /// of REJECTED_SERVICE and returns how many it rejected.
    async fn accept(&self, req: &ExportTraceServiceRequest) -> Option<i64> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % 4 == 3 {
            return None;
        }
        let (keep, drop): (Vec<Span>, Vec<Span>) = spans_from_proto(&req.resource_spans)
            .into_iter()
            .partition(|s| s.service_name() != REJECTED_SERVICE);
        self.stored.fetch_add(keep.len() as u64, Ordering::Relaxed);
        self.store.write(keep).await.ok()?;
        Some(drop.len() as i64)
    }
}

fn response(rejected: i64) -> ExportTraceServiceResponse {
    let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected,
        error_message: "service not allowed".into(),
    });
    ExportTraceServiceResponse { partial_success }
}

struct Grpc(Arc<Receiver>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        match self.0.accept(req.get_ref()).await {
            Some(r) => Ok(tonic::Response::new(response(r))),
            None => Err(tonic::Status::resource_exhausted("queue full")),
        }
    }
}

async fn http_export(recv: web::Data<Arc<Receiver>>, body: web::Bytes) -> HttpResponse {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return HttpResponse::BadRequest().finish();
    };
    match recv.accept(&req).await {
        Some(r) => HttpResponse::Ok()
            .content_type("application/x-protobuf")
            .body(response(r).encode_to_vec()),
        None => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "0"))
            .finish(),
    }
}

async fn get_trace(recv: web::Data<Arc<Receiver>>, id: web::Path<String>) -> HttpResponse {
    let Some(id) = TraceId::from_hex(&id) else {
        return HttpResponse::BadRequest().finish();
    };
    let spans = recv.store.trace(id).await.unwrap_or_default();
    if spans.is_empty() {
        return HttpResponse::NotFound()
            .json(serde_json::json!({"data": [], "errors": [{"code": 404}]}));
    }
    HttpResponse::Ok()
        .json(serde_json::json!({"data": [{"traceID": id.to_hex(), "spans": spans.len()}]}))
}

async fn start_receiver() -> (Arc<Receiver>, SocketAddr, SocketAddr) {
    let recv = Arc::new(Receiver {
        store: Arc::new(MemoryStore::new()),
        calls: AtomicU64::new(0),
        stored: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(Grpc(recv.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let data = web::Data::new(recv.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 << 20))
            .route("/v1/traces", web::post().to(http_export))
            .route("/api/traces/{id}", web::get().to(get_trace))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let http_addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (recv, grpc_addr, http_addr)
}

async fn bounded_run(protocol: Protocol) {
    let (recv, grpc, http) = start_receiver().await;
    let args = LoadgenArgs {
        protocol,
        grpc_url: format!("http://{grpc}"),
        http_url: format!("http://{http}"),
        query_url: format!("http://{http}"),
        spans: Some(20_000),
        batch: 256,
        pool: 8,
        connections: 3,
        lag_samples: 10,
        lag_every: 3,
        quiet: true,
        ..Default::default()
    };
    let s = run_loadgen(&args).await.unwrap();
    assert!(
        s.spans_sent >= 20_000 && s.spans_sent < 20_000 + 3 * 300,
        "{s:?}"
    );
    assert_eq!(s.spans_failed, 0, "{s:?}");
    assert!(s.retries > 0, "pushback was retried: {s:?}");
    assert!(s.spans_rejected > 0, "partial success counted: {s:?}");
    assert_eq!(s.spans_accepted + s.spans_rejected, s.spans_sent);
    assert_eq!(
        s.spans_accepted,
        recv.stored.load(Ordering::Relaxed),
        "accepted = stored"
    );
    // Every span stored is distinct: patched trace ids never repeat.
    let q = strand::model::SearchQuery {
        limit: usize::MAX,
        ..Default::default()
    };
    let all: Vec<_> = scan_all(recv.store.as_ref(), &q, 10_000)
        .await
        .into_iter()
        .map(|s| (s.trace_id, s.span_id))
        .collect();
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "no duplicate spans");
    let lag = s.lag.clone().expect("lag measured");
    assert_eq!(lag.sampled, 10);
    assert_eq!(lag.found, 10, "{lag:?}");
    assert_eq!(lag.missing, 0);
    assert!(s.latency_ms.count >= s.requests);
    let text = s.to_string();
    assert!(
        text.contains("spans accepted") && text.contains("lag"),
        "{text}"
    );
}

#[actix_web::test]
async fn grpc_run_accounts_for_every_span() {
    bounded_run(Protocol::Grpc).await;
}

#[actix_web::test]
async fn http_run_accounts_for_every_span() {
    bounded_run(Protocol::Http).await;
}

#[actix_web::test]
async fn unreachable_server_is_a_clear_error() {
    let args = LoadgenArgs {
        grpc_url: "http://127.0.0.1:1".into(),
        quiet: true,
        ..Default::default()
    };
    let e = run_loadgen(&args).await.unwrap_err().to_string();
    assert!(e.contains("cannot connect to http://127.0.0.1:1"), "{e}");
}

#[actix_web::test]
async fn bounded_run_against_strand_serve_matches_what_it_stored() {
    use common::store::{storage, HotStore};
    use strand::config::IndexConfig;
    use strand::export::{read_spans_file, run_export, ExportArgs};

    let dir = tempfile::tempdir().unwrap();
    let mut server = common::process::Strand::start(dir.path(), "");
    let mut accepted = 0;
    for protocol in [Protocol::Grpc, Protocol::Http] {
        let args = LoadgenArgs {
            protocol,
            grpc_url: server.grpc.clone(),
            http_url: server.http.clone(),
            query_url: server.query.clone(),
            spans: Some(5_000),
            batch: 256,
            pool: 4,
            connections: 2,
            lag_samples: 8,
            lag_every: 2,
            quiet: true,
            ..Default::default()
        };
        let s = run_loadgen(&args).await.unwrap();
        assert_eq!(s.spans_failed, 0, "{s}");
        assert_eq!(s.spans_accepted + s.spans_rejected, s.spans_sent, "{s}");
        let lag = s.lag.clone().expect("lag measured");
        assert_eq!(
            (lag.sampled, lag.found),
            (8, 8),
            "every sampled trace became visible: {lag:?}"
        );
        assert_eq!(s.spans_rejected, 0, "{s}");
        accepted += s.spans_accepted;
    }
    // Acknowledged spans are durable: a crash loses none of them.
    server.kill9();

    let data = storage(&dir.path().join("data"));
    let store: Arc<dyn SpanReader> = HotStore::open(&data, &IndexConfig::default()).unwrap();
    let now = strand::model::now_ns();
    let q = strand::model::SearchQuery {
        start_ns: Some(now - 3_600_000_000_000),
        end_ns: Some(now + 3_600_000_000_000),
        ..Default::default()
    };
    let stored = scan_all(store.as_ref(), &q, 4096).await.len() as u64;
    assert_eq!(
        stored, accepted,
        "the hot store holds exactly the accepted spans"
    );

    let out = dir.path().join("export");
    let start = ((now - 3_600_000_000_000) / 1_000_000_000).to_string();
    let end = ((now + 3_600_000_000_000) / 1_000_000_000).to_string();
    let summary = run_export(store, &ExportArgs::new(start, end, &out))
        .await
        .unwrap();
    assert_eq!(summary.spans, accepted);
    let read: usize = summary
        .files
        .iter()
        .map(|f| read_spans_file(f).unwrap().len())
        .sum();
    assert_eq!(read as u64, accepted);
}
