//! [`MetricsReader`] over the store: each age is answered from the
//! resolution kept for it (the visible files), merged into `step_ns`.

use std::collections::BTreeMap;
use std::fs;

use super::codec::decode_blocks;
use super::{point, MetricsStore, NS};
use crate::error::{Error, Result};
use crate::spanmetrics::{MetricsReader, Point, RangeQuery, SeriesKey};

/// A merge deleting a file under a reader makes it start over this often.
const READ_ATTEMPTS: usize = 4;

pub type Series = Vec<(SeriesKey, Vec<Point>)>;

impl MetricsStore {
    fn range_once(&self, q: &RangeQuery) -> Result<Option<Series>> {
        let step = q.step_ns.max(self.min_step_ns());
        let start = q.start_ns / step * step;
        let retention_start = self.now_s().saturating_sub(self.opts.retention_s) * NS;
        let files = self.visible.read().clone();
        let mut out: BTreeMap<SeriesKey, BTreeMap<u64, Point>> = BTreeMap::new();
        let want = |s: &str| q.service.as_deref().is_none_or(|w| w == s);
        for f in files.iter() {
            if !f.overlaps(start / NS, q.end_ns.div_ceil(NS)) {
                continue;
            }
            let bytes = match fs::read(&f.path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let (blocks, _) = decode_blocks(&bytes, &want);
            for (k, p) in blocks.into_iter().flat_map(|b| b.records) {
                let w = p.start_ns;
                if w < start || w >= q.end_ns || w < retention_start {
                    continue;
                }
                if !q.kinds.is_empty() && !q.kinds.contains(&k.kind) {
                    continue;
                }
                let slot = start + (w - start) / step * step;
                let series = out.entry(k).or_default();
                match series.get_mut(&slot) {
                    Some(m) => point::merge(m, &p),
                    None => {
                        let mut p = p;
                        p.start_ns = slot;
                        series.insert(slot, p);
                    }
                }
            }
        }
        Ok(Some(
            out.into_iter()
                .map(|(k, pts)| (k, pts.into_values().collect()))
                .collect(),
        ))
    }
}

impl MetricsReader for MetricsStore {
    fn range(&self, q: &RangeQuery) -> Result<Vec<(SeriesKey, Vec<Point>)>> {
        if q.end_ns <= q.start_ns {
            return Ok(Vec::new());
        }
        for _ in 0..READ_ATTEMPTS {
            if let Some(r) = self.range_once(q)? {
                return Ok(r);
            }
        }
        Err(Error::Unavailable(
            "span metrics are being compacted; retry".into(),
        ))
    }

    fn totals(&self) -> Result<Vec<(SeriesKey, Point)>> {
        let st = self.state.lock();
        Ok(st
            .totals
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect())
    }

    fn min_step_ns(&self) -> u64 {
        self.opts.resolution_s * NS
    }

    fn retention_ns(&self) -> u64 {
        self.opts.retention_s * NS
    }

    fn services(&self) -> Result<Vec<String>> {
        let st = self.state.lock();
        let mut v: Vec<String> = st.totals.keys().map(|k| k.service.clone()).collect();
        v.dedup();
        Ok(v)
    }
}
