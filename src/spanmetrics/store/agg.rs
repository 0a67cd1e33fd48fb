//! One file's records merged into `step` slots per series ([`FileAgg`]),
//! and the bounded cache of them ([`ReadCache`]) that lets the ten
//! requests of a Monitor view, and the views after it, skip files they
//! already read. Only the query-independent part is cached: a file's
//! records for one (service, kinds, step), before the range and retention
//! filters, which the reader applies (see read.rs for when an entry
//! answers exactly what a fresh read would).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::codec::BLOCK_HEADER_LEN;
use super::visit::RecordRef;
use super::{point, NS};
use crate::model::{SpanKind, StatusCode};
use crate::spanmetrics::{Point, SeriesKey};

/// service → operation → (kind, status, index into `FileAgg::series`).
type SeriesIndex = HashMap<String, HashMap<String, Vec<(SpanKind, StatusCode, usize)>>>;

/// One file's records for one (service, kinds, step).
#[derive(Clone, Debug)]
pub struct FileAgg {
    step_ns: u64,
    /// service → operation → (kind, status, index into `series`): looked
    /// up by the record's borrowed strings, so only a new series allocates.
    index: SeriesIndex,
    /// Points per series, sorted by slot start.
    pub series: Vec<(SeriesKey, Vec<Point>)>,
    /// Window starts (ns) of the records seen; `u64::MAX`/0 when none.
    pub min_w: u64,
    pub max_w: u64,
    /// The file's bytes read so far (the valid prefix) and its last block:
    /// what a raw file, still appended to, must still start with.
    pub consumed: usize,
    pub last_block: Option<(usize, [u8; BLOCK_HEADER_LEN])>,
}

impl FileAgg {
    pub fn new(step_ns: u64) -> FileAgg {
        FileAgg {
            step_ns: step_ns.max(1),
            index: HashMap::new(),
            series: Vec::new(),
            min_w: u64::MAX,
            max_w: 0,
            consumed: 0,
            last_block: None,
        }
    }

    /// Adds a record into its series' slot (`window_start / step * step`).
    pub fn add(&mut self, r: &RecordRef<'_>) {
        let w = r.window_s.saturating_mul(NS);
        self.min_w = self.min_w.min(w);
        self.max_w = self.max_w.max(w);
        let slot = w / self.step_ns * self.step_ns;
        let i = self.series_of(r);
        let pts = &mut self.series[i].1;
        // Records come mostly in time order: the last slot or a new one.
        let at = match pts.last() {
            None => 0,
            Some(p) if p.start_ns < slot => pts.len(),
            Some(p) if p.start_ns == slot => {
                let n = pts.len() - 1;
                add_record(&mut pts[n], r);
                return;
            }
            Some(_) => match pts.binary_search_by_key(&slot, |p| p.start_ns) {
                Ok(j) => {
                    add_record(&mut pts[j], r);
                    return;
                }
                Err(j) => j,
            },
        };
        let mut p = point::empty(slot);
        add_record(&mut p, r);
        pts.insert(at, p);
    }

    fn series_of(&mut self, r: &RecordRef<'_>) -> usize {
        if let Some(v) = self
            .index
            .get(r.service)
            .and_then(|ops| ops.get(r.operation))
        {
            if let Some(&(_, _, i)) = v.iter().find(|e| e.0 == r.kind && e.1 == r.status) {
                return i;
            }
        }
        let i = self.series.len();
        self.series.push((
            SeriesKey {
                service: r.service.to_string(),
                operation: r.operation.to_string(),
                kind: r.kind,
                status: r.status,
            },
            Vec::new(),
        ));
        self.index
            .entry(r.service.to_string())
            .or_default()
            .entry(r.operation.to_string())
            .or_default()
            .push((r.kind, r.status, i));
        i
    }

    /// Roughly what this holds in memory, for the cache's bound.
    pub fn bytes(&self) -> usize {
        let per_series = size_of::<(SeriesKey, Vec<Point>)>()
            + size_of::<(SpanKind, StatusCode, usize)>()
            + 2 * size_of::<String>()
            + 64;
        size_of::<FileAgg>()
            + self
                .series
                .iter()
                .map(|(k, pts)| {
                    per_series
                        + 2 * (k.service.len() + k.operation.len())
                        + pts.capacity() * size_of::<Point>()
                })
                .sum::<usize>()
    }
}

/// `point::merge` of one stored record, without building its `Point`.
fn add_record(p: &mut Point, r: &RecordRef<'_>) {
    p.calls += r.calls;
    p.errors += r.errors;
    p.duration_sum_ns = p.duration_sum_ns.wrapping_add(r.duration_sum_ns);
    let mut m = r.bucket_mask & ((1 << p.buckets.len()) - 1);
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        p.buckets[i] += r.buckets[i];
        m &= m - 1;
    }
    for &(i, e) in r.exemplars {
        point::keep_newer(&mut p.exemplars[i], e);
    }
}

/// The answer from each file's slots (from its `from_slot` on), files in
/// the reader's order. Each series' points are copied once, into a vector
/// of the right size; slots several files share (late data beside a merged
/// hour, a slot wider than a file) are merged in file order, so exemplar
/// ties resolve as a record-by-record merge would: the first of the newest.
pub fn assemble(parts: &[(Arc<FileAgg>, u64)]) -> Vec<(SeriesKey, Vec<Point>)> {
    let mut by_key: BTreeMap<&SeriesKey, Vec<&[Point]>> = BTreeMap::new();
    for (agg, from_slot) in parts {
        for (k, pts) in &agg.series {
            let pts = &pts[pts.partition_point(|p| p.start_ns < *from_slot)..];
            if !pts.is_empty() {
                by_key.entry(k).or_default().push(pts);
            }
        }
    }
    by_key
        .into_iter()
        .map(|(k, slices)| {
            let mut v: Vec<Point> = Vec::with_capacity(slices.iter().map(|s| s.len()).sum());
            let mut sorted = true;
            for p in slices.into_iter().flatten() {
                match v.last_mut() {
                    Some(l) if l.start_ns == p.start_ns => point::merge(l, p),
                    Some(l) => {
                        sorted &= l.start_ns < p.start_ns;
                        v.push(p.clone());
                    }
                    None => v.push(p.clone()),
                }
            }
            if !sorted {
                // Stable: points of one slot stay in file order.
                v.sort_by_key(|p| p.start_ns);
                let mut merged: Vec<Point> = Vec::with_capacity(v.len());
                for p in v {
                    match merged.last_mut() {
                        Some(l) if l.start_ns == p.start_ns => point::merge(l, &p),
                        _ => merged.push(p),
                    }
                }
                v = merged;
            }
            (k.clone(), v)
        })
        .collect()
}

/// Which file's records, for which reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub path: PathBuf,
    pub service: Option<String>,
    /// Sorted, deduplicated; empty: every kind.
    pub kinds: Vec<SpanKind>,
    pub step_ns: u64,
}

struct Entry {
    agg: Arc<FileAgg>,
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<CacheKey, Entry>,
    bytes: usize,
    tick: u64,
}

/// Least-recently-used [`FileAgg`]s within a byte bound (0: off). One
/// entry may take at most a quarter of the bound, so a fine-step read of
/// a big file does not flush everything else.
pub struct ReadCache {
    bound: usize,
    entries: Mutex<Entries>,
}

impl ReadCache {
    pub fn new(bound: usize) -> ReadCache {
        ReadCache {
            bound,
            entries: Mutex::new(Entries::default()),
        }
    }

    pub fn get(&self, k: &CacheKey) -> Option<Arc<FileAgg>> {
        let mut e = self.entries.lock();
        e.tick += 1;
        let tick = e.tick;
        let hit = e.map.get_mut(k)?;
        hit.used = tick;
        Some(hit.agg.clone())
    }

    pub fn put(&self, k: CacheKey, agg: Arc<FileAgg>) {
        let bytes = agg.bytes();
        if bytes > self.bound / 4 {
            return;
        }
        let mut e = self.entries.lock();
        e.tick += 1;
        let used = e.tick;
        if let Some(old) = e.map.insert(k, Entry { agg, bytes, used }) {
            e.bytes -= old.bytes;
        }
        e.bytes += bytes;
        while e.bytes > self.bound {
            let Some(oldest) = e
                .map
                .iter()
                .min_by_key(|(_, v)| v.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            let gone = e.map.remove(&oldest).expect("just found");
            e.bytes -= gone.bytes;
        }
    }

    /// Drops the entries of files no longer visible (merged or retired).
    pub fn retain_files(&self, live: &HashSet<&Path>) {
        let mut e = self.entries.lock();
        if e.map.keys().all(|k| live.contains(k.path.as_path())) {
            return;
        }
        let mut freed = 0;
        e.map.retain(|k, v| {
            let keep = live.contains(k.path.as_path());
            if !keep {
                freed += v.bytes;
            }
            keep
        });
        e.bytes -= freed;
    }

    /// (entries, bytes) held.
    pub fn usage(&self) -> (usize, usize) {
        let e = self.entries.lock();
        (e.map.len(), e.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg_of(ops: usize, points: usize) -> Arc<FileAgg> {
        let mut a = FileAgg::new(10 * NS);
        for op in 0..ops {
            for w in 0..points {
                let name = format!("op{op}");
                a.add(&RecordRef {
                    window_s: w as u64 * 10,
                    service: "s",
                    operation: &name,
                    kind: SpanKind::Server,
                    status: StatusCode::Unset,
                    calls: 1,
                    errors: 0,
                    duration_sum_ns: 5,
                    bucket_mask: 1,
                    buckets: [1; crate::spanmetrics::BUCKETS],
                    exemplars: &[],
                });
            }
        }
        Arc::new(a)
    }

    fn key(path: &str) -> CacheKey {
        CacheKey {
            path: path.into(),
            service: None,
            kinds: vec![],
            step_ns: 10 * NS,
        }
    }

    #[test]
    fn records_out_of_order_land_in_sorted_slots_and_add_up() {
        let mut a = FileAgg::new(20 * NS);
        for w in [40u64, 0, 50, 10, 40] {
            a.add(&RecordRef {
                window_s: w,
                service: "s",
                operation: "o",
                kind: SpanKind::Server,
                status: StatusCode::Error,
                calls: w + 1,
                errors: 1,
                duration_sum_ns: 0,
                bucket_mask: 0b100,
                buckets: [w; crate::spanmetrics::BUCKETS],
                exemplars: &[],
            });
        }
        let pts = &a.series[0].1;
        let got: Vec<_> = pts.iter().map(|p| (p.start_ns / NS, p.calls)).collect();
        assert_eq!(got, vec![(0, 12), (40, 133)]);
        assert_eq!(pts[1].buckets[2], 130);
        assert_eq!(pts[1].buckets[0], 0, "unset bits are not added");
        assert_eq!((a.min_w, a.max_w), (0, 50 * NS));
    }

    #[test]
    fn the_cache_stays_within_its_bound_and_evicts_the_least_recent() {
        let one = agg_of(10, 10);
        let size = one.bytes();
        let c = ReadCache::new(size * 4);
        c.put(key("a"), one.clone());
        c.put(key("b"), one.clone());
        c.put(key("c"), one.clone());
        c.put(key("d"), one.clone());
        assert_eq!(c.usage(), (4, 4 * size));
        assert!(c.get(&key("a")).is_some());
        c.put(key("e"), one.clone());
        assert!(c.usage().1 <= size * 4);
        assert!(c.get(&key("b")).is_none(), "least recently used went first");
        assert!(c.get(&key("a")).is_some());
        // Too big for a quarter of the bound: not kept.
        c.put(key("big"), agg_of(40, 10));
        assert!(c.get(&key("big")).is_none());
        // Entries of files that went away are dropped.
        let live: HashSet<&Path> = [Path::new("a")].into_iter().collect();
        c.retain_files(&live);
        assert_eq!(c.usage(), (1, size));
        let off = ReadCache::new(0);
        off.put(key("a"), one);
        assert_eq!(off.usage(), (0, 0));
    }
}
