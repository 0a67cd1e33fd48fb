//! The node-to-node read API (`/internal/v1/*`) on the wire: served by
//! `crate::query::internal` on every node with a store, read by
//! [`super::peer::PeerReader`]. It mirrors `SpanReader` one to one and is
//! lossless: spans travel as OTLP JSON, hits as `{traceID, startNs}`. It is
//! not a public API and may change with the binary version.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{Operation, SearchQuery, SpanKind, TraceHit, TraceId};

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

impl From<&TraceHit> for WireHit {
    fn from(h: &TraceHit) -> Self {
        WireHit {
            trace_id: h.trace_id.to_hex(),
            start_ns: h.start_ns,
        }
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
