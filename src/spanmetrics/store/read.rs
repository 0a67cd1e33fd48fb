//! [`MetricsReader`] over the store: each age is answered from the
//! resolution kept for it (the visible files), merged into `step_ns`.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use super::agg::{assemble, CacheKey, FileAgg};
use super::codec::{decode_blocks, BLOCK_HEADER_LEN, HEADER_LEN};
use super::files::FileMeta;
use super::visit::{visit_blocks, with_record_ref};
use super::{point, MetricsStore, NS};
use crate::error::{Error, Result};
use crate::model::SpanKind;
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
        let want = |s: &str| q.service.as_deref().is_none_or(|w| w == s);
        let mut kinds = q.kinds.clone();
        kinds.sort_unstable();
        kinds.dedup();
        let kind_ok = |k: SpanKind| kinds.is_empty() || kinds.binary_search(&k).is_ok();
        let mut parts: Vec<(Arc<FileAgg>, u64)> = Vec::new();
        for f in files.iter() {
            if !f.overlaps(start / NS, q.end_ns.div_ceil(NS)) {
                continue;
            }
            let key = CacheKey {
                path: f.path.clone(),
                service: q.service.clone(),
                kinds: kinds.clone(),
                step_ns: step,
            };
            let Some(agg) = self.file_agg(f, &key, &want, &kind_ok)? else {
                return Ok(None);
            };
            // A file's slots answer exactly when no record in it falls
            // outside the range's end or the retention (the slots from
            // `start` on are whole: `start` is a multiple of the step).
            if agg.min_w >= retention_start && agg.max_w < q.end_ns {
                parts.push((agg, start));
                continue;
            }
            let Some(bytes) = read_file(&f.path)? else {
                return Ok(None);
            };
            let accept = |w: u64, k: SpanKind| {
                w >= start && w < q.end_ns && w >= retention_start && kind_ok(k)
            };
            let agg = build_whole(&bytes, step, &want, &accept);
            parts.push((Arc::new(agg), 0));
        }
        let live: HashSet<&Path> = files.iter().map(|f| f.path.as_path()).collect();
        self.cache.retain_files(&live);
        Ok(Some(assemble(&parts)))
    }

    /// The file's records for `key`: from the cache (a raw file only if it
    /// still starts with what was read, reading on from there), else read.
    /// `None`: the file is gone (a merge replaced it; read again).
    fn file_agg(
        &self,
        f: &FileMeta,
        key: &CacheKey,
        want: &dyn Fn(&str) -> bool,
        kind_ok: &dyn Fn(SpanKind) -> bool,
    ) -> Result<Option<Arc<FileAgg>>> {
        let cached = self.cache.get(key);
        if f.merged {
            // Written whole under a name (generation) never reused.
            if let Some(a) = cached {
                return Ok(Some(a));
            }
        }
        let accept = |_: u64, k: SpanKind| kind_ok(k);
        let mut file = match File::open(&f.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata()?.len() as usize;
        if let Some(a) = cached {
            if let (Some((off, hdr)), true) = (a.last_block, a.consumed <= len) {
                let mut now = [0u8; BLOCK_HEADER_LEN];
                file.seek(SeekFrom::Start(off as u64))?;
                if file.read_exact(&mut now).is_ok() && now == hdr {
                    if a.consumed == len {
                        return Ok(Some(a));
                    }
                    let mut tail = Vec::with_capacity(len - a.consumed);
                    file.seek(SeekFrom::Start(a.consumed as u64))?;
                    file.read_to_end(&mut tail)?;
                    if let Some(agg) = build(&tail, a.consumed, (*a).clone(), want, &accept) {
                        let agg = Arc::new(agg);
                        self.cache.put(key.clone(), agg.clone());
                        return Ok(Some(agg));
                    }
                }
            }
        }
        let mut bytes = Vec::with_capacity(len);
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        let agg = Arc::new(build_whole(&bytes, key.step_ns, want, &accept));
        self.cache.put(key.clone(), agg.clone());
        Ok(Some(agg))
    }

    /// The read path before [`FileAgg`] and the cache: every record
    /// decoded whole. Kept as the reference the equivalence tests and the
    /// bench's baseline compare against; not used to serve.
    #[doc(hidden)]
    pub fn range_reference(&self, q: &RangeQuery) -> Result<Series> {
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
            let bytes = fs::read(&f.path)?;
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
        Ok(out
            .into_iter()
            .map(|(k, pts)| (k, pts.into_values().collect()))
            .collect())
    }

    /// (entries, bytes) in the read cache.
    pub fn read_cache_usage(&self) -> (usize, usize) {
        self.cache.usage()
    }
}

/// The whole file, or `None` if it is gone.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Adds the records of `blocks` (which start at a block boundary, at
/// offset `base` of the file) that `accept` (window ns, kind) into `agg`.
/// `None`: a block passed its checksum but did not parse; the caller
/// starts over with [`decoded`].
fn build(
    blocks: &[u8],
    base: usize,
    mut agg: FileAgg,
    want: &dyn Fn(&str) -> bool,
    accept: &dyn Fn(u64, SpanKind) -> bool,
) -> Option<FileAgg> {
    let walk = visit_blocks(blocks, base, want, &mut |r| {
        if accept(r.window_s.saturating_mul(NS), r.kind) {
            agg.add(r);
        }
    })
    .ok()?;
    agg.consumed = walk.valid;
    if walk.last_block.is_some() {
        agg.last_block = walk.last_block;
    }
    Some(agg)
}

/// The whole file through the whole-record decoder, which drops a block
/// that does not parse and what follows, as reads always did. Never
/// extended later (no last block): the next read starts over.
fn decoded(
    file: &[u8],
    step_ns: u64,
    want: &dyn Fn(&str) -> bool,
    accept: &dyn Fn(u64, SpanKind) -> bool,
) -> FileAgg {
    let mut agg = FileAgg::new(step_ns);
    let (blocks, valid) = decode_blocks(file, want);
    let mut scratch = Vec::new();
    for (k, p) in blocks.iter().flat_map(|b| &b.records) {
        if accept(p.start_ns, k.kind) {
            with_record_ref(k, p, &mut scratch, &mut |r| agg.add(r));
        }
    }
    agg.consumed = valid;
    agg
}

/// [`build`] over a whole file, falling back to [`decoded`].
fn build_whole(
    file: &[u8],
    step_ns: u64,
    want: &dyn Fn(&str) -> bool,
    accept: &dyn Fn(u64, SpanKind) -> bool,
) -> FileAgg {
    let from = HEADER_LEN.min(file.len());
    build(&file[from..], from, FileAgg::new(step_ns), want, accept)
        .unwrap_or_else(|| decoded(file, step_ns, want, accept))
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

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
