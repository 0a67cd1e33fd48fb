//! Sending pre-encoded OTLP requests over gRPC or HTTP, classifying each
//! outcome the way OTLP exporters do: accepted (maybe partially), retryable
//! (429/503, RESOURCE_EXHAUSTED/UNAVAILABLE...) or failed.
//!
//! gRPC goes through `tonic::client::Grpc` with a pass-through codec on the
//! OTLP `TraceService/Export` path: the generated client would re-encode
//! every request, which is the cost the pre-encoded pool avoids.

use std::time::Duration;

use bytes::{BufMut, Bytes};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::error::{Error, Result};
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceResponse;

pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// What came of one attempt.
#[derive(Debug)]
pub enum Outcome {
    /// Accepted; the number of spans the server reported rejected.
    Accepted {
        rejected: u64,
    },
    /// Try again, after at least this long if the server said so.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    Failed(String),
}

#[derive(Clone, Default)]
struct RawCodec;
#[derive(Clone, Default)]
struct RawEncoder;
#[derive(Clone, Default)]
struct ResponseDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// How the load generator reaches a secured strand: a CA to trust for
/// `https://` URLs and an API key (docs/SECURITY.md).
#[derive(Clone, Debug, Default)]
pub struct ClientSecurity {
    pub ca_pem: Option<Vec<u8>>,
    pub api_key: Option<String>,
}

impl ClientSecurity {
    pub fn from_args(args: &super::LoadgenArgs) -> Result<ClientSecurity> {
        let ca_pem =
            match &args.tls_ca {
                Some(p) => Some(std::fs::read(p).map_err(|e| {
                    Error::InvalidArgument(format!("--tls-ca {}: {e}", p.display()))
                })?),
                None => None,
            };
        Ok(ClientSecurity {
            ca_pem,
            api_key: args.api_key.clone(),
        })
    }

    fn bearer(&self) -> Result<Option<String>> {
        match &self.api_key {
            Some(k) if k.is_empty() || k.contains(char::is_control) => Err(Error::InvalidArgument(
                "--api-key must be printable and non-empty".into(),
            )),
            Some(k) => Ok(Some(format!("Bearer {k}"))),
            None => Ok(None),
        }
    }
}

/// One connection's sender.
pub enum Sender {
    Grpc {
        grpc: tonic::client::Grpc<tonic::transport::Channel>,
        /// `authorization` metadata for every request.
        auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    },
    Http {
        client: reqwest::Client,
        url: String,
    },
    /// Zipkin v2 JSON, rendered from the OTLP request at send time.
    Zipkin {
        client: reqwest::Client,
        url: String,
    },
}

fn rejected(r: &ExportTraceServiceResponse) -> u64 {
    r.partial_success
        .as_ref()
        .map(|p| p.rejected_spans.max(0) as u64)
        .unwrap_or(0)
}

impl Sender {
    /// Connects to an OTLP/gRPC endpoint (`http://host:4317`).
    pub async fn grpc(url: &str) -> Result<Sender> {
        Self::grpc_with(url, &ClientSecurity::default()).await
    }

    /// [`Self::grpc`], over TLS for an `https://` URL, with an API key.
    pub async fn grpc_with(url: &str, sec: &ClientSecurity) -> Result<Sender> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::InvalidArgument(format!("bad --grpc-url {url:?}: {e}")))?
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30));
        if let Some(pem) = &sec.ca_pem {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem));
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| Error::InvalidArgument(format!("--tls-ca: {e}")))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Error::Unavailable(format!("cannot connect to {url}: {e}")))?;
        let auth = match sec.bearer()? {
            Some(b) => Some(
                b.parse()
                    .map_err(|_| Error::InvalidArgument("--api-key is not ASCII".into()))?,
            ),
            None => None,
        };
        Ok(Sender::Grpc {
            grpc: tonic::client::Grpc::new(channel),
            auth,
        })
    }

    /// An OTLP/HTTP sender posting to `<base>/v1/traces`.
    pub fn http(base: &str) -> Result<Sender> {
        Self::http_with(base, &ClientSecurity::default())
    }

    pub fn http_with(base: &str, sec: &ClientSecurity) -> Result<Sender> {
        let url = format!("{}/v1/traces", base.trim_end_matches('/'));
        Ok(Sender::Http {
            client: http_client(sec)?,
            url,
        })
    }

    /// A Zipkin v2 sender posting JSON to `<base>/api/v2/spans`.
    pub fn zipkin(base: &str) -> Result<Sender> {
        Self::zipkin_with(base, &ClientSecurity::default())
    }

    pub fn zipkin_with(base: &str, sec: &ClientSecurity) -> Result<Sender> {
        let url = format!("{}/api/v2/spans", base.trim_end_matches('/'));
        Ok(Sender::Zipkin {
            client: http_client(sec)?,
            url,
        })
    }

    pub async fn send(&mut self, body: Bytes) -> Outcome {
        match self {
            Sender::Grpc { grpc, auth } => {
                if let Err(e) = grpc.ready().await {
                    return Outcome::Retry {
                        after: None,
                        why: format!("connection not ready: {e}"),
                    };
                }
                let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
                let mut req = tonic::Request::new(body);
                if let Some(a) = auth {
                    req.metadata_mut().insert("authorization", a.clone());
                }
                match grpc.unary(req, path, RawCodec).await {
                    Ok(resp) => Outcome::Accepted {
                        rejected: rejected(resp.get_ref()),
                    },
                    Err(s) => match s.code() {
                        tonic::Code::ResourceExhausted
                        | tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Aborted
                        | tonic::Code::Cancelled => Outcome::Retry {
                            after: None,
                            why: format!("{:?}: {}", s.code(), s.message()),
                        },
                        c => Outcome::Failed(format!("{c:?}: {}", s.message())),
                    },
                }
            }
            Sender::Zipkin { client, url } => {
                let json = match super::zipkin::to_zipkin_json(&body) {
                    Ok(j) => j,
                    Err(e) => return Outcome::Failed(e.to_string()),
                };
                let resp = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .body(json)
                    .send()
                    .await;
                http_outcome(resp, |text| {
                    // "rejected N of M spans: ..." (docs/INGEST.md, Zipkin)
                    let rest = std::str::from_utf8(text).ok()?.strip_prefix("rejected ")?;
                    rest.split(' ').next()?.parse().ok()
                })
                .await
            }
            Sender::Http { client, url } => {
                let resp = client
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await;
                http_outcome(resp, |b| {
                    ExportTraceServiceResponse::decode(b)
                        .ok()
                        .map(|r| rejected(&r))
                })
                .await
            }
        }
    }
}

fn http_client(sec: &ClientSecurity) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    if let Some(pem) = &sec.ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::InvalidArgument(format!("--tls-ca: {e}")))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    if let Some(bearer) = sec.bearer()? {
        let mut headers = reqwest::header::HeaderMap::new();
        let v = reqwest::header::HeaderValue::from_str(&bearer)
            .map_err(|_| Error::InvalidArgument("--api-key is not a valid header value".into()))?;
        headers.insert(reqwest::header::AUTHORIZATION, v);
        b = b.default_headers(headers);
    }
    b.build()
        .map_err(|e| Error::Internal(format!("http client: {e}")))
}

/// The outcome of an HTTP export; `rejected` reads the rejected-span count
/// from a success body.
async fn http_outcome(
    resp: reqwest::Result<reqwest::Response>,
    rejected: impl Fn(&[u8]) -> Option<u64>,
) -> Outcome {
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Retry {
                after: None,
                why: format!("request: {e}"),
            }
        }
    };
    let status = resp.status().as_u16();
    let after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = resp.bytes().await.unwrap_or_default();
    match status {
        200..=299 => Outcome::Accepted {
            rejected: rejected(&body).unwrap_or(0),
        },
        429 | 502 | 503 | 504 => Outcome::Retry {
            after,
            why: format!("HTTP {status}"),
        },
        _ => Outcome::Failed(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

/// A client's retry schedule: 50 ms doubling to 2 s, or the server's
/// Retry-After when that is longer (as OTLP exporters do).
pub fn retry_backoff() -> crate::backoff::Backoff {
    crate::backoff::Backoff::new(Duration::from_millis(50), Duration::from_secs(2))
}
