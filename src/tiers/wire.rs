//! The node-to-node read API (`/internal/v1/*`) on the wire: served by
//! `crate::query::internal` on every node with a store, read by
//! [`super::peer::PeerReader`]. It mirrors `SpanReader` one to one and is
//! lossless: spans travel as OTLP JSON, hits as `{traceID, startNs}`. It is
//! not a public API and may change with the binary version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::catalog::{
    ByService, Dict, EdgeCounts, Graph, KeyValues, ServiceAttrs, TagCatalog,
};
use crate::model::{Operation, SearchQuery, SpanKind, TraceHit, TraceId};

pub const TRACE: &str = "/internal/v1/trace";
pub const SEARCH: &str = "/internal/v1/search";
pub const SERVICES: &str = "/internal/v1/services";
pub const OPERATIONS: &str = "/internal/v1/operations";
pub const SCAN: &str = "/internal/v1/scan";
/// `GET ?from=<ns>&to=<ns>`: [`WireCatalog`].
pub const CATALOG: &str = "/internal/v1/catalog";
/// `GET ?from=<ns>&to=<ns>`: [`WireGraph`].
pub const DEPENDENCIES: &str = "/internal/v1/dependencies";

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

/// The window of a catalog or dependencies request.
#[derive(Debug, Deserialize, Serialize)]
pub struct Window {
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct WireValues {
    pub incomplete: bool,
    /// Value text → TraceQL type mask (`model::catalog::TY_*`).
    pub values: BTreeMap<String, u8>,
}

/// [`TagCatalog`] on the wire.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct WireCatalog {
    pub resource: BTreeMap<String, WireValues>,
    pub span: BTreeMap<String, WireValues>,
    pub services: BTreeMap<String, WireValues>,
    pub root_services: WireValues,
    pub root_names: WireValues,
    pub keys_incomplete: bool,
    /// Service → its own keys and values.
    pub by_service: BTreeMap<String, WireServiceAttrs>,
    /// Whether `by_service` is complete for the window. Absent (a peer
    /// that predates it) reads as false, so the scoped answer falls back
    /// to the sample rather than trusting an empty map.
    pub per_service_complete: bool,
}

/// One service's keys and values on the wire.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct WireServiceAttrs {
    pub resource: BTreeMap<String, WireValues>,
    pub span: BTreeMap<String, WireValues>,
    pub keys_incomplete: bool,
}

fn values_out(v: &KeyValues) -> WireValues {
    WireValues {
        incomplete: v.incomplete,
        values: v.values.clone(),
    }
}

fn values_in(v: WireValues) -> KeyValues {
    KeyValues {
        incomplete: v.incomplete,
        values: v.values,
    }
}

fn dict_out(d: &Dict) -> BTreeMap<String, WireValues> {
    d.iter().map(|(k, v)| (k.clone(), values_out(v))).collect()
}

fn dict_in(d: BTreeMap<String, WireValues>) -> Dict {
    d.into_iter().map(|(k, v)| (k, values_in(v))).collect()
}

impl From<&TagCatalog> for WireCatalog {
    fn from(c: &TagCatalog) -> Self {
        WireCatalog {
            resource: dict_out(&c.resource),
            span: dict_out(&c.span),
            services: dict_out(&c.services),
            root_services: values_out(&c.root_services),
            root_names: values_out(&c.root_names),
            keys_incomplete: c.keys_incomplete,
            by_service: c
                .by_service
                .union()
                .into_iter()
                .map(|(svc, a)| {
                    let w = WireServiceAttrs {
                        resource: dict_out(&a.resource),
                        span: dict_out(&a.span),
                        keys_incomplete: a.keys_incomplete,
                    };
                    (svc, w)
                })
                .collect(),
            per_service_complete: c.per_service_complete(),
        }
    }
}

impl WireCatalog {
    /// Back to the model type; merged into an empty catalog so a peer's
    /// answer is held to this node's bounds.
    pub fn into_catalog(self) -> TagCatalog {
        let c = TagCatalog {
            resource: dict_in(self.resource),
            span: dict_in(self.span),
            services: dict_in(self.services),
            root_services: values_in(self.root_services),
            root_names: values_in(self.root_names),
            keys_incomplete: self.keys_incomplete,
            by_service: ByService::from_map(
                self.by_service
                    .into_iter()
                    .map(|(svc, a)| {
                        let a = ServiceAttrs {
                            resource: dict_in(a.resource),
                            span: dict_in(a.span),
                            keys_incomplete: a.keys_incomplete,
                        };
                        (svc, a)
                    })
                    .collect(),
                !self.per_service_complete,
            ),
        };
        let mut out = TagCatalog::default();
        out.merge(&c);
        out
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct WireEdge {
    pub parent: String,
    pub child: String,
    pub calls: u64,
    pub errors: u64,
}

/// [`Graph`] on the wire.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct WireGraph {
    pub edges: Vec<WireEdge>,
    pub truncated: bool,
}

impl From<&Graph> for WireGraph {
    fn from(g: &Graph) -> Self {
        WireGraph {
            edges: g
                .edges
                .iter()
                .map(|((p, c), e)| WireEdge {
                    parent: p.clone(),
                    child: c.clone(),
                    calls: e.calls,
                    errors: e.errors,
                })
                .collect(),
            truncated: g.truncated,
        }
    }
}

impl WireGraph {
    /// Back to the model type, held to this node's edge bound.
    pub fn into_graph(self) -> Graph {
        let mut g = Graph {
            truncated: self.truncated,
            ..Default::default()
        };
        for e in self.edges {
            let counts = EdgeCounts {
                calls: e.calls,
                errors: e.errors.min(e.calls),
            };
            g.add(&e.parent, &e.child, counts);
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::TY_INT;

    #[test]
    fn catalog_and_graph_survive_the_wire() {
        let mut c = TagCatalog::default();
        c.add_operation("front", "GET /");
        c.span
            .entry("code".into())
            .or_default()
            .add("200", TY_INT, 10);
        c.root_names.incomplete = true;
        let svc = c.by_service.own_mut().entry("front".into()).or_default();
        svc.span
            .entry("route".into())
            .or_default()
            .add("/x", crate::model::catalog::TY_STRING, 10);
        svc.keys_incomplete = true;
        let json = serde_json::to_string(&WireCatalog::from(&c)).unwrap();
        let back: WireCatalog = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_catalog(), c);
        c.by_service.missing = true;
        let json = serde_json::to_string(&WireCatalog::from(&c)).unwrap();
        let back: WireCatalog = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_catalog(), c, "the missing flag crosses too");
        // A peer that sends no per-service part is not trusted for it.
        let old: WireCatalog = serde_json::from_str(r#"{"services": {}}"#).unwrap();
        assert!(!old.into_catalog().per_service_complete());
        let mut g = Graph::default();
        g.add(
            "a",
            "b",
            EdgeCounts {
                calls: 3,
                errors: 1,
            },
        );
        let json = serde_json::to_string(&WireGraph::from(&g)).unwrap();
        let back: WireGraph = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_graph(), g);
    }
}
