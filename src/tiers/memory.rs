//! A plain in-memory tier: the reference semantics of [`SpanReader`],
//! used by unit tests of the layers above the store and to check that the
//! conformance suite itself is right. Not used by `strand serve`.

use async_trait::async_trait;
use parking_lot::RwLock;
use std::collections::{BTreeSet, HashMap};

use crate::error::Result;
use crate::model::catalog::by_trace;
use crate::model::{
    dedup_spans, top_hits, Graph, Operation, ScanPage, SearchQuery, Span, SpanReader, SpanWriter,
    TagCatalog, TraceHit, TraceId,
};

#[derive(Default)]
pub struct MemoryStore {
    spans: RwLock<Vec<Span>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SpanWriter for MemoryStore {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        self.spans.write().extend(spans);
        Ok(())
    }
}

#[async_trait]
impl SpanReader for MemoryStore {
    async fn trace(&self, id: TraceId) -> Result<Vec<Span>> {
        Ok(self
            .spans
            .read()
            .iter()
            .filter(|s| s.trace_id == id)
            .cloned()
            .collect())
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
        let mut newest: HashMap<TraceId, u64> = HashMap::new();
        for s in self.spans.read().iter().filter(|s| q.matches(s)) {
            let e = newest.entry(s.trace_id).or_insert(0);
            *e = (*e).max(s.start_ns);
        }
        Ok(top_hits(newest, q.limit))
    }

    async fn services(&self) -> Result<Vec<String>> {
        let set: BTreeSet<String> = self
            .spans
            .read()
            .iter()
            .map(|s| s.service_name().to_string())
            .collect();
        Ok(set.into_iter().collect())
    }

    async fn operations(&self, service: Option<&str>) -> Result<Vec<Operation>> {
        let set: BTreeSet<Operation> = self
            .spans
            .read()
            .iter()
            .filter(|s| service.is_none_or(|svc| s.service_name() == svc))
            .map(|s| Operation {
                name: s.name.clone(),
                kind: s.kind,
            })
            .collect();
        Ok(set.into_iter().collect())
    }

    /// Exactly the spans starting in the window, each service's own keys
    /// and values included (the reference for the per-service part too).
    async fn tag_catalog(&self, from_ns: u64, to_ns: u64) -> Result<TagCatalog> {
        let mut cat = TagCatalog::default();
        for s in self.spans.read().iter() {
            if (from_ns..=to_ns).contains(&s.start_ns) {
                cat.add_span(s);
            }
        }
        Ok(cat)
    }

    /// Every call whose child starts in the window, copies counted once.
    async fn dependencies(&self, from_ns: u64, to_ns: u64) -> Result<Graph> {
        let mut g = Graph::default();
        for (_, mut spans) in by_trace(&self.spans.read()) {
            dedup_spans(&mut spans);
            g.add_trace(&spans, from_ns, to_ns);
        }
        Ok(g)
    }

    async fn scan(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage> {
        // The cursor is the position in insertion order.
        let from: usize = match after {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| crate::error::Error::InvalidArgument(format!("bad cursor {c:?}")))?,
        };
        let all = self.spans.read();
        let mut spans = Vec::new();
        let mut pos = from;
        while pos < all.len() && spans.len() < page_size.max(1) {
            if q.matches(&all[pos]) {
                spans.push(all[pos].clone());
            }
            pos += 1;
        }
        Ok(ScanPage {
            spans,
            next: (pos < all.len()).then(|| pos.to_string()),
        })
    }
}
