//! trace id → rows. The active segment keeps a hash map; a sealed segment
//! keeps a sorted table (ids, row offsets, rows, per-trace time summary)
//! searched by binary search, so lookup cost depends on the segment size
//! (bounded by `storage.segment_max_spans`), never on the store size.

use std::collections::HashMap;

use super::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::model::{Span, TraceId};

/// One trace's rows in the active segment, with its time summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    pub rows: Vec<u32>,
    pub min_start: u64,
    pub max_end: u64,
}

impl TraceEntry {
    pub fn add(&mut self, row: u32, s: &Span) {
        self.rows.push(row);
        self.min_start = self.min_start.min(s.start_ns);
        self.max_end = self.max_end.max(s.end_ns);
    }
}

/// Sorted trace table of a sealed segment (CSR layout).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceTable {
    ids: Vec<TraceId>,
    /// `rows[offsets[i]..offsets[i+1]]` are the rows of `ids[i]`.
    offsets: Vec<u32>,
    rows: Vec<u32>,
    min_start: Vec<u64>,
    max_end: Vec<u64>,
}

impl TraceTable {
    pub fn from_map(map: &HashMap<TraceId, TraceEntry>) -> TraceTable {
        let mut entries: Vec<(&TraceId, &TraceEntry)> = map.iter().collect();
        entries.sort_unstable_by_key(|(id, _)| **id);
        let mut t = TraceTable::default();
        t.offsets.push(0);
        for (id, e) in entries {
            t.ids.push(*id);
            t.rows.extend_from_slice(&e.rows);
            t.offsets.push(t.rows.len() as u32);
            t.min_start.push(e.min_start);
            t.max_end.push(e.max_end);
        }
        t
    }

    pub fn ids(&self) -> std::slice::Iter<'_, TraceId> {
        self.ids.iter()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn rows(&self, id: &TraceId) -> &[u32] {
        let Ok(i) = self.ids.binary_search(id) else {
            return &[];
        };
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        self.rows.get(a..b).unwrap_or(&[])
    }

    /// The `i`-th trace in id order: its id, rows and latest end.
    pub fn at(&self, i: usize) -> (TraceId, &[u32], u64) {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        (
            self.ids[i],
            self.rows.get(a..b).unwrap_or(&[]),
            self.max_end[i],
        )
    }

    /// Trace positions (for [`Self::at`]) by latest end, latest first: no
    /// span of a trace starts after its end, so a walk in this order can
    /// stop once the traces left cannot beat what it found.
    pub fn by_latest_end(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.ids.len() as u32).collect();
        order.sort_unstable_by_key(|&i| std::cmp::Reverse(self.max_end[i as usize]));
        order
    }

    /// (min start, max end) of the trace's spans in this segment.
    pub fn bounds(&self, id: &TraceId) -> Option<(u64, u64)> {
        let i = self.ids.binary_search(id).ok()?;
        Some((self.min_start[i], self.max_end[i]))
    }

    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.ids.len() as u32);
        for id in &self.ids {
            w.raw(&id.0);
        }
        for o in &self.offsets {
            w.u32(*o);
        }
        for (a, b) in self.min_start.iter().zip(&self.max_end) {
            w.u64(*a);
            w.u64(*b);
        }
        w.u32(self.rows.len() as u32);
        for r in &self.rows {
            w.u32(*r);
        }
    }

    /// Decodes and checks the table is consistent (sorted ids, monotonic
    /// offsets, rows below `nrows`), so lookups can index without checks.
    pub fn decode(r: &mut Reader, nrows: u32) -> Result<TraceTable> {
        let bad = |w: &str| Error::Corrupt(format!("index: trace table {w}"));
        let n = r.count(16 + 4 + 16)?;
        let mut t = TraceTable::default();
        for _ in 0..n {
            t.ids
                .push(TraceId::from_slice(r.raw(16)?).ok_or_else(|| bad("id"))?);
        }
        for _ in 0..=n {
            t.offsets.push(r.u32()?);
        }
        for _ in 0..n {
            t.min_start.push(r.u64()?);
            t.max_end.push(r.u64()?);
        }
        let m = r.count(4)?;
        for _ in 0..m {
            let row = r.u32()?;
            if row >= nrows {
                return Err(bad("row out of range"));
            }
            t.rows.push(row);
        }
        if t.ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("ids not sorted"));
        }
        if t.offsets.first() != Some(&0)
            || t.offsets.last().map(|&o| o as usize) != Some(m)
            || t.offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad("offsets inconsistent"));
        }
        Ok(t)
    }
}
