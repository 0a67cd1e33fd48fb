//! The hot store: per write shard one active in-memory segment with its
//! WAL, frozen segments waiting to be sealed, and sealed mmapped segments
//! listed in the manifest. This file holds the lifecycle (commit, rotation,
//! sealing, retention); `recover.rs` holds open + recovery and `read.rs`
//! the query side, which sees every shard's segments as one store.
//!
//! Shards (`storage.writer_shards`) let several writer threads append and
//! fsync at once: a span goes to the shard of its trace id, so a trace's
//! spans share a shard. Segment ids are unique across shards.
//!
//! Threading: `commit`/`rotate`/`reset_wal` of a shard are called only by
//! that shard's `HotWriter` thread, `seal`/`enforce_retention` only by the
//! `SegmentSealer`; readers run anywhere and take short read locks.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::active::MemSegment;
use super::edges::EdgeTracker;
use super::format;
use super::manifest::{self, Manifest, SegmentEntry};
use super::segment::{self, SealedSegment};
use super::wal::{self, WalWriter};
use crate::config::StorageConfig;
use crate::error::Result;
use crate::metrics::Gauge;
use crate::model::Span;

/// Frozen segments per shard allowed to wait for the sealer before writes
/// are refused with `Overloaded` (bounds memory if sealing falls behind).
pub const MAX_FROZEN: usize = 4;

/// One batch on its way in: the spans and their pre-encoded WAL record.
pub struct Batch {
    pub record: Vec<u8>,
    pub spans: Vec<Span>,
}

impl Batch {
    pub fn new(spans: Vec<Span>) -> Batch {
        Batch {
            record: wal::encode_record(&spans),
            spans,
        }
    }

    /// Batches whose WAL records each stay well under `wal::MAX_RECORD`
    /// (replay rejects larger frames), halving oversized inputs.
    pub fn split_for_wal(spans: Vec<Span>) -> Vec<Batch> {
        let batch = Batch::new(spans);
        if batch.record.len() <= wal::MAX_RECORD / 2 || batch.spans.len() < 2 {
            return vec![batch];
        }
        let mut first = batch.spans;
        let second = first.split_off(first.len() / 2);
        let mut out = Batch::split_for_wal(first);
        out.extend(Batch::split_for_wal(second));
        out
    }
}

pub(crate) struct State {
    /// One per shard.
    pub active: Vec<Arc<MemSegment>>,
    pub frozen: Vec<Arc<MemSegment>>,
    pub sealed: BTreeMap<u64, Arc<SealedSegment>>,
}

/// What a seal produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealInfo {
    pub id: u64,
    pub rows: u32,
    pub bytes: u64,
}

pub struct HotStore {
    pub(crate) dir: PathBuf,
    pub(crate) storage: StorageConfig,
    pub(crate) attribute_keys: Vec<String>,
    pub(crate) state: RwLock<State>,
    /// One per shard, matching `State::active`.
    pub(crate) wal: Vec<Mutex<WalWriter>>,
    pub(crate) manifest_lock: Mutex<()>,
    /// One lock per segment being sealed: sealer threads seal different
    /// segments at once, never the same one twice.
    pub(crate) seal_locks: Mutex<BTreeMap<u64, Arc<Mutex<()>>>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) commits: AtomicU64,
    /// One per shard: recent spans and waiting children, for edges.
    pub(crate) edges: Vec<Mutex<EdgeTracker>>,
    /// Catalog and graph of sealed segments, cached (see read_catalog).
    pub(crate) catalog_cache: super::read_catalog::CatalogCache,
}

/// The shard of a trace id: a hash of its low bytes (the random part of
/// W3C ids), so traces spread evenly.
pub fn shard_of(trace_id: &crate::model::TraceId, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let low = u64::from_le_bytes(trace_id.0[8..16].try_into().unwrap_or_default());
    (low.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % shards
}

pub(crate) fn seg_dir(dir: &Path) -> PathBuf {
    dir.join("segments")
}
pub(crate) fn wal_dir(dir: &Path) -> PathBuf {
    dir.join("wal")
}
pub(crate) fn wal_path(dir: &Path, id: u64) -> PathBuf {
    wal_dir(dir).join(format!("{id:020}.wal"))
}

impl HotStore {
    pub(crate) fn write_manifest(&self, sealed: &BTreeMap<u64, Arc<SealedSegment>>) -> Result<()> {
        let m = Manifest {
            segments: sealed
                .values()
                .map(|s| SegmentEntry {
                    id: s.id,
                    rows: s.index.rows,
                    min_start_ns: s.index.time.min_start,
                    max_start_ns: s.index.time.max_start,
                    max_end_ns: s.index.time.max_end,
                    bytes: s.bytes,
                })
                .collect(),
        };
        manifest::store(&self.dir, &m)?;
        // Sealed size per span is what capacity planning divides by.
        let gauge = |name, help| Gauge::new(name, help, &[]);
        gauge("strand_store_sealed_spans", "spans in sealed segments")
            .set(m.segments.iter().map(|s| u64::from(s.rows)).sum());
        gauge("strand_store_sealed_bytes", "bytes of sealed segment files")
            .set(m.segments.iter().map(|s| s.bytes).sum());
        Ok(())
    }

    /// Write shards.
    pub fn shards(&self) -> usize {
        self.wal.len()
    }

    /// The shard a trace's spans are written to.
    pub fn shard_of(&self, trace_id: &crate::model::TraceId) -> usize {
        shard_of(trace_id, self.shards())
    }

    /// Appends batches to `shard`'s WAL with one write and one fsync, then
    /// makes them visible. On error nothing was made visible (and nothing
    /// may be acknowledged); the WAL must then be reset with
    /// [`Self::reset_wal`].
    pub fn commit(&self, shard: usize, batches: Vec<Batch>) -> Result<usize> {
        let mut wal = self.wal[shard].lock();
        let records: Vec<&[u8]> = batches.iter().map(|b| b.record.as_slice()).collect();
        wal.append(&records)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        let active = self.state.read().active[shard].clone();
        // Only this shard's writer thread takes this lock.
        let mut tracker = self.edges[shard].lock();
        Ok(active.append(
            batches.into_iter().map(|b| b.spans),
            std::slice::from_mut(&mut *tracker),
        ))
    }

    /// Group commits (WAL appends, each with one fsync) since open.
    pub fn wal_commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Whether `shard`'s active segment reached its size or age limit.
    pub fn should_rotate(&self, shard: usize) -> bool {
        let active = self.state.read().active[shard].clone();
        let n = active.len();
        n > 0
            && (n >= self.storage.segment_max_spans
                || active.age_secs() >= self.storage.segment_max_age_secs)
    }

    fn max_frozen(&self) -> usize {
        MAX_FROZEN * self.shards()
    }

    /// Whether `shard`'s active segment is so far over its limit (because
    /// sealing fell behind) that writes must be refused.
    pub fn is_backlogged(&self, shard: usize) -> bool {
        let st = self.state.read();
        st.frozen.len() >= self.max_frozen()
            && st.active[shard].len() >= self.storage.segment_max_spans
    }

    /// Freezes `shard`'s active segment and starts a new one with a new
    /// WAL. Returns the frozen segment (for the sealer), or `None` if the
    /// active one is empty or too many frozen segments already wait.
    pub fn rotate(&self, shard: usize) -> Result<Option<Arc<MemSegment>>> {
        let mut wal = self.wal[shard].lock();
        {
            let st = self.state.read();
            if st.active[shard].is_empty() || st.frozen.len() >= self.max_frozen() {
                return Ok(None);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let new_wal = WalWriter::create(&wal_path(&self.dir, id), self.storage.fsync)?;
        let new_active = Arc::new(MemSegment::new(id, &self.attribute_keys));
        let old = {
            let mut st = self.state.write();
            let old = std::mem::replace(&mut st.active[shard], new_active);
            st.frozen.push(old.clone());
            old
        };
        *wal = new_wal;
        Ok(Some(old))
    }

    /// After a failed WAL write the file's state is unknown, so it is never
    /// appended to again: a non-empty active segment is frozen (its
    /// acknowledged rows are in the WAL up to the failed record, whose torn
    /// tail replay would cut), an empty one is replaced.
    pub fn reset_wal(&self, shard: usize) -> Result<Option<Arc<MemSegment>>> {
        let mut wal = self.wal[shard].lock();
        let (empty, old_id) = {
            let st = self.state.read();
            (st.active[shard].is_empty(), st.active[shard].id)
        };
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let new_wal = WalWriter::create(&wal_path(&self.dir, id), self.storage.fsync)?;
        let new_active = Arc::new(MemSegment::new(id, &self.attribute_keys));
        let old = {
            let mut st = self.state.write();
            let old = std::mem::replace(&mut st.active[shard], new_active);
            if !empty {
                st.frozen.push(old.clone());
            }
            old
        };
        *wal = new_wal;
        if empty {
            fs::remove_file(wal_path(&self.dir, old_id))?;
            return Ok(None);
        }
        Ok(Some(old))
    }

    /// Test hook: the next `n` WAL appends of every shard fail like a
    /// broken disk.
    #[doc(hidden)]
    pub fn inject_wal_faults(&self, n: u32) {
        for w in &self.wal {
            w.lock().inject_faults(n);
        }
    }

    pub fn frozen(&self) -> Vec<Arc<MemSegment>> {
        self.state.read().frozen.clone()
    }

    /// Writes `seg` as a sealed segment, lists it in the manifest, swaps
    /// it in for the frozen copy and deletes its WAL, in that order, so a
    /// crash between any two steps loses nothing. Idempotent: a segment no
    /// longer frozen was sealed already; a second call for a segment being
    /// sealed waits for the first. Blocking; runs on a sealer thread.
    pub fn seal(&self, seg: &Arc<MemSegment>) -> Result<Option<SealInfo>> {
        let lock = self.seal_locks.lock().entry(seg.id).or_default().clone();
        let held = lock.lock();
        let r = self.seal_locked(seg);
        drop(held);
        // Clones are taken under the map lock: a count of two (the map's
        // and ours) means nobody else waits for this segment.
        let mut locks = self.seal_locks.lock();
        if locks
            .get(&seg.id)
            .is_some_and(|l| Arc::ptr_eq(l, &lock) && Arc::strong_count(&lock) == 2)
        {
            locks.remove(&seg.id);
        }
        r
    }

    fn seal_locked(&self, seg: &Arc<MemSegment>) -> Result<Option<SealInfo>> {
        if !self.state.read().frozen.iter().any(|f| f.id == seg.id) {
            return Ok(None);
        }
        let sdir = seg_dir(&self.dir);
        {
            let g = seg.read();
            segment::write(&sdir, seg.id, &g.spans, &g.index.finish())?;
        }
        // Serve what is on disk, verified, rather than trusting memory.
        let sealed = Arc::new(SealedSegment::open(&sdir, seg.id)?);
        let info = SealInfo {
            id: seg.id,
            rows: sealed.index.rows,
            bytes: sealed.bytes,
        };
        {
            let _g = self.manifest_lock.lock();
            let mut next = self.state.read().sealed.clone();
            next.insert(seg.id, sealed.clone());
            self.write_manifest(&next)?;
            let mut st = self.state.write();
            st.sealed.insert(seg.id, sealed);
            st.frozen.retain(|f| f.id != seg.id);
        }
        fs::remove_file(wal_path(&self.dir, seg.id))?;
        format::sync_dir(&wal_dir(&self.dir))?;
        Ok(Some(info))
    }

    /// Deletes sealed segments whose newest span started before the
    /// retention window, then the oldest while over the disk budget:
    /// manifest first, files after. Returns the deleted ids.
    pub fn enforce_retention(&self, now_ns: u64) -> Result<Vec<u64>> {
        let _g = self.manifest_lock.lock();
        let sealed = self.state.read().sealed.clone();
        let cutoff = now_ns.saturating_sub(
            self.storage
                .retention_hours
                .saturating_mul(3600 * 1_000_000_000),
        );
        let mut drop: Vec<u64> = sealed
            .values()
            .filter(|s| s.index.time.max_start < cutoff)
            .map(|s| s.id)
            .collect();
        let mut total: u64 = sealed
            .values()
            .filter(|s| !drop.contains(&s.id))
            .map(|s| s.bytes)
            .sum();
        for s in sealed.values() {
            if total <= self.storage.max_disk_bytes {
                break;
            }
            if !drop.contains(&s.id) {
                drop.push(s.id);
                total -= s.bytes;
            }
        }
        if drop.is_empty() {
            return Ok(drop);
        }
        let mut next = sealed;
        next.retain(|id, _| !drop.contains(id));
        self.write_manifest(&next)?;
        self.state.write().sealed.retain(|id, _| !drop.contains(id));
        let sdir = seg_dir(&self.dir);
        for &id in &drop {
            for p in [
                segment::data_path(&sdir, id),
                segment::index_path(&sdir, id),
            ] {
                if let Err(e) = fs::remove_file(&p) {
                    tracing::warn!(file = %p.display(), error = %e, "could not delete expired segment file");
                }
            }
        }
        format::sync_dir(&sdir)?;
        drop.sort_unstable();
        Ok(drop)
    }

    /// Ids of the sealed segments, oldest first.
    pub fn sealed_ids(&self) -> Vec<u64> {
        self.state.read().sealed.keys().copied().collect()
    }

    /// Spans in the active and frozen segments (not yet sealed).
    pub fn unsealed_spans(&self) -> usize {
        let st = self.state.read();
        st.active.iter().map(|a| a.len()).sum::<usize>()
            + st.frozen.iter().map(|f| f.len()).sum::<usize>()
    }
}
