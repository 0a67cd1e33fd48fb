//! Roaring-bitmap indexes over the rows of a segment: trace id → rows,
//! postings for service, span name, kind, status and the configured
//! attribute keys, a trace-id membership filter, and time summaries. The
//! active segment grows an [`IndexBuilder`]; sealing freezes it into a
//! [`SegmentIndex`] persisted beside the segment (see docs/STORAGE.md).
//! Since index format 2 it also holds the segment's tag catalog and the
//! dependency edges counted while it was active ([`catalog`]).

pub mod bloom;
pub mod catalog;
pub mod codec;
pub mod postings;
pub mod traces;

pub use bloom::Bloom;
pub use catalog::EdgeBuckets;
pub use postings::{Plan, Postings};
pub use traces::{TraceEntry, TraceTable};

use std::collections::HashMap;

use crate::error::Result;
use crate::model::{Span, TagCatalog, TraceId};

/// Time bounds of a segment (span start times and the latest end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub min_start: u64,
    pub max_start: u64,
    pub max_end: u64,
}

impl TimeRange {
    pub const EMPTY: TimeRange = TimeRange {
        min_start: u64::MAX,
        max_start: 0,
        max_end: 0,
    };

    fn add(&mut self, s: &Span) {
        self.min_start = self.min_start.min(s.start_ns);
        self.max_start = self.max_start.max(s.start_ns);
        self.max_end = self.max_end.max(s.end_ns);
    }

    /// Whether a span starting in `[from, to]` can be in this segment.
    pub fn overlaps(&self, from: Option<u64>, to: Option<u64>) -> bool {
        from.is_none_or(|f| self.max_start >= f) && to.is_none_or(|t| self.min_start <= t)
    }
}

/// The index of the active segment, grown row by row.
pub struct IndexBuilder {
    pub rows: u32,
    pub time: TimeRange,
    pub traces: HashMap<TraceId, TraceEntry>,
    pub postings: Postings,
    /// Attribute dictionary of the rows (services: see `postings.ops`).
    pub catalog: TagCatalog,
    /// Edges resolved while this segment was active (the store's edge
    /// tracker adds them; a child's segment need not be this one).
    pub edges: EdgeBuckets,
    catalog_writer: catalog::CatalogWriter,
}

impl IndexBuilder {
    pub fn new(attribute_keys: &[String]) -> IndexBuilder {
        IndexBuilder {
            rows: 0,
            time: TimeRange::EMPTY,
            traces: HashMap::new(),
            postings: Postings::new(attribute_keys),
            catalog: TagCatalog::default(),
            edges: EdgeBuckets::default(),
            catalog_writer: Default::default(),
        }
    }

    /// Indexes `span` as the next row.
    pub fn add(&mut self, span: &Span) {
        let row = self.rows;
        self.rows += 1;
        self.time.add(span);
        self.traces
            .entry(span.trace_id)
            .or_insert_with(|| TraceEntry {
                rows: Vec::new(),
                min_start: u64::MAX,
                max_end: 0,
            })
            .add(row, span);
        self.postings.add(row, span);
        catalog::add_span_seen(&mut self.catalog, span, &mut self.catalog_writer);
    }

    pub fn trace_rows(&self, id: &TraceId) -> &[u32] {
        self.traces
            .get(id)
            .map(|e| e.rows.as_slice())
            .unwrap_or(&[])
    }

    /// Freezes into the persistent form.
    pub fn finish(&self) -> SegmentIndex {
        let traces = TraceTable::from_map(&self.traces);
        let bloom = Bloom::from_ids(traces.ids());
        SegmentIndex {
            rows: self.rows,
            time: self.time,
            traces,
            bloom,
            postings: self.postings.clone(),
            catalog: self.catalog.clone(),
            edges: self.edges.clone(),
        }
    }
}

/// The persisted index of a sealed segment.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentIndex {
    pub rows: u32,
    pub time: TimeRange,
    pub traces: TraceTable,
    pub bloom: Bloom,
    pub postings: Postings,
    pub catalog: TagCatalog,
    pub edges: EdgeBuckets,
}

/// The index format version [`SegmentIndex::encode`] writes.
pub const INDEX_VERSION: u32 = 3;

impl SegmentIndex {
    /// Rows of trace `id` (Bloom filter first: most segments answer "no"
    /// without touching the table).
    pub fn trace_rows(&self, id: &TraceId) -> &[u32] {
        if !self.bloom.may_contain(id) {
            return &[];
        }
        self.traces.rows(id)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_version(INDEX_VERSION)
    }

    /// Encodes as format `version` (1: without catalog and edges; 2:
    /// without the catalog's per-service part; tests write old files
    /// with it).
    pub fn encode_version(&self, version: u32) -> Vec<u8> {
        let mut w = codec::Writer::default();
        w.u32(self.rows);
        w.u64(self.time.min_start);
        w.u64(self.time.max_start);
        w.u64(self.time.max_end);
        self.traces.encode(&mut w);
        self.bloom.encode(&mut w);
        self.postings.encode(&mut w);
        if version >= 2 {
            catalog::encode_catalog(&mut w, &self.catalog, version >= 3);
            self.edges.encode(&mut w);
        }
        w.into_inner()
    }

    /// Decodes the current format.
    pub fn decode(buf: &[u8]) -> Result<SegmentIndex> {
        Self::decode_version(buf, INDEX_VERSION)
    }

    /// Decodes format `version` (the index file footer's); a version 1
    /// index has an empty catalog and no edges, a version 2 one no
    /// per-service catalog (marked missing).
    pub fn decode_version(buf: &[u8], version: u32) -> Result<SegmentIndex> {
        let mut r = codec::Reader::new(buf);
        let rows = r.u32()?;
        let time = TimeRange {
            min_start: r.u64()?,
            max_start: r.u64()?,
            max_end: r.u64()?,
        };
        let traces = TraceTable::decode(&mut r, rows)?;
        let bloom = Bloom::decode(&mut r)?;
        let postings = Postings::decode(&mut r, rows)?;
        let (catalog, edges) = if version >= 2 {
            (
                catalog::decode_catalog(&mut r, version >= 3)?,
                EdgeBuckets::decode(&mut r)?,
            )
        } else {
            (catalog::format_1_catalog(), EdgeBuckets::default())
        };
        r.finish()?;
        Ok(SegmentIndex {
            rows,
            time,
            traces,
            bloom,
            postings,
            catalog,
            edges,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::store::testutil::span;
    use proptest::prelude::*;

    fn keys() -> Vec<String> {
        vec!["http.status_code".into(), "user_id".into(), "error".into()]
    }

    fn build(spans: &[Span]) -> IndexBuilder {
        let mut b = IndexBuilder::new(&keys());
        for s in spans {
            b.add(s);
        }
        b
    }

    proptest! {
        #[test]
        fn codec_round_trips(traces in proptest::collection::vec((0u64..50, 0u64..40), 0..200)) {
            let spans: Vec<Span> = traces.iter().map(|(t, i)| span(*t, *i, if t % 3 == 0 { "a" } else { "b" }, "op")).collect();
            let b = build(&spans);
            let idx = b.finish();
            let back = SegmentIndex::decode(&idx.encode()).unwrap();
            prop_assert_eq!(&back, &idx);
            for s in &spans {
                prop_assert_eq!(back.trace_rows(&s.trace_id), b.trace_rows(&s.trace_id));
            }
        }

        #[test]
        fn version_1_images_decode_without_catalog(n in 0u64..60) {
            let mut spans: Vec<Span> = (0..n).map(|i| span(i % 5, i, "svc", "op")).collect();
            for s in spans.iter_mut() {
                s.attributes = vec![KeyValue::new("user_id", AttrValue::Str(format!("u{}", s.start_ns % 4)))];
            }
            let mut b = build(&spans);
            b.edges.add(1, "a", "b", false);
            let idx = b.finish();
            let old = SegmentIndex::decode_version(&idx.encode_version(1), 1).unwrap();
            prop_assert!(old.catalog.resource.is_empty() && old.catalog.span.is_empty());
            prop_assert!(old.catalog.by_service.union().is_empty() && old.edges.is_empty());
            prop_assert!(!old.catalog.per_service_complete(), "format 1 kept no per-service data");
            prop_assert_eq!(idx.catalog.per_service_complete(), true);
            prop_assert_eq!(&old.postings, &idx.postings);
            prop_assert!(SegmentIndex::decode(&idx.encode_version(1)).is_err(), "v1 bytes are not v2");
            prop_assert_eq!(!idx.catalog.span.is_empty(), n > 0);
        }

        #[test]
        fn codec_rejects_truncation(cut in 0usize..1000) {
            let spans: Vec<Span> = (0..30).map(|i| span(i % 7, i, "svc", "op")).collect();
            let bytes = build(&spans).finish().encode();
            let cut = cut % bytes.len();
            prop_assert!(SegmentIndex::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn plan_narrows_and_is_a_superset_of_matches() {
        let spans: Vec<Span> = (0..60)
            .map(|i| span(i % 9, i, if i % 2 == 0 { "a" } else { "b" }, "op"))
            .collect();
        let b = build(&spans);
        let queries = vec![
            SearchQuery {
                service: Some("a".into()),
                ..Default::default()
            },
            SearchQuery {
                service: Some("zzz".into()),
                ..Default::default()
            },
            SearchQuery {
                tags: vec![("http.status_code".into(), "500".into())],
                ..Default::default()
            },
            SearchQuery {
                tags: vec![("error".into(), "true".into())],
                ..Default::default()
            },
            SearchQuery {
                tags: vec![("error".into(), "false".into())],
                ..Default::default()
            },
            SearchQuery {
                tags: vec![("span.kind".into(), "server".into())],
                ..Default::default()
            },
            SearchQuery {
                tags: vec![("otel.status_code".into(), "ERROR".into())],
                ..Default::default()
            },
            SearchQuery {
                tags: vec![("service.name".into(), "b".into())],
                ..Default::default()
            },
            SearchQuery {
                service: Some("b".into()),
                span_kind: Some(SpanKind::Client),
                tags: vec![("user_id".into(), "u1".into())],
                ..Default::default()
            },
        ];
        for q in queries {
            let plan = b.postings.plan(&q);
            for (row, s) in spans.iter().enumerate() {
                let cand = plan.rows.as_ref().is_none_or(|r| r.contains(row as u32));
                if q.matches(s) {
                    assert!(cand, "{q:?} row {row} matches but is not a candidate");
                }
                if plan.exact && cand {
                    assert!(q.matches(s), "{q:?} exact plan admitted row {row}");
                }
            }
        }
    }
}
