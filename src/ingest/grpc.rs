//! OTLP/gRPC `TraceService/Export`.
//!
//! This is the generated `TraceServiceServer` routing with one change: the
//! request codec yields the raw message bytes instead of a decoded message,
//! so that (1) the in-flight budget is taken *before* the CPU and memory of
//! decoding are spent, and (2) a malformed message (bad protobuf, invalid
//! UTF-8 in a string field) is answered INVALID_ARGUMENT, where the
//! generated codec would say INTERNAL. Replies use the generated types.
//!
//! tonic enforces `max_request_bytes` before our code runs; its answers
//! (OUT_OF_RANGE for a large message, RESOURCE_EXHAUSTED for a large
//! decompressed one, INTERNAL for corrupt gzip) are rewritten to
//! INVALID_ARGUMENT, because OTLP clients retry OUT_OF_RANGE and
//! RESOURCE_EXHAUSTED, and resending an oversize or corrupt request cannot
//! succeed.

use bytes::{Buf, Bytes};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::Status;

use super::{outcome_label, response_for, Intake, Payload};
use crate::actors::receiver::ExportOutcome;
use crate::error::{Error, Result};
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceResponse;
use crate::pipeline::{Transport, TransportMetrics};

pub const SERVICE_NAME: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Serves on a bound listener until `shutdown` resolves (`strand serve`
/// binds at start-up, so a taken port fails there; tests bind port 0).
pub async fn serve_grpc_on(
    listener: tokio::net::TcpListener,
    intake: Intake,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let tls = intake.tls_for("otlp_grpc");
    let svc = TraceGrpcService {
        shared: Arc::new(intake),
    };
    let router = tonic::transport::Server::builder().add_service(svc);
    let served = match tls {
        // Handshakes happen in security::conn, which also records the
        // client certificate for authentication.
        Some(tls) => {
            let incoming = crate::security::conn::tls_incoming(listener, tls.acceptor_h2());
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            // Without TCP_NODELAY, Nagle's algorithm and the client's
            // delayed ACK hold small reply frames for ~40 ms.
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    served.map_err(|e| Error::Unavailable(format!("gRPC server: {e}")))
}

type Shared = Intake;

impl Intake {
    async fn export_grpc(&self, req: tonic::Request<Bytes>) -> Result<ExportOutcome> {
        // Authenticated in `TraceGrpcService::call`, before the body.
        let client = req
            .extensions()
            .get::<Authenticated>()
            .and_then(|a| a.0.clone());
        let body = req.into_inner();
        TransportMetrics::get(Transport::Grpc)
            .request_bytes
            .add(body.len() as u64);
        let permit = self.admission.try_admit(body.len())?;
        // Decoded by the receiver worker: this runtime's threads only move
        // bytes, so decoding is spread over the pool with the rest.
        self.export(Payload::Protobuf(body), Transport::Grpc, permit, client)
            .await
    }
}

/// The client `TraceGrpcService::call` authenticated, handed to the
/// export through the request's extensions.
#[derive(Clone)]
struct Authenticated(Option<Arc<crate::security::Client>>);

/// Authenticates from the headers and the connection alone, so a refused
/// request's message is never read.
fn authenticate<B>(shared: &Shared, req: &http::Request<B>) -> Result<Authenticated> {
    let h = req.headers();
    let peer = req
        .extensions()
        .get::<crate::security::conn::TlsConnInfo>()
        .map(|i| &*i.peer);
    let client = shared.authenticate(
        h.get("authorization").map(|v| v.as_bytes()),
        h.get("x-strand-api-key").map(|v| v.as_bytes()),
        peer,
    )?;
    Ok(Authenticated(client))
}

#[derive(Clone)]
pub struct TraceGrpcService {
    shared: Arc<Shared>,
}

impl NamedService for TraceGrpcService {
    const NAME: &'static str = SERVICE_NAME;
}

struct ExportSvc(Arc<Shared>);

impl UnaryService<Bytes> for ExportSvc {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<Self::Response>, Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move {
            let start = Instant::now();
            let res = shared.export_grpc(request).await;
            TransportMetrics::get(Transport::Grpc).finish(start.elapsed(), outcome_label(&res));
            match res {
                Ok(o) => Ok(tonic::Response::new(response_for(&o))),
                Err(e) => Err(Status::from(e)),
            }
        })
    }
}

impl<B> Service<http::Request<B>> for TraceGrpcService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let shared = self.shared.clone();
        match authenticate(&shared, &req) {
            Ok(a) => {
                req.extensions_mut().insert(a);
            }
            Err(e) => {
                let res: Result<ExportOutcome> = Err(e);
                TransportMetrics::get(Transport::Grpc).finish(Duration::ZERO, outcome_label(&res));
                let status = match res {
                    Err(e) => Status::from(e),
                    Ok(_) => Status::internal("authentication"),
                };
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        Box::pin(async move {
            let max = shared.cfg.max_request_bytes;
            let mut grpc = Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max);
            let mut resp = grpc.unary(ExportSvc(shared), req).await;
            rewrite_transport_status(&mut resp);
            Ok(resp)
        })
    }
}

/// See the module comment: tonic's size and decompression failures become
/// INVALID_ARGUMENT. Our own RESOURCE_EXHAUSTED always carries details, so
/// it is told apart by the `grpc-status-details-bin` header.
fn rewrite_transport_status<T>(resp: &mut http::Response<T>) {
    let h = resp.headers();
    let status = h
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let message = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let has_details = h.contains_key("grpc-status-details-bin");
    let from_transport = match status {
        "11" => true,
        "8" => !has_details,
        "13" => message.contains("decompress"),
        _ => false,
    };
    if from_transport {
        resp.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("3"));
        TransportMetrics::get(Transport::Grpc).finish(Duration::ZERO, "invalid_argument");
    }
}

/// Encodes replies with prost; hands request messages over undecoded.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> std::result::Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<ExportTraceServiceResponse>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}
