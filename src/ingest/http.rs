//! OTLP/HTTP `POST /v1/traces`: `application/x-protobuf` or
//! `application/json` bodies, optionally `Content-Encoding: gzip`.
//! Replies are in the request's encoding: an `ExportTraceServiceResponse` on
//! success, a `google.rpc.Status` on error (OTLP/HTTP spec), with
//! `Retry-After` on 429/503.
//!
//! The in-flight budget is charged before the body is read (its declared
//! length), then the body is read and decompressed under
//! `max_request_bytes` (the decompressed size is what counts, so a gzip
//! bomb stops at the limit), the charge is set to the real size, and the
//! request is decoded and handed to the receiver.

use actix_web::http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::BytesMut;
use futures::StreamExt;
use prost::Message as _;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Instant;

use super::admission::InflightPermit;
use super::{maybe_blocking, outcome_label, response_for, Intake, Payload};
use crate::actors::receiver::ExportOutcome;
use crate::error::{Error, Result};
use crate::otlp::json;
use crate::pipeline::{Transport, TransportMetrics};
use crate::security::Client;

pub const TRACES_PATH: &str = "/v1/traces";

/// Serves on a bound listener (`strand serve` binds at start-up, so a
/// taken port fails there; tests bind port 0). `workers` actix-web worker
/// threads accept and read bodies. The server runs when awaited (or
/// spawned).
pub fn http_server_on(
    listener: std::net::TcpListener,
    intake: Intake,
    workers: usize,
) -> Result<actix_web::dev::Server> {
    let tls = intake.tls_for("otlp_http");
    let state = web::Data::new(intake);
    let server = HttpServer::new(move || {
        // The factory runs once on each worker thread: name it for
        // per-thread CPU figures.
        crate::actors::name_thread("otlp-http");
        App::new()
            .app_data(state.clone())
            .route(TRACES_PATH, web::post().to(export_traces))
    })
    .workers(workers.max(1));
    Ok(crate::security::listen!(server, listener, tls)?.run())
}

type HttpState = Intake;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Option<Encoding> {
        let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let essence = ct.split(';').next()?.trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf")
            || essence.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

async fn export_traces(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let start = Instant::now();
    let metrics = TransportMetrics::get(Transport::Http);
    let Some(enc) = Encoding::of(req.headers()) else {
        metrics.finish(start.elapsed(), "unsupported_media_type");
        let msg = "Content-Type must be application/x-protobuf or application/json";
        return status_body(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            msg,
        );
    };
    let gzip = match req
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(e) => {
            metrics.finish(start.elapsed(), "unsupported_media_type");
            let msg = format!("unsupported Content-Encoding {e:?} (gzip and identity are)");
            return status_body(
                enc,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
                &msg,
            );
        }
    };
    let res = handle(&req, payload, &state, enc, gzip).await;
    metrics.finish(start.elapsed(), outcome_label(&res));
    match res {
        Ok(outcome) => {
            let resp = response_for(&outcome);
            let body = match enc {
                Encoding::Protobuf => resp.encode_to_vec(),
                Encoding::Json => json::response_to_json(&resp).to_string().into_bytes(),
            };
            HttpResponse::Ok()
                .content_type(enc.content_type())
                .body(body)
        }
        Err(e) => error_response(enc, &e),
    }
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &HttpState,
    enc: Encoding,
    gzip: bool,
) -> Result<ExportOutcome> {
    let (body, permit, client) = admit_body(req, payload, state, gzip, Transport::Http).await?;
    // Decoded by the receiver worker, with the rest of the request's work.
    let payload = match enc {
        Encoding::Protobuf => Payload::Protobuf(body.into()),
        Encoding::Json => Payload::Json(body.into()),
    };
    state.export(payload, Transport::Http, permit, client).await
}

/// What every HTTP receiver does before a worker sees the body: who sends
/// it (API key or client certificate, before the body is read), the size
/// limit, the in-flight byte budget (charged before the body
/// is read: the declared length, or the limit when chunked, resized once
/// the inflated size is known), and gzip inflation off the async thread.
pub(crate) async fn admit_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &Intake,
    gzip: bool,
    transport: Transport,
) -> Result<(Vec<u8>, InflightPermit, Option<Arc<Client>>)> {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let peer = crate::security::conn::http_peer(req);
    let client = state.authenticate(
        header("authorization"),
        header("x-strand-api-key"),
        peer.as_deref(),
    )?;
    let max = state.cfg.max_request_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large(max));
    }
    let admission = &state.admission;
    let mut permit = admission.try_admit(declared.map_or(max, |n| n as usize))?;
    let raw = read_bounded(payload, max).await?;
    admission.resize(&mut permit, raw.len())?;
    // A small body may inflate to the full limit.
    let body = if gzip {
        maybe_blocking(usize::MAX, move || gunzip_bounded(&raw, max)).await?
    } else {
        raw.to_vec()
    };
    admission.resize(&mut permit, body.len())?;
    TransportMetrics::get(transport)
        .request_bytes
        .add(body.len() as u64);
    Ok((body, permit, client))
}

pub(crate) fn too_large(max: usize) -> Error {
    Error::TooLarge(format!(
        "request body exceeds ingest.max_request_bytes ({max} bytes)"
    ))
}

pub(crate) async fn read_bounded(mut payload: web::Payload, max: usize) -> Result<BytesMut> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Error::InvalidArgument(format!("reading request body: {e}")))?;
        if buf.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Decompresses at most `max` bytes: reading stops one byte past the limit,
/// so a gzip bomb costs at most `max` bytes of memory.
pub fn gunzip_bounded(raw: &[u8], max: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(raw).take(max as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| Error::InvalidArgument(format!("invalid gzip body: {e}")))?;
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(out)
}

fn error_response(enc: Encoding, e: &Error) -> HttpResponse {
    let mut resp = status_body(enc, e.http_status(), e.grpc_code(), &e.to_string());
    e.add_retry_after(&mut resp);
    resp
}

/// A `google.rpc.Status` body in the request's encoding.
fn status_body(
    enc: Encoding,
    status: StatusCode,
    code: tonic::Code,
    message: &str,
) -> HttpResponse {
    let body = match enc {
        Encoding::Protobuf => tonic_types::pb::Status {
            code: code as i32,
            message: message.to_string(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code as i32, "message": message })
            .to_string()
            .into_bytes(),
    };
    HttpResponse::build(status)
        .content_type(enc.content_type())
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn gzip_is_bounded() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 4 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(
            gunzip_bounded(&bomb, 1 << 20),
            Err(Error::TooLarge(_))
        ));
        assert_eq!(gunzip_bounded(&bomb, 4 << 20).unwrap().len(), 4 << 20);
        assert!(matches!(
            gunzip_bounded(b"not gzip", 1024),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(Encoding::of(&h), None);
        h.insert(
            CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(Encoding::of(&h), Some(Encoding::Json));
        h.insert(CONTENT_TYPE, "application/x-protobuf".parse().unwrap());
        assert_eq!(Encoding::of(&h), Some(Encoding::Protobuf));
        h.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(Encoding::of(&h), None);
    }
}
