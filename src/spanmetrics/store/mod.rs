//! The span-metrics time-series store under `<data_dir>/metrics/`.
//!
//! Appends go to one raw file per hour of the finest tier (a checksummed
//! block per flush, fsynced before `append` returns). The janitor
//! ([`MetricsStore::run_janitor`]) compacts closed hours, downsamples
//! hours to 1 min and days to 1 h after their configured ages, and
//! retires files past retention; every merge writes its output atomically
//! before deleting its inputs (see [`files`] for why a crash in between
//! counts nothing twice). Cumulative totals live in memory, rebuilt at
//! open from the files plus `retired.smt` (what retention deleted).

mod agg;
pub mod codec;
pub mod files;
mod janitor;
mod read;
mod visit;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use self::codec::{decode_blocks, encode_block, file_header, Source};
use self::files::FileMeta;
use super::config::SpanMetricsConfig;
use super::point;
use super::{Point, SeriesKey};
use crate::error::{Error, Result};

pub use janitor::JanitorReport;

const NS: u64 = 1_000_000_000;
/// Range of one file per tier, seconds.
const CHUNK_S: [u64; 3] = [3600, 3600, 86_400];
const RETIRED: &str = "retired.smt";

/// Wall time, replaceable in tests.
pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }
}

/// Ages and resolutions, in seconds.
#[derive(Clone, Debug)]
pub struct Options {
    pub resolution_s: u64,
    pub down_1m_after_s: u64,
    pub down_1h_after_s: u64,
    pub retention_s: u64,
    /// A closed hour of raw files is compacted into one file after this.
    pub compact_after_s: u64,
    /// Bound of the read cache (each file's records per read step), bytes;
    /// 0 turns it off.
    pub read_cache_bytes: usize,
}

impl Options {
    pub fn from_config(c: &SpanMetricsConfig) -> Options {
        Options {
            resolution_s: c.resolution_secs,
            down_1m_after_s: c.downsample_1m_after_hours * 3600,
            down_1h_after_s: c.downsample_1h_after_days * 86_400,
            retention_s: c.retention_days * 86_400,
            compact_after_s: 120,
            read_cache_bytes: usize::try_from(c.read_cache_mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
        }
    }

    fn resolution(&self, tier: u8) -> u64 {
        [self.resolution_s, 60, 3600][tier as usize]
    }
}

struct Appender {
    file: File,
    len: u64,
}

/// Writer-side state: the files on disk, open raw files, generations.
struct Inner {
    files: Vec<FileMeta>,
    appenders: HashMap<u64, Appender>,
    next_gen: u64,
    /// Totals of the files retention deleted, and their generations.
    retired: BTreeMap<SeriesKey, Point>,
    /// Their sources (Kafka progress must outlive the files) and gens.
    retired_src: Source,
}

/// What readers see without waiting for a write.
#[derive(Default)]
struct State {
    totals: BTreeMap<SeriesKey, Point>,
    producers: HashMap<u64, u64>,
    offsets: HashMap<u32, u64>,
}

pub struct MetricsStore {
    dir: PathBuf,
    opts: Options,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    visible: RwLock<Arc<Vec<FileMeta>>>,
    state: Mutex<State>,
    cache: agg::ReadCache,
}

impl MetricsStore {
    /// Opens (creating) `dir`: drops leftovers of interrupted merges and
    /// retirements, cuts torn tails off raw files, rebuilds the totals.
    pub fn open(dir: &Path, opts: Options, clock: Arc<dyn Clock>) -> Result<Arc<MetricsStore>> {
        fs::create_dir_all(dir)?;
        let (retired, retired_src) = read_retired(&dir.join(RETIRED))?;
        let mut all = Vec::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path)?;
                continue;
            }
            if let Some(m) = FileMeta::parse(&path) {
                if retired_src.gens.contains(&m.gen) {
                    // Retired before a crash could delete it.
                    fs::remove_file(&m.path)?;
                } else {
                    all.push(m);
                }
            }
        }
        all.sort_by_key(|f| (f.start_s, f.tier, f.gen));
        let (visible, shadowed) = files::partition(&all);
        for f in &shadowed {
            fs::remove_file(&f.path)?;
        }
        let mut state = State {
            totals: retired.clone(),
            ..State::default()
        };
        state.absorb(&[], &retired_src);
        let mut kept = Vec::new();
        for f in visible {
            let bytes = fs::read(&f.path)?;
            let header_ok = codec::check_header(&bytes).is_ok();
            let (blocks, valid) = decode_blocks(&bytes, &|_| true);
            if !header_ok || (f.merged && valid != bytes.len()) {
                // A merge output is written whole; damage means corruption:
                // set it aside, never serve it.
                tracing::error!(file = %f.path.display(), "corrupt span-metrics file quarantined");
                fs::rename(&f.path, f.path.with_extension("corrupt"))?;
                continue;
            }
            if valid < bytes.len() {
                tracing::warn!(file = %f.path.display(), valid, len = bytes.len(), "cutting a torn tail");
                let file = OpenOptions::new().write(true).open(&f.path)?;
                file.set_len(valid as u64)?;
                file.sync_all()?;
            }
            for b in &blocks {
                state.absorb(&b.records, &b.source);
            }
            kept.push(f);
        }
        let next_gen = kept
            .iter()
            .map(|f| f.gen)
            .chain(retired_src.gens.iter().copied())
            .max()
            .map_or(1, |g| g + 1);
        crate::store::format::sync_dir(dir)?;
        let cache = agg::ReadCache::new(opts.read_cache_bytes);
        let store = MetricsStore {
            dir: dir.to_path_buf(),
            opts,
            clock,
            visible: RwLock::new(Arc::new(kept.clone())),
            inner: Mutex::new(Inner {
                files: kept,
                appenders: HashMap::new(),
                next_gen,
                retired,
                retired_src,
            }),
            state: Mutex::new(state),
            cache,
        };
        Ok(Arc::new(store))
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn now_s(&self) -> u64 {
        self.clock.now_ns() / NS
    }

    /// Durably appends deltas (each point's `start_ns` is its window);
    /// the source, if any, is recorded with them in the same block.
    /// Points older than retention are dropped.
    pub fn append(&self, records: Vec<(SeriesKey, Point)>, source: &Source) -> Result<()> {
        let res = self.opts.resolution_s;
        let cutoff = self.now_s().saturating_sub(self.opts.retention_s);
        let mut by_chunk: BTreeMap<u64, Vec<(SeriesKey, Point)>> = BTreeMap::new();
        for (k, mut p) in records {
            let w = p.start_ns / NS / res * res;
            if w < cutoff || point::is_empty(&p) {
                continue;
            }
            p.start_ns = w * NS;
            by_chunk
                .entry(w / CHUNK_S[0] * CHUNK_S[0])
                .or_default()
                .push((k, p));
        }
        let has_source = !source.producers.is_empty() || !source.offsets.is_empty();
        if by_chunk.is_empty() {
            if !has_source {
                return Ok(());
            }
            // Only progress to record (a Kafka message with nothing in it).
            let now = self.now_s();
            by_chunk.insert(now / CHUNK_S[0] * CHUNK_S[0], Vec::new());
        }
        let mut inner = self.inner.lock();
        let mut written: Vec<(u64, u64)> = Vec::new();
        let last = by_chunk.len() - 1;
        let mut created = false;
        for (i, (chunk, recs)) in by_chunk.iter().enumerate() {
            let empty = Source::default();
            let src = if i == last { source } else { &empty };
            let block = encode_block(src, recs);
            match inner.append_block(&self.dir, res, *chunk, &block, &mut created) {
                Ok(prev) => written.push((*chunk, prev)),
                Err(e) => {
                    // All or nothing: a retried delivery must not find half.
                    inner.roll_back(&written);
                    return Err(e);
                }
            }
        }
        if created {
            self.publish(&inner);
        }
        drop(inner);
        let mut st = self.state.lock();
        for recs in by_chunk.values() {
            st.absorb(recs, &Source::default());
        }
        st.absorb(&[], source);
        Ok(())
    }

    /// The highest sequence number stored from a Kafka producer.
    pub fn producer_seq(&self, producer: u64) -> Option<u64> {
        self.state.lock().producers.get(&producer).copied()
    }

    /// The next offset to consume per partition of the metrics topic.
    pub fn offsets(&self) -> Vec<(u32, u64)> {
        let mut v: Vec<_> = self
            .state
            .lock()
            .offsets
            .iter()
            .map(|(a, b)| (*a, *b))
            .collect();
        v.sort_unstable();
        v
    }

    /// Closes the open raw files (they are reopened, as new files, on
    /// the next append).
    pub fn close_appenders(&self) {
        self.inner.lock().appenders.clear();
    }

    fn publish(&self, inner: &Inner) {
        let (vis, _) = files::partition(&inner.files);
        *self.visible.write() = Arc::new(vis);
    }
}

impl State {
    fn absorb(&mut self, records: &[(SeriesKey, Point)], source: &Source) {
        for (k, p) in records {
            match self.totals.get_mut(k) {
                Some(t) => point::merge(t, p),
                None => {
                    let mut t = p.clone();
                    t.start_ns = 0;
                    self.totals.insert(k.clone(), t);
                }
            }
        }
        for &(id, seq) in &source.producers {
            let e = self.producers.entry(id).or_insert(seq);
            *e = (*e).max(seq);
        }
        for &(part, off) in &source.offsets {
            let e = self.offsets.entry(part).or_insert(off);
            *e = (*e).max(off);
        }
    }
}

impl Inner {
    fn take_gen(&mut self) -> u64 {
        let g = self.next_gen;
        self.next_gen += 1;
        g
    }

    /// Appends a block to the raw file of `chunk` (created if none is
    /// open); returns the file's length before it.
    fn append_block(
        &mut self,
        dir: &Path,
        res: u64,
        chunk: u64,
        block: &[u8],
        created: &mut bool,
    ) -> Result<u64> {
        if !self.appenders.contains_key(&chunk) {
            let gen = self.take_gen();
            let meta = FileMeta::new(dir, 0, chunk, chunk + CHUNK_S[0], gen, false);
            let mut file = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&meta.path)?;
            file.write_all(&file_header(res as u32))?;
            file.sync_all()?;
            crate::store::format::sync_dir(dir)?;
            self.files.push(meta);
            *created = true;
            let len = codec::HEADER_LEN as u64;
            self.appenders.insert(chunk, Appender { file, len });
        }
        let a = self.appenders.get_mut(&chunk).expect("inserted above");
        let prev = a.len;
        let res = a.file.write_all(block).and_then(|_| a.file.sync_data());
        match res {
            Ok(()) => {
                a.len += block.len() as u64;
                Ok(prev)
            }
            Err(e) => {
                // Cut what may have reached the file, and never append
                // after a torn block again: a new file takes the next one.
                let _ = a.file.set_len(prev).and_then(|_| a.file.sync_data());
                self.appenders.remove(&chunk);
                Err(Error::from(e))
            }
        }
    }

    fn roll_back(&mut self, written: &[(u64, u64)]) {
        for (chunk, prev) in written {
            if let Some(a) = self.appenders.get_mut(chunk) {
                if a.file
                    .set_len(*prev)
                    .and_then(|_| a.file.sync_data())
                    .is_ok()
                {
                    a.len = *prev;
                } else {
                    self.appenders.remove(chunk);
                }
            }
        }
    }
}

/// `retired.smt`: one block; its records are per-series totals (window 0)
/// and its source's `gens` the files they came from.
fn read_retired(path: &Path) -> Result<(BTreeMap<SeriesKey, Point>, Source)> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e.into()),
    };
    codec::check_header(&bytes)?;
    let (blocks, valid) = decode_blocks(&bytes, &|_| true);
    if valid != bytes.len() || blocks.len() != 1 {
        return Err(Error::Corrupt(format!("{}: damaged", path.display())));
    }
    let b = blocks.into_iter().next().expect("one block");
    Ok((b.records.into_iter().collect(), b.source))
}

/// Writes a whole file (header + one block) atomically.
fn write_whole(path: &Path, resolution_s: u32, block: &[u8]) -> Result<()> {
    crate::store::format::replace_file(path, &[&file_header(resolution_s), block])
}

#[cfg(test)]
mod tests;
