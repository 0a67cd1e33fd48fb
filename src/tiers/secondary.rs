//! [`SecondaryTier`]: a reader tier that may be down without taking the
//! query API with it. When Elasticsearch is unreachable, trace fetches and
//! searches answer from the other tiers (the hot store holds the recent
//! spans) instead of failing with 503; each degraded answer is logged and
//! counted. Export scans stay strict: a partial export must not look whole.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::metrics::Counter;
use crate::model::{Graph, Operation, ScanPage, SpanReader, TagCatalog, TraceHit};
use crate::model::{SearchQuery, Span, TraceId};

pub struct SecondaryTier {
    inner: Arc<dyn SpanReader>,
    name: &'static str,
}

impl SecondaryTier {
    pub fn new(name: &'static str, inner: Arc<dyn SpanReader>) -> SecondaryTier {
        SecondaryTier { inner, name }
    }

    /// `Unavailable` becomes an empty answer; other errors (a bad query,
    /// a trace too large) still reach the caller.
    fn degrade<T: Default>(&self, what: &str, r: Result<T>) -> Result<T> {
        match r {
            Err(Error::Unavailable(msg)) => {
                tracing::warn!(tier = self.name, what, error = %msg, "tier unavailable; answering without it");
                Counter::new(
                    "strand_query_tier_unavailable_total",
                    "reads answered without a storage tier that was unreachable",
                    &[("tier", self.name)],
                )
                .inc();
                Ok(T::default())
            }
            other => other,
        }
    }
}

#[async_trait]
impl SpanReader for SecondaryTier {
    async fn trace(&self, id: TraceId) -> Result<Vec<Span>> {
        self.degrade("trace", self.inner.trace(id).await)
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
        self.degrade("search", self.inner.search(q).await)
    }

    async fn services(&self) -> Result<Vec<String>> {
        self.degrade("services", self.inner.services().await)
    }

    async fn operations(&self, service: Option<&str>) -> Result<Vec<Operation>> {
        self.degrade("operations", self.inner.operations(service).await)
    }

    async fn scan(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage> {
        self.inner.scan(q, after, page_size).await
    }

    async fn tag_catalog(&self, from_ns: u64, to_ns: u64) -> Result<TagCatalog> {
        let r = self.inner.tag_catalog(from_ns, to_ns).await;
        let down = matches!(r, Err(Error::Unavailable(_)));
        let mut c = self.degrade("tag_catalog", r)?;
        // A tier that was down contributed no per-service data.
        c.by_service.missing |= down;
        Ok(c)
    }

    async fn dependencies(&self, from_ns: u64, to_ns: u64) -> Result<Graph> {
        self.degrade(
            "dependencies",
            self.inner.dependencies(from_ns, to_ns).await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiers::memory::MemoryStore;

    struct Down;

    #[async_trait]
    impl SpanReader for Down {
        async fn trace(&self, _: TraceId) -> Result<Vec<Span>> {
            Err(Error::Unavailable("connection refused".into()))
        }
        async fn search(&self, _: &SearchQuery) -> Result<Vec<TraceHit>> {
            Err(Error::InvalidArgument("bad query".into()))
        }
        async fn services(&self) -> Result<Vec<String>> {
            Err(Error::Unavailable("connection refused".into()))
        }
        async fn operations(&self, _: Option<&str>) -> Result<Vec<Operation>> {
            Err(Error::Unavailable("connection refused".into()))
        }
        async fn scan(&self, _: &SearchQuery, _: Option<&str>, _: usize) -> Result<ScanPage> {
            Err(Error::Unavailable("connection refused".into()))
        }
        async fn tag_catalog(&self, _: u64, _: u64) -> Result<TagCatalog> {
            Err(Error::Unavailable("connection refused".into()))
        }
    }

    #[actix_rt::test]
    async fn unavailable_reads_are_empty_other_errors_pass() {
        let t = SecondaryTier::new("test", Arc::new(Down));
        assert!(t.trace(TraceId([1; 16])).await.unwrap().is_empty());
        assert!(t.services().await.unwrap().is_empty());
        assert!(t.operations(None).await.unwrap().is_empty());
        let cat = t.tag_catalog(0, 10).await.unwrap();
        assert!(cat.services.is_empty());
        assert!(
            !cat.per_service_complete(),
            "a tier that was down gave none"
        );
        let q = SearchQuery::default();
        assert!(matches!(t.search(&q).await, Err(Error::InvalidArgument(_))));
        assert!(t.scan(&q, None, 10).await.is_err(), "exports stay strict");
        let up = SecondaryTier::new("test", Arc::new(MemoryStore::new()));
        assert!(up.trace(TraceId([1; 16])).await.unwrap().is_empty());
    }
}
