//! `/internal/v1/span-metrics/*`: a writer node's span metrics for a query
//! node's `spanmetrics::peer::PeerMetrics`. Points travel as one block of
//! the store's own format (`spanmetrics::store::codec`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::QueryState;
use crate::error::{Error, Result};
use crate::model::SpanKind;
use crate::spanmetrics::peer::{RANGE, SERVICES, TOTALS};
use crate::spanmetrics::store::codec::{encode_block, Source};
use crate::spanmetrics::RangeQuery;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(RANGE, web::get().to(range))
        .route(TOTALS, web::get().to(totals))
        .route(SERVICES, web::get().to(services));
}

#[derive(Deserialize)]
struct RangeParams {
    service: Option<String>,
    /// Comma-separated span kind numbers (OTLP's).
    kinds: Option<String>,
    start: u64,
    end: u64,
    step: u64,
}

fn parse(p: RangeParams) -> Result<RangeQuery> {
    let mut kinds = Vec::new();
    for k in p
        .kinds
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        let n: i32 = k
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("bad span kind {k:?}")))?;
        kinds.push(SpanKind::from_i32(n));
    }
    if p.step == 0 || p.end < p.start {
        return Err(Error::InvalidArgument(
            "step must be positive and end not before start".into(),
        ));
    }
    Ok(RangeQuery {
        service: p.service,
        kinds,
        start_ns: p.start,
        end_ns: p.end,
        step_ns: p.step,
    })
}

fn block(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(body)
}

async fn range(state: web::Data<QueryState>, p: web::Query<RangeParams>) -> Result<HttpResponse> {
    let q = parse(p.into_inner())?;
    let reader = state.span_metrics.clone();
    let series = web::block(move || reader.range(&q))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let records: Vec<_> = series
        .into_iter()
        .flat_map(|(k, pts)| pts.into_iter().map(move |p| (k.clone(), p)))
        .collect();
    Ok(block(encode_block(&Source::default(), &records)))
}

async fn totals(state: web::Data<QueryState>) -> Result<HttpResponse> {
    let reader = state.span_metrics.clone();
    let t = web::block(move || reader.totals())
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(block(encode_block(&Source::default(), &t)))
}

async fn services(state: web::Data<QueryState>) -> Result<HttpResponse> {
    let reader = state.span_metrics.clone();
    let s = web::block(move || reader.services())
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(HttpResponse::Ok().json(s))
}
