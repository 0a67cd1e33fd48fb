//! The store's housekeeping, run by the span-metrics stage every few
//! seconds: compaction of closed hours, downsampling (finest → 1 min per
//! hour, 1 min → 1 h per day) after the configured ages, retention, and
//! deletion of shadowed files. Each merge: read the inputs, write the
//! output whole (temp, fsync, rename, fsync dir), then delete the inputs.

use std::collections::BTreeMap;
use std::fs;

use super::codec::{decode_blocks, encode_block, Source};
use super::files::{self, FileMeta};
use super::{point, write_whole, Inner, MetricsStore, CHUNK_S, RETIRED};
use crate::error::Result;
use crate::spanmetrics::{Point, SeriesKey};

/// What one run did (for logs and tests).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JanitorReport {
    pub compacted: usize,
    pub downsampled: usize,
    pub retired: usize,
}

impl MetricsStore {
    pub fn run_janitor(&self) -> Result<JanitorReport> {
        let now = self.now_s();
        let o = self.opts.clone();
        let mut inner = self.inner.lock();
        let mut report = JanitorReport::default();
        // Finest tier, per hour: downsample when old enough, else compact
        // once closed (many flush blocks → one point per series and window).
        let (vis, _) = files::partition(&inner.files);
        let hours: Vec<u64> = dedup(vis.iter().filter(|f| f.tier == 0).map(|f| f.start_s));
        for h in hours {
            let end = h + CHUNK_S[0];
            if end + o.down_1m_after_s <= now {
                self.merge(&mut inner, 1, h, end)?;
                report.downsampled += 1;
            } else if end + o.compact_after_s <= now {
                let (vis, _) = files::partition(&inner.files);
                let inputs: Vec<&FileMeta> = vis
                    .iter()
                    .filter(|f| f.tier == 0 && f.start_s == h)
                    .collect();
                if inputs.len() > 1 || inputs.iter().any(|f| !f.merged) {
                    self.merge(&mut inner, 0, h, end)?;
                    report.compacted += 1;
                }
            }
        }
        // 1 min tier (and anything finer left), per day.
        let (vis, _) = files::partition(&inner.files);
        let days: Vec<u64> = dedup(
            vis.iter()
                .filter(|f| f.tier < 2)
                .map(|f| f.start_s / CHUNK_S[2] * CHUNK_S[2]),
        );
        for d in days {
            let end = d + CHUNK_S[2];
            if end + o.down_1h_after_s <= now {
                self.merge(&mut inner, 2, d, end)?;
                report.downsampled += 1;
            }
        }
        // Retention: whole files whose range ended long enough ago.
        let (vis, _) = files::partition(&inner.files);
        let old: Vec<FileMeta> = vis
            .into_iter()
            .filter(|f| f.end_s + o.retention_s <= now)
            .collect();
        if !old.is_empty() {
            self.retire(&mut inner, &old)?;
            report.retired = old.len();
        }
        self.drop_shadowed(&mut inner)?;
        self.publish(&inner);
        Ok(report)
    }

    /// Merges every visible file of tier ≤ `tier` inside `[start, end)`
    /// into one file of `tier`, points aligned down to its resolution.
    fn merge(&self, inner: &mut Inner, tier: u8, start: u64, end: u64) -> Result<()> {
        let (vis, _) = files::partition(&inner.files);
        let inputs: Vec<FileMeta> = vis
            .into_iter()
            .filter(|f| f.tier <= tier && f.start_s >= start && f.end_s <= end)
            .collect();
        if inputs.is_empty() {
            return Ok(());
        }
        let res = self.opts.resolution(tier);
        let mut merged: BTreeMap<(u64, SeriesKey), Point> = BTreeMap::new();
        let mut source = Source::default();
        for f in &inputs {
            if f.tier == 0 && !f.merged {
                // Close it: later deltas for this hour start a new file.
                inner.appenders.remove(&f.start_s);
            }
            let bytes = fs::read(&f.path)?;
            let (blocks, _) = decode_blocks(&bytes, &|_| true);
            for b in blocks {
                union_source(&mut source, &b.source);
                for (k, p) in b.records {
                    let w = p.start_ns / super::NS / res * res;
                    match merged.get_mut(&(w, k.clone())) {
                        Some(m) => point::merge(m, &p),
                        None => {
                            let mut p = p;
                            p.start_ns = w * super::NS;
                            merged.insert((w, k), p);
                        }
                    }
                }
            }
        }
        let records: Vec<(SeriesKey, Point)> =
            merged.into_iter().map(|((_, k), p)| (k, p)).collect();
        let gen = inner.take_gen();
        let out = FileMeta::new(&self.dir, tier, start, end, gen, true);
        write_whole(&out.path, res as u32, &encode_block(&source, &records))?;
        inner.files.push(out);
        self.drop_shadowed(inner)
    }

    /// Folds files into `retired.smt` (totals survive them), then deletes
    /// them; a crash in between deletes them at the next open.
    fn retire(&self, inner: &mut Inner, old: &[FileMeta]) -> Result<()> {
        let mut source = inner.retired_src.clone();
        for f in old {
            let bytes = fs::read(&f.path)?;
            let (blocks, _) = decode_blocks(&bytes, &|_| true);
            for b in blocks {
                union_source(&mut source, &b.source);
                for (k, p) in b.records {
                    match inner.retired.get_mut(&k) {
                        Some(t) => point::merge(t, &p),
                        None => {
                            let mut p = p;
                            p.start_ns = 0;
                            inner.retired.insert(k, p);
                        }
                    }
                }
            }
            inner.appenders.remove(&f.start_s);
        }
        // Generations below every remaining file can no longer reappear.
        let min_left = inner
            .files
            .iter()
            .filter(|f| !old.contains(f))
            .map(|f| f.gen)
            .min()
            .unwrap_or(u64::MAX);
        source.gens.retain(|&g| g >= min_left);
        source.gens.extend(old.iter().map(|f| f.gen));
        let records: Vec<(SeriesKey, Point)> = inner
            .retired
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        write_whole(&self.dir.join(RETIRED), 0, &encode_block(&source, &records))?;
        inner.retired_src = source;
        inner.files.retain(|f| !old.contains(f));
        self.publish(inner);
        for f in old {
            fs::remove_file(&f.path)?;
        }
        crate::store::format::sync_dir(&self.dir)
    }

    fn drop_shadowed(&self, inner: &mut Inner) -> Result<()> {
        let (_, shadowed) = files::partition(&inner.files);
        if shadowed.is_empty() {
            return Ok(());
        }
        inner.files.retain(|f| !shadowed.contains(f));
        // Readers stop seeing them before they go.
        self.publish(inner);
        for f in &shadowed {
            if f.tier == 0 && !f.merged {
                inner.appenders.remove(&f.start_s);
            }
            match fs::remove_file(&f.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        crate::store::format::sync_dir(&self.dir)
    }
}

fn dedup(it: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut v: Vec<u64> = it.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Keeps the highest sequence per producer and offset per partition.
fn union_source(into: &mut Source, from: &Source) {
    for &(id, seq) in &from.producers {
        match into.producers.iter_mut().find(|(i, _)| *i == id) {
            Some(e) => e.1 = e.1.max(seq),
            None => into.producers.push((id, seq)),
        }
    }
    for &(p, off) in &from.offsets {
        match into.offsets.iter_mut().find(|(i, _)| *i == p) {
            Some(e) => e.1 = e.1.max(off),
            None => into.offsets.push((p, off)),
        }
    }
}
