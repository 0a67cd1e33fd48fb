//! A storage tier on another node: [`PeerReader`] implements
//! [`SpanReader`] over that node's `/internal/v1/*` endpoints (wire types
//! in `super::wire`). A `--target query` node builds one per `query.peers`
//! entry and merges them with `TieredReader`, which also drops the
//! duplicate spans at-least-once delivery leaves behind.
//!
//! Failure: a peer that cannot be reached, times out or answers 5xx makes
//! the whole read fail with `Unavailable` (503 + Retry-After to the query
//! client) rather than return silently partial results.

use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use super::wire::{
    self, ScanRequest, ScanResponse, WireCatalog, WireGraph, WireHit, WireOperation, WireQuery,
};
use crate::error::{Error, Result};
use crate::model::{Graph, Operation, ScanPage, SpanReader, TagCatalog, TraceHit};
use crate::model::{SearchQuery, Span, TraceId};
use crate::otlp::convert::spans_from_proto;
use crate::otlp::json::decode_request;

/// How long one peer request may take before the peer counts as down.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct PeerReader {
    base: String,
    client: reqwest::Client,
}

impl PeerReader {
    /// `base_url` is the peer's query address, e.g. `http://writer-1:16686`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<PeerReader> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        Ok(PeerReader {
            base: base_url.trim_end_matches('/').to_string(),
            client,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<bytes::Bytes> {
        let resp = req.send().await.map_err(|e| self.down(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.down(&e))?;
        if status.is_success() {
            return Ok(body);
        }
        let msg = format!(
            "peer {} answered {status}: {}",
            self.base,
            String::from_utf8_lossy(&body[..body.len().min(512)])
        );
        Err(match status.as_u16() {
            400 => Error::InvalidArgument(msg),
            413 => Error::TooLarge(msg),
            429 => Error::Overloaded(msg),
            _ if status.is_server_error() => Error::Unavailable(msg),
            _ => Error::Internal(msg),
        })
    }

    fn down(&self, e: &reqwest::Error) -> Error {
        Error::Unavailable(format!("peer {} unreachable: {e}", self.base))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let body = self
            .send(self.client.get(format!("{}{path}", self.base)))
            .await?;
        self.parse(&body)
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        payload: &impl serde::Serialize,
    ) -> Result<T> {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .json(payload);
        let body = self.send(req).await?;
        self.parse(&body)
    }

    fn parse<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body)
            .map_err(|e| Error::Internal(format!("peer {} sent bad JSON: {e}", self.base)))
    }
}

/// OTLP JSON → spans, as the ingest path decodes it.
fn spans_from_json(body: &[u8]) -> Result<Vec<Span>> {
    let req = decode_request(body)?;
    Ok(spans_from_proto(&req.resource_spans))
}

#[async_trait]
impl SpanReader for PeerReader {
    async fn trace(&self, id: TraceId) -> Result<Vec<Span>> {
        let url = format!("{}{}/{}", self.base, wire::TRACE, id.to_hex());
        let body = self.send(self.client.get(url)).await?;
        spans_from_json(&body)
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
        let hits: Vec<WireHit> = self.post_json(wire::SEARCH, &WireQuery::from(q)).await?;
        hits.into_iter().map(WireHit::into_hit).collect()
    }

    async fn services(&self) -> Result<Vec<String>> {
        self.get_json(wire::SERVICES).await
    }

    async fn operations(&self, service: Option<&str>) -> Result<Vec<Operation>> {
        let mut req = self
            .client
            .get(format!("{}{}", self.base, wire::OPERATIONS));
        if let Some(s) = service {
            req = req.query(&[("service", s)]);
        }
        let body = self.send(req).await?;
        let ops: Vec<WireOperation> = self.parse(&body)?;
        Ok(ops.into_iter().map(Operation::from).collect())
    }

    async fn tag_catalog(&self, from_ns: u64, to_ns: u64) -> Result<TagCatalog> {
        let path = format!("{}?from={from_ns}&to={to_ns}", wire::CATALOG);
        let c: WireCatalog = self.get_json(&path).await?;
        Ok(c.into_catalog())
    }

    async fn dependencies(&self, from_ns: u64, to_ns: u64) -> Result<Graph> {
        let path = format!("{}?from={from_ns}&to={to_ns}", wire::DEPENDENCIES);
        let g: WireGraph = self.get_json(&path).await?;
        Ok(g.into_graph())
    }

    async fn scan(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage> {
        let r = ScanRequest {
            query: WireQuery::from(q),
            after: after.map(str::to_string),
            page_size,
        };
        let page: ScanResponse = self.post_json(wire::SCAN, &r).await?;
        let body = serde_json::to_vec(&page.spans)
            .map_err(|e| Error::Internal(format!("re-encoding a scan page: {e}")))?;
        Ok(ScanPage {
            spans: spans_from_json(&body)?,
            next: page.next,
        })
    }
}
