//! Reads over several tiers (hot first): trace fetches merged and
//! deduplicated (`model::dedup_spans`), searches merged by newest match.

use async_trait::async_trait;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{
    dedup_spans, sort_hits, Graph, Operation, ScanPage, SearchQuery, Span, SpanReader, TagCatalog,
    TraceHit, TraceId,
};

/// Whether `tier` received everything from `from_ns` on.
async fn holds_window(tier: &dyn SpanReader, from_ns: u64) -> Result<bool> {
    Ok(tier.oldest_start_ns().await?.is_some_and(|t| t <= from_ns))
}

/// Reads from several tiers (hot first), merging and deduplicating.
pub struct TieredReader(pub Vec<Arc<dyn SpanReader>>);

#[async_trait]
impl SpanReader for TieredReader {
    async fn trace(&self, id: TraceId) -> Result<Vec<Span>> {
        let mut all = Vec::new();
        for tier in &self.0 {
            all.extend(tier.trace(id).await?);
        }
        dedup_spans(&mut all);
        Ok(all)
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
        let mut hits: Vec<TraceHit> = Vec::new();
        for tier in &self.0 {
            hits.extend(tier.search(q).await?);
        }
        // Keep each trace once, at its newest matching start.
        sort_hits(&mut hits);
        let mut seen = HashSet::new();
        hits.retain(|h| seen.insert(h.trace_id));
        hits.truncate(q.limit);
        Ok(hits)
    }

    async fn services(&self) -> Result<Vec<String>> {
        let mut all = BTreeSet::new();
        for tier in &self.0 {
            all.extend(tier.services().await?);
        }
        Ok(all.into_iter().collect())
    }

    async fn operations(&self, service: Option<&str>) -> Result<Vec<Operation>> {
        let mut all = BTreeSet::new();
        for tier in &self.0 {
            all.extend(tier.operations(service).await?);
        }
        Ok(all.into_iter().collect())
    }

    /// The union of the tiers' catalogs, stopping after a tier that holds
    /// the whole window (see [`SpanReader::oldest_start_ns`]).
    async fn tag_catalog(&self, from_ns: u64, to_ns: u64) -> Result<TagCatalog> {
        let mut all = TagCatalog::default();
        for tier in &self.0 {
            all.merge(&tier.tag_catalog(from_ns, to_ns).await?);
            if holds_window(tier.as_ref(), from_ns).await? {
                break;
            }
        }
        Ok(all)
    }

    /// The tiers hold copies of the same traffic (every span is written to
    /// the hot store and to Elasticsearch), so each edge takes the count
    /// of the tier that saw most of it rather than the sum; a tier that
    /// holds the whole window answers alone.
    async fn dependencies(&self, from_ns: u64, to_ns: u64) -> Result<Graph> {
        let mut g = Graph::default();
        for tier in &self.0 {
            g.max(&tier.dependencies(from_ns, to_ns).await?);
            if holds_window(tier.as_ref(), from_ns).await? {
                break;
            }
        }
        Ok(g)
    }

    async fn oldest_start_ns(&self) -> Result<Option<u64>> {
        let mut oldest: Option<u64> = None;
        for tier in &self.0 {
            if let Some(t) = tier.oldest_start_ns().await? {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
        }
        Ok(oldest)
    }

    /// Scans the tiers one after another; the cursor is `<tier>:<cursor>`.
    /// Spans held by several tiers appear once per tier; export callers
    /// deduplicate within their sort window.
    async fn scan(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage> {
        let (mut tier, mut inner) = match after {
            None => (0usize, None),
            Some(c) => {
                let (t, rest) = c
                    .split_once(':')
                    .ok_or_else(|| Error::InvalidArgument(format!("bad cursor {c:?}")))?;
                let t = t
                    .parse()
                    .map_err(|_| Error::InvalidArgument(format!("bad cursor {c:?}")))?;
                (t, (!rest.is_empty()).then(|| rest.to_string()))
            }
        };
        while let Some(reader) = self.0.get(tier) {
            let page = reader.scan(q, inner.as_deref(), page_size).await?;
            let next = match page.next {
                Some(n) => Some(format!("{tier}:{n}")),
                None if tier + 1 < self.0.len() => Some(format!("{}:", tier + 1)),
                None => None,
            };
            if !page.spans.is_empty() || next.is_none() {
                return Ok(ScanPage {
                    spans: page.spans,
                    next,
                });
            }
            tier += 1;
            inner = None;
        }
        Ok(ScanPage::default())
    }
}

/// Readers over disjoint parts of the traffic (writer peers: Kafka
/// partitions by trace id, so each holds whole traces of its own). Reads
/// as [`TieredReader`], except that dependency graphs are summed.
pub struct PartitionedReader(pub TieredReader);

#[async_trait]
impl SpanReader for PartitionedReader {
    async fn trace(&self, id: TraceId) -> Result<Vec<Span>> {
        self.0.trace(id).await
    }
    async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
        self.0.search(q).await
    }
    async fn services(&self) -> Result<Vec<String>> {
        self.0.services().await
    }
    async fn operations(&self, service: Option<&str>) -> Result<Vec<Operation>> {
        self.0.operations(service).await
    }
    async fn scan(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage> {
        self.0.scan(q, after, page_size).await
    }
    async fn tag_catalog(&self, from_ns: u64, to_ns: u64) -> Result<TagCatalog> {
        self.0.tag_catalog(from_ns, to_ns).await
    }
    async fn dependencies(&self, from_ns: u64, to_ns: u64) -> Result<Graph> {
        let mut g = Graph::default();
        for part in &self.0 .0 {
            g.sum(&part.dependencies(from_ns, to_ns).await?);
        }
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SpanWriter;
    use crate::tiers::memory::MemoryStore;
    use crate::tiers::testutil::span;

    #[actix_rt::test]
    async fn merges_and_deduplicates_across_tiers() {
        let hot = Arc::new(MemoryStore::new());
        let cold = Arc::new(MemoryStore::new());
        hot.write(vec![span(1, 1, 100), span(2, 1, 300)])
            .await
            .unwrap();
        cold.write(vec![span(1, 1, 100), span(1, 2, 110), span(3, 1, 50)])
            .await
            .unwrap();
        let r = TieredReader(vec![hot.clone(), cold.clone()]);
        assert_eq!(r.trace(TraceId([1; 16])).await.unwrap().len(), 2);
        let q = SearchQuery {
            limit: 10,
            ..Default::default()
        };
        let ids: Vec<u8> = r
            .search(&q)
            .await
            .unwrap()
            .iter()
            .map(|h| h.trace_id.0[0])
            .collect();
        assert_eq!(ids, vec![2, 1, 3]);
        let mut cursor = None;
        let mut n = 0;
        loop {
            let p = r.scan(&q, cursor.as_deref(), 1).await.unwrap();
            n += p.spans.len();
            match p.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(n, 5, "each tier's spans are scanned once");
    }

    fn call(t: u8, s: u8, parent: Option<u8>, svc: &str) -> Span {
        let mut sp = span(t, s, 100 + u64::from(s));
        sp.parent_span_id = parent.map(|p| crate::model::SpanId([p; 8]));
        sp.resource = std::sync::Arc::new(crate::model::Resource {
            attributes: vec![crate::model::KeyValue::new(
                "service.name",
                crate::model::AttrValue::Str(svc.into()),
            )],
            ..Default::default()
        });
        sp
    }

    #[actix_rt::test]
    async fn copies_take_the_larger_count_partitions_add_up() {
        let (a, b) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
        let t1 = vec![call(1, 1, None, "front"), call(1, 2, Some(1), "api")];
        let t2 = vec![call(2, 1, None, "front"), call(2, 2, Some(1), "api")];
        a.write(t1.clone()).await.unwrap();
        b.write(t1).await.unwrap();
        b.write(t2).await.unwrap();
        let key = ("front".to_string(), "api".to_string());
        let copies = TieredReader(vec![a.clone(), b.clone()]);
        let g = copies.dependencies(0, 1000).await.unwrap();
        assert_eq!(
            g.edges[&key].calls, 2,
            "b saw both calls; a's copy adds none"
        );
        let parts = PartitionedReader(TieredReader(vec![a, b]));
        assert_eq!(
            parts.dependencies(0, 1000).await.unwrap().edges[&key].calls,
            3
        );
        let cat = parts.tag_catalog(0, 1000).await.unwrap();
        assert_eq!(cat.services.len(), 2);
    }

    /// A tier that says it holds everything since `since`.
    struct Holds(MemoryStore, u64);

    #[async_trait]
    impl SpanReader for Holds {
        async fn trace(&self, id: TraceId) -> Result<Vec<Span>> {
            self.0.trace(id).await
        }
        async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
            self.0.search(q).await
        }
        async fn services(&self) -> Result<Vec<String>> {
            self.0.services().await
        }
        async fn operations(&self, s: Option<&str>) -> Result<Vec<Operation>> {
            self.0.operations(s).await
        }
        async fn scan(&self, q: &SearchQuery, a: Option<&str>, n: usize) -> Result<ScanPage> {
            self.0.scan(q, a, n).await
        }
        async fn dependencies(&self, from: u64, to: u64) -> Result<Graph> {
            self.0.dependencies(from, to).await
        }
        async fn oldest_start_ns(&self) -> Result<Option<u64>> {
            Ok(Some(self.1))
        }
    }

    #[actix_rt::test]
    async fn a_tier_holding_the_window_answers_alone() {
        let hot = Holds(MemoryStore::new(), 50);
        hot.0
            .write(vec![call(1, 1, None, "front"), call(1, 2, Some(1), "api")])
            .await
            .unwrap();
        let cold = Arc::new(MemoryStore::new());
        cold.write(vec![call(2, 1, None, "old"), call(2, 2, Some(1), "older")])
            .await
            .unwrap();
        let r = TieredReader(vec![Arc::new(hot), cold]);
        let edges = |g: Graph| g.edges.into_keys().map(|(p, _)| p).collect::<Vec<_>>();
        assert_eq!(edges(r.dependencies(60, 1000).await.unwrap()), ["front"]);
        assert_eq!(
            edges(r.dependencies(10, 1000).await.unwrap()),
            ["front", "old"],
            "a window older than the first tier's data asks the next"
        );
        assert_eq!(r.oldest_start_ns().await.unwrap(), Some(50));
    }
}
