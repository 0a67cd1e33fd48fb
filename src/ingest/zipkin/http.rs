//! `POST /api/v2/spans`: the Zipkin v2 collector endpoint. Admission, body
//! limits and gzip are the OTLP/HTTP ones (`crate::ingest::http`); only the
//! answers differ, in Zipkin's terms: 202 Accepted with an empty body (or,
//! when some spans were rejected, the reason as text), errors as a
//! `text/plain` reason with the same statuses and `Retry-After` as OTLP.

use actix_web::http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::time::Instant;

use crate::actors::receiver::ExportOutcome;
use crate::error::Result;
use crate::ingest::http::admit_body;
use crate::ingest::{outcome_label, Intake, Payload};
use crate::pipeline::{Transport, TransportMetrics};

pub const SPANS_PATH: &str = "/api/v2/spans";

/// Serves the Zipkin endpoint on a bound listener with `workers` actix-web
/// threads (`zipkin-http`); the server runs when awaited or spawned.
pub fn zipkin_server_on(
    listener: std::net::TcpListener,
    intake: Intake,
    workers: usize,
) -> Result<actix_web::dev::Server> {
    let tls = intake.tls_for("zipkin_http");
    let state = web::Data::new(intake);
    let server = HttpServer::new(move || {
        crate::actors::name_thread("zipkin-http");
        App::new()
            .app_data(state.clone())
            .route(SPANS_PATH, web::post().to(post_spans))
    })
    .workers(workers.max(1));
    Ok(crate::security::listen!(server, listener, tls)?.run())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Json,
    Protobuf,
}

/// Zipkin treats a missing Content-Type as JSON; so does strand.
fn encoding_of(headers: &HeaderMap) -> std::result::Result<Encoding, String> {
    let Some(ct) = headers.get(CONTENT_TYPE) else {
        return Ok(Encoding::Json);
    };
    let ct = ct.to_str().unwrap_or("?");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(Encoding::Json)
    } else if essence.eq_ignore_ascii_case("application/x-protobuf")
        || essence.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(Encoding::Protobuf)
    } else {
        Err(format!(
            "unsupported Content-Type {ct:?} (application/json and application/x-protobuf are)"
        ))
    }
}

fn text(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

async fn post_spans(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<Intake>,
) -> HttpResponse {
    let start = Instant::now();
    let metrics = TransportMetrics::get(Transport::Zipkin);
    let refuse = |why: String| {
        metrics.finish(start.elapsed(), "unsupported_media_type");
        text(StatusCode::UNSUPPORTED_MEDIA_TYPE, why)
    };
    let enc = match encoding_of(req.headers()) {
        Ok(e) => e,
        Err(why) => return refuse(why),
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
            return refuse(format!(
                "unsupported Content-Encoding {e:?} (gzip and identity are)"
            ))
        }
    };
    let res = handle(&req, payload, &state, enc, gzip).await;
    metrics.finish(start.elapsed(), outcome_label(&res));
    match res {
        Ok(o) => text(StatusCode::ACCEPTED, o.message),
        Err(e) => {
            let mut resp = text(e.http_status(), e.to_string());
            e.add_retry_after(&mut resp);
            resp
        }
    }
}

/// As OTLP/HTTP: authenticate, charge the declared length, read and inflate
/// under the limit, then let a worker decode and store.
async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &Intake,
    enc: Encoding,
    gzip: bool,
) -> Result<ExportOutcome> {
    let (body, permit, client) = admit_body(req, payload, state, gzip, Transport::Zipkin).await?;
    let payload = match enc {
        Encoding::Json => Payload::ZipkinJson(body.into()),
        Encoding::Protobuf => Payload::ZipkinProtobuf(body.into()),
    };
    state
        .export(payload, Transport::Zipkin, permit, client)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(encoding_of(&h), Ok(Encoding::Json));
        h.insert(
            CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(encoding_of(&h), Ok(Encoding::Json));
        h.insert(CONTENT_TYPE, "application/x-protobuf".parse().unwrap());
        assert_eq!(encoding_of(&h), Ok(Encoding::Protobuf));
        h.insert(CONTENT_TYPE, "application/x-thrift".parse().unwrap());
        assert!(encoding_of(&h).unwrap_err().contains("x-thrift"));
    }
}
