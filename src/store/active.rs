//! In-memory segments: the active one (taking appends) and frozen ones
//! (full, waiting for the sealer). Rows are kept decoded, with an
//! [`IndexBuilder`] grown on every append, so a span is queryable the moment
//! its batch is acknowledged. Its durability comes from the segment's WAL.

use std::time::Instant;

use parking_lot::{RwLock, RwLockReadGuard};

use super::edges::EdgeTracker;
use super::hot::shard_of;
use crate::index::IndexBuilder;
use crate::model::Span;

pub struct MemSegment {
    pub id: u64,
    inner: RwLock<MemInner>,
}

pub struct MemInner {
    pub spans: Vec<Span>,
    pub index: IndexBuilder,
    /// When the first span arrived (the age limit counts from it).
    pub first_write: Option<Instant>,
}

impl MemSegment {
    pub fn new(id: u64, attribute_keys: &[String]) -> MemSegment {
        MemSegment {
            id,
            inner: RwLock::new(MemInner {
                spans: Vec::new(),
                index: IndexBuilder::new(attribute_keys),
                first_write: None,
            }),
        }
    }

    /// Appends acknowledged batches, indexing each row. Each span also
    /// goes to the edge tracker of its trace's shard among `trackers` (a
    /// writer passes its shard's one; replay passes every shard's), and
    /// the edges it completes are counted in this segment.
    pub fn append(
        &self,
        batches: impl IntoIterator<Item = Vec<Span>>,
        trackers: &mut [EdgeTracker],
    ) -> usize {
        let mut g = self.inner.write();
        let inner = &mut *g;
        let before = inner.spans.len();
        for batch in batches {
            for s in &batch {
                inner.index.add(s);
                if !trackers.is_empty() {
                    let n = trackers.len();
                    trackers[shard_of(&s.trace_id, n)].observe(s, &mut inner.index.edges);
                }
            }
            inner.spans.extend(batch);
        }
        if inner.first_write.is_none() && inner.spans.len() > before {
            inner.first_write = Some(Instant::now());
        }
        inner.spans.len() - before
    }

    pub fn len(&self) -> usize {
        self.inner.read().spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn age_secs(&self) -> u64 {
        self.inner
            .read()
            .first_write
            .map(|t| t.elapsed().as_secs())
            .unwrap_or(0)
    }

    /// Read access to rows and index (readers and the sealer).
    pub fn read(&self) -> RwLockReadGuard<'_, MemInner> {
        self.inner.read()
    }
}
