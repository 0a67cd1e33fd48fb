//! Runs hot-store reads on tokio's blocking pool. A search or scan walks
//! mmapped segments (CPU and page faults); on an async worker it would
//! stall every other request that worker serves.

use async_trait::async_trait;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{Graph, Operation, ScanPage, SpanReader, TagCatalog, TraceHit};
use crate::model::{SearchQuery, Span, TraceId};
use crate::store::HotStore;

pub struct OffloadedHotStore(pub Arc<HotStore>);

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("hot-store read failed: {e}")))?
}

#[async_trait]
impl SpanReader for OffloadedHotStore {
    async fn trace(&self, id: TraceId) -> Result<Vec<Span>> {
        let s = self.0.clone();
        blocking(move || s.trace_sync(id)).await
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
        let (s, q) = (self.0.clone(), q.clone());
        blocking(move || s.search_sync(&q)).await
    }

    async fn services(&self) -> Result<Vec<String>> {
        let s = self.0.clone();
        blocking(move || Ok(s.services_sync())).await
    }

    async fn operations(&self, service: Option<&str>) -> Result<Vec<Operation>> {
        let (s, svc) = (self.0.clone(), service.map(str::to_string));
        blocking(move || Ok(s.operations_sync(svc.as_deref()))).await
    }

    async fn tag_catalog(&self, from_ns: u64, to_ns: u64) -> Result<TagCatalog> {
        let s = self.0.clone();
        blocking(move || Ok(s.tag_catalog_sync(from_ns, to_ns))).await
    }

    async fn dependencies(&self, from_ns: u64, to_ns: u64) -> Result<Graph> {
        let s = self.0.clone();
        blocking(move || Ok(s.dependencies_sync(from_ns, to_ns))).await
    }

    /// Cheap (segment time ranges only): answered on the caller's thread.
    async fn oldest_start_ns(&self) -> Result<Option<u64>> {
        Ok(self.0.time_range().map(|t| t.min_start))
    }

    async fn scan(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage> {
        let (s, q, after) = (self.0.clone(), q.clone(), after.map(str::to_string));
        blocking(move || s.scan_sync(&q, after.as_deref(), page_size)).await
    }
}
