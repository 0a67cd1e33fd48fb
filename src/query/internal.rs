//! The node-to-node read API's handlers (`/internal/v1/*`, wire types in
//! `crate::tiers::wire`), served by every node with a store and read by a
//! query node's peer readers.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::QueryState;
use crate::error::{Error, Result};
use crate::model::TraceId;
use crate::otlp::json::traces_to_otlp_json;
use crate::tiers::wire::{
    ScanRequest, ScanResponse, Window, WireCatalog, WireGraph, WireHit, WireOperation, WireQuery,
    CATALOG, DEPENDENCIES, MAX_SCAN_PAGE, OPERATIONS, SCAN, SEARCH, SERVICES, TRACE,
};

#[derive(Deserialize)]
pub struct ServiceParam {
    pub service: Option<String>,
}

/// Registers the internal routes (called from `query::configure`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(&format!("{TRACE}/{{id}}"), web::get().to(trace))
        .route(SEARCH, web::post().to(search))
        .route(SERVICES, web::get().to(services))
        .route(OPERATIONS, web::get().to(operations))
        .route(SCAN, web::post().to(scan))
        .route(CATALOG, web::get().to(catalog))
        .route(DEPENDENCIES, web::get().to(dependencies));
}

async fn catalog(state: web::Data<QueryState>, w: web::Query<Window>) -> Result<HttpResponse> {
    let c = state.reader.tag_catalog(w.from, w.to).await?;
    Ok(HttpResponse::Ok().json(WireCatalog::from(&c)))
}

async fn dependencies(state: web::Data<QueryState>, w: web::Query<Window>) -> Result<HttpResponse> {
    let g = state.reader.dependencies(w.from, w.to).await?;
    Ok(HttpResponse::Ok().json(WireGraph::from(&g)))
}

async fn trace(state: web::Data<QueryState>, id: web::Path<String>) -> Result<HttpResponse> {
    let id = TraceId::from_hex(&id)
        .ok_or_else(|| Error::InvalidArgument(format!("bad trace id {:?}", id.as_str())))?;
    let spans = state.reader.trace(id).await?;
    Ok(HttpResponse::Ok().json(traces_to_otlp_json(&spans)))
}

async fn search(state: web::Data<QueryState>, q: web::Json<WireQuery>) -> Result<HttpResponse> {
    let hits = state.reader.search(&q.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(hits.iter().map(WireHit::from).collect::<Vec<_>>()))
}

async fn services(state: web::Data<QueryState>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.reader.services().await?))
}

async fn operations(
    state: web::Data<QueryState>,
    p: web::Query<ServiceParam>,
) -> Result<HttpResponse> {
    let ops = state.reader.operations(p.service.as_deref()).await?;
    let ops: Vec<WireOperation> = ops
        .into_iter()
        .map(|o| WireOperation {
            name: o.name,
            kind: o.kind as u8,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ops))
}

async fn scan(state: web::Data<QueryState>, r: web::Json<ScanRequest>) -> Result<HttpResponse> {
    let r = r.into_inner();
    let page_size = r.page_size.clamp(1, MAX_SCAN_PAGE);
    let page = state
        .reader
        .scan(&r.query.into(), r.after.as_deref(), page_size)
        .await?;
    let spans = serde_json::to_value(traces_to_otlp_json(&page.spans))
        .map_err(|e| Error::Internal(format!("scan page as JSON: {e}")))?;
    Ok(HttpResponse::Ok().json(ScanResponse {
        spans,
        next: page.next,
    }))
}
