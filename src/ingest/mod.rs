//! Ingest: the OTLP gRPC (:4317) and HTTP (:4318) servers and the Zipkin
//! v2 server (:9411, `zipkin`) in front of the
//! receiver pool (`crate::actors::receiver`). The servers authenticate,
//! bound and decode requests, take bytes from the shared in-flight budget,
//! and await a worker's reply, which comes only once the spans are
//! durable. docs/INGEST.md lists every answer.

pub mod admission;
pub mod grpc;
pub mod http;
pub mod zipkin;

use std::sync::Arc;

use actix::Addr;

pub use crate::actors::receiver::{ExportOutcome, Payload};
pub use crate::otlp::decode_protobuf;
pub use grpc::serve_grpc_on;
pub use http::http_server_on;

use crate::actors::receiver::{ExportTraces, ReceiverPool};
use crate::actors::tree::Root;
use crate::config::{Config, IngestConfig};
use crate::error::{Error, Result};
use crate::model::SpanWriter;
use crate::otlp::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use crate::pipeline::Transport;
use crate::security::{Authenticator, Client, PeerIdentity, ServerTls};
use admission::{Admission, InflightPermit};

/// What both OTLP servers share: the receiver pool, the in-flight byte
/// budget, the ingest config, who may send (`security::auth`) and the TLS
/// the listeners serve. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    pub pool: ReceiverPool,
    pub admission: Arc<Admission>,
    pub cfg: Arc<IngestConfig>,
    pub auth: Arc<Authenticator>,
    /// `None`: plaintext (see [`Intake::with_tls`]).
    pub tls: Option<ServerTls>,
}

impl Intake {
    /// Starts the receiver pool writing to `sink` (under the root's
    /// `ingest` group when given). Call inside an actix System.
    pub fn start(cfg: &Config, sink: Arc<dyn SpanWriter>, root: Option<&Addr<Root>>) -> Intake {
        Self::start_counting(cfg, sink, root, None)
    }

    /// [`Self::start`], the workers counting span metrics into `metrics`.
    pub fn start_counting(
        cfg: &Config,
        sink: Arc<dyn SpanWriter>,
        root: Option<&Addr<Root>>,
        metrics: Option<&crate::spanmetrics::accum::Hub>,
    ) -> Intake {
        Intake {
            pool: ReceiverPool::start_counting(cfg, sink, root, metrics),
            admission: Admission::new(cfg.ingest.max_inflight_bytes),
            cfg: Arc::new(cfg.ingest.clone()),
            auth: Arc::new(Authenticator::new(&cfg.ingest)),
            tls: None,
        }
    }

    /// The listeners serve `tls` (from `ServerTls::load`), each unless
    /// `tls.plaintext_listeners` names it.
    pub fn with_tls(mut self, tls: Option<ServerTls>) -> Intake {
        self.tls = tls;
        self
    }

    /// TLS for listener `name`, if it serves TLS.
    pub fn tls_for(&self, name: &str) -> Option<ServerTls> {
        ServerTls::for_listener(self.tls.as_ref(), name)
    }

    /// Who sends this request (headers and connection only: call before
    /// reading the body), refused when unknown or over its rate.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        api_key_header: Option<&[u8]>,
        peer: Option<&PeerIdentity>,
    ) -> Result<Option<Arc<Client>>> {
        let client = self
            .auth
            .authenticate(authorization, api_key_header, peer)?;
        if let Some(c) = &client {
            c.admit()?;
        }
        Ok(client)
    }

    /// Hands a request to a worker (which decodes it) and waits for the
    /// durable reply; the client's accepted spans are counted (and charged
    /// to its rate limit).
    pub async fn export(
        &self,
        payload: Payload,
        transport: Transport,
        permit: InflightPermit,
        client: Option<Arc<Client>>,
    ) -> Result<ExportOutcome> {
        let outcome = self
            .pool
            .export(ExportTraces {
                payload,
                transport,
                hold: Some(Box::new(permit)),
                client: client.as_ref().map(|c| c.name.clone()),
            })
            .await?;
        if let Some(c) = &client {
            c.accepted(outcome.accepted);
        }
        Ok(outcome)
    }
}

/// Outcome label for a result (the gRPC code name, snake-cased).
pub fn outcome_label(r: &Result<ExportOutcome>) -> &'static str {
    match r {
        Ok(o) if o.rejected > 0 => "partial",
        Ok(_) => "ok",
        Err(e) => match e.grpc_code() {
            tonic::Code::InvalidArgument => "invalid_argument",
            tonic::Code::ResourceExhausted => "resource_exhausted",
            tonic::Code::Unavailable => "unavailable",
            tonic::Code::Unauthenticated => "unauthenticated",
            _ => "internal",
        },
    }
}

/// The OTLP response: `partial_success` only when something was rejected
/// or changed (OTLP's "warning" is rejected_spans 0 with a message).
pub fn response_for(o: &ExportOutcome) -> ExportTraceServiceResponse {
    let partial = o.rejected > 0 || !o.message.is_empty();
    ExportTraceServiceResponse {
        partial_success: partial.then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(o.rejected).unwrap_or(i64::MAX),
            error_message: o.message.clone(),
        }),
    }
}

/// Work larger than this (bytes) is decoded on the blocking pool.
pub(crate) const BLOCKING_BYTES: usize = 256 << 10;

/// Runs `f` inline when small, on the blocking pool when large.
pub(crate) async fn maybe_blocking<T: Send + 'static>(
    size: usize,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if size <= BLOCKING_BYTES {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("decode task failed: {e}")))?
}
