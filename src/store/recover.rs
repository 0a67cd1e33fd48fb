//! Opening the hot store: manifest, segment verification (corrupt files are
//! quarantined, never served), cleanup of interrupted seals, WAL replay.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::active::MemSegment;
use super::edges::EdgeTracker;
use super::format;
use super::hot::{seg_dir, wal_dir, wal_path, HotStore, State};
use super::manifest;
use super::segment::{self, SealedSegment};
use super::wal::{self, WalWriter};
use crate::config::{IndexConfig, StorageConfig};
use crate::error::{Error, Result};
use crate::metrics::{ActorStats, Counter};

/// Ids of files in `dir` named `<id>.<ext>`.
fn list_ids(dir: &Path, ext: &str) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_suffix(ext)
            .and_then(|s| s.strip_suffix('.'))
            .and_then(|s| s.parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Logs, counts and records a corrupt file, then moves it to quarantine/
/// so it is never served (and kept for inspection).
fn quarantine(dir: &Path, files: &[PathBuf], err: &Error) {
    tracing::error!(files = ?files, error = %err, "corrupt hot-store file quarantined");
    Counter::new(
        "strand_store_corrupt_segments_total",
        "corrupt segment or manifest files detected and quarantined",
        &[],
    )
    .inc();
    ActorStats::get("hot_store").record_error(err);
    let q = dir.join("quarantine");
    for f in files {
        if let Some(name) = f.file_name() {
            let to = q.join(format!(
                "{}.{}",
                name.to_string_lossy(),
                crate::model::now_ns()
            ));
            if let Err(e) = fs::rename(f, &to) {
                tracing::error!(file = %f.display(), error = %e, "could not move corrupt file to quarantine");
            }
        }
    }
}

impl HotStore {
    /// Opens (or creates) the store in `storage.dir`: loads the manifest,
    /// verifies every segment (corrupt ones are quarantined, never served),
    /// removes leftovers of interrupted seals, and replays the WALs.
    pub fn open(storage: &StorageConfig, index: &IndexConfig) -> Result<Arc<HotStore>> {
        let dir = storage.dir.clone();
        for d in [
            dir.clone(),
            seg_dir(&dir),
            wal_dir(&dir),
            dir.join("quarantine"),
        ] {
            fs::create_dir_all(&d)?;
        }
        let sdir = seg_dir(&dir);
        // Segments that could be adopted without a manifest: those whose
        // WAL is gone (a segment with its WAL still present was never
        // confirmed; the WAL is replayed instead).
        let on_disk: Vec<u64> = list_ids(&sdir, "arrow")?
            .into_iter()
            .filter(|id| !wal_path(&dir, *id).exists())
            .collect();
        let (listed, mut rewrite) = match manifest::load(&dir) {
            Ok(Some(m)) => (m.segments.iter().map(|s| s.id).collect::<Vec<_>>(), false),
            // No manifest but segment files: never delete data on a guess;
            // adopt every segment that verifies.
            Ok(None) if !on_disk.is_empty() => {
                tracing::warn!(
                    "hot store has segments but no manifest; adopting verified segments"
                );
                (on_disk.clone(), true)
            }
            Ok(None) => (Vec::new(), false),
            Err(e @ Error::Corrupt(_)) => {
                // Without a trustworthy list, adopt every segment that
                // verifies on its own; WAL replay covers the rest.
                quarantine(&dir, &[dir.join(manifest::FILE)], &e);
                (on_disk.clone(), true)
            }
            Err(e) => return Err(e),
        };
        let mut sealed = BTreeMap::new();
        for &id in &listed {
            match SealedSegment::open(&sdir, id) {
                Ok(s) => {
                    sealed.insert(id, Arc::new(s));
                }
                Err(e) => {
                    let files = [
                        segment::data_path(&sdir, id),
                        segment::index_path(&sdir, id),
                    ];
                    let files: Vec<PathBuf> = files.into_iter().filter(|p| p.exists()).collect();
                    quarantine(&dir, &files, &e);
                    rewrite = true;
                }
            }
        }
        // Unlisted files: a seal interrupted before its manifest update (its
        // WAL is still here and is replayed), or temp files.
        for e in fs::read_dir(&sdir)? {
            let p = e?.path();
            let id = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.split('.').next())
                .and_then(|s| s.parse::<u64>().ok());
            if id.is_none_or(|id| !sealed.contains_key(&id)) {
                fs::remove_file(&p)?;
            }
        }
        let mut max_id = sealed.keys().next_back().copied().unwrap_or(0);
        let wal_ids = list_ids(&wal_dir(&dir), "wal")?;
        let keys = index.attribute_keys.clone();
        let shards = storage.shard_count();
        let mut frozen = Vec::new();
        // The newest WAL of each shard takes appends again; which shard a
        // WAL had does not matter (reads see every segment alike).
        let mut actives = Vec::new();
        // Replay feeds each span to its shard's tracker, rebuilding the
        // edges of unsealed segments and the cache the writers go on with.
        let mut trackers: Vec<EdgeTracker> = (0..shards).map(|_| EdgeTracker::default()).collect();
        let reopen_from = wal_ids.len().saturating_sub(shards);
        for (i, &id) in wal_ids.iter().enumerate() {
            let p = wal_path(&dir, id);
            if sealed.contains_key(&id) {
                // Sealed and listed, but the WAL delete did not happen.
                fs::remove_file(&p)?;
                continue;
            }
            let r = wal::replay(&p)?;
            if r.truncated_bytes > 0 {
                tracing::warn!(wal = %p.display(), bytes = r.truncated_bytes, "truncated torn WAL tail (never acknowledged)");
            }
            max_id = max_id.max(id);
            let seg = MemSegment::new(id, &keys);
            seg.append([r.spans], &mut trackers);
            if i >= reopen_from {
                actives.push((Arc::new(seg), WalWriter::reopen(&p, storage.fsync)?));
            } else if seg.is_empty() {
                fs::remove_file(&p)?;
            } else {
                frozen.push(Arc::new(seg));
            }
        }
        while actives.len() < shards {
            max_id += 1;
            actives.push((
                Arc::new(MemSegment::new(max_id, &keys)),
                WalWriter::create(&wal_path(&dir, max_id), storage.fsync)?,
            ));
        }
        let (active, wal): (Vec<_>, Vec<_>) = actives
            .into_iter()
            .map(|(seg, w)| (seg, Mutex::new(w)))
            .unzip();
        format::sync_dir(&wal_dir(&dir))?;
        format::sync_dir(&sdir)?;
        let store = HotStore {
            dir,
            storage: storage.clone(),
            attribute_keys: keys,
            state: RwLock::new(State {
                active,
                frozen,
                sealed,
            }),
            wal,
            manifest_lock: Mutex::new(()),
            seal_locks: Mutex::default(),
            next_id: AtomicU64::new(max_id + 1),
            commits: AtomicU64::new(0),
            edges: trackers.into_iter().map(Mutex::new).collect(),
            catalog_cache: Default::default(),
        };
        if rewrite {
            let _g = store.manifest_lock.lock();
            store.write_manifest(&store.state.read().sealed)?;
        }
        Ok(Arc::new(store))
    }
}

/// Takes the exclusive lock on a hot-store directory for this process
/// (held while the returned file lives). A second `strand` on the same
/// directory fails at start instead of corrupting the first one's WAL.
pub fn lock_data_dir(dir: &Path) -> Result<fs::File> {
    use std::os::unix::io::AsRawFd;
    fs::create_dir_all(dir)?;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    // SAFETY: flock only reads the descriptor, which `f` keeps open for the
    // duration of the call; it touches no Rust-managed memory.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Unavailable(format!(
            "hot store {} is in use by another strand process",
            dir.display()
        )));
    }
    Ok(f)
}
