//! Node-to-node read API (`/internal/v1/*`), served by every node with a
//! store and read by `crate::store::remote::RemoteReader`. It mirrors
//! [`SpanReader`](crate::store::SpanReader) one to one and is lossless:
//! spans travel as OTLP JSON, hits as `{traceID, startNs}`. It is not a
//! public API and may change with the binary version.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::QueryState;
use crate::error::{Error, Result};
use crate::model::{SearchQuery, SpanKind, TraceId};
use crate::otlp::json::traces_to_otlp_json;
use crate::store::{Operation, TraceHit};

pub const TRACE: &str = "/internal/v1/trace";
pub const SEARCH: &str = "/internal/v1/search";
pub const SERVICES: &str = "/internal/v1/services";
pub const OPERATIONS: &str = "/internal/v1/operations";
pub const SCAN: &str = "/internal/v1/scan";

/// Largest scan page a peer may ask for, so one request stays bounded.
pub const MAX_SCAN_PAGE: usize = 10_000;

/// [`SearchQuery`] on the wire (the model type stays serde-free).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct WireQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub span_kind: Option<u8>,
    pub tags: Vec<(String, String)>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub limit: usize,
}

impl From<&SearchQuery> for WireQuery {
    fn from(q: &SearchQuery) -> Self {
        WireQuery {
            service: q.service.clone(),
            operation: q.operation.clone(),
            span_kind: q.span_kind.map(|k| k as u8),
            tags: q.tags.clone(),
            min_duration_ns: q.min_duration_ns,
            max_duration_ns: q.max_duration_ns,
            start_ns: q.start_ns,
            end_ns: q.end_ns,
            limit: q.limit,
        }
    }
}

impl From<WireQuery> for SearchQuery {
    fn from(w: WireQuery) -> Self {
        SearchQuery {
            service: w.service,
            operation: w.operation,
            span_kind: w.span_kind.map(|k| SpanKind::from_i32(i32::from(k))),
            tags: w.tags,
            min_duration_ns: w.min_duration_ns,
            max_duration_ns: w.max_duration_ns,
            start_ns: w.start_ns,
            end_ns: w.end_ns,
            limit: w.limit,
        }
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct WireHit {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "startNs")]
    pub start_ns: u64,
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct WireOperation {
    pub name: String,
    pub kind: u8,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanRequest {
    pub query: WireQuery,
    pub after: Option<String>,
    pub page_size: usize,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct ScanResponse {
    /// OTLP JSON (`{"resourceSpans": [...]}`).
    pub spans: Value,
    pub next: Option<String>,
}

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
        .route(SCAN, web::post().to(scan));
}

async fn trace(state: web::Data<QueryState>, id: web::Path<String>) -> Result<HttpResponse> {
    let id = TraceId::from_hex(&id)
        .ok_or_else(|| Error::InvalidArgument(format!("bad trace id {:?}", id.as_str())))?;
    let spans = state.reader.trace(id).await?;
    Ok(HttpResponse::Ok().json(traces_to_otlp_json(&spans)))
}

async fn search(state: web::Data<QueryState>, q: web::Json<WireQuery>) -> Result<HttpResponse> {
    let hits = state.reader.search(&q.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(hits.iter().map(wire_hit).collect::<Vec<_>>()))
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
    Ok(HttpResponse::Ok().json(ScanResponse {
        spans: traces_to_otlp_json(&page.spans),
        next: page.next,
    }))
}

fn wire_hit(h: &TraceHit) -> WireHit {
    WireHit {
        trace_id: h.trace_id.to_hex(),
        start_ns: h.start_ns,
    }
}

impl WireHit {
    pub fn into_hit(self) -> Result<TraceHit> {
        let trace_id = TraceId::from_hex(&self.trace_id)
            .ok_or_else(|| Error::Corrupt(format!("peer sent trace id {:?}", self.trace_id)))?;
        Ok(TraceHit {
            trace_id,
            start_ns: self.start_ns,
        })
    }
}

impl From<WireOperation> for Operation {
    fn from(o: WireOperation) -> Self {
        Operation {
            name: o.name,
            kind: SpanKind::from_i32(i32::from(o.kind)),
        }
    }
}
