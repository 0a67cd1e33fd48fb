//! The durable queue between `EsWriterHandle::write` and `_bulk`: an
//! append-only log of framed, checksummed records in segment files, and a
//! checkpoint (the offset of the first record not yet indexed or
//! dead-lettered) replaced atomically. Appends are fsynced before `write`
//! returns, with group commit: concurrent appends write under the lock and
//! share one fsync outside it, and readers see only fsynced records; the
//! checkpoint only moves forward once a batch is settled, so
//! a crash replays at most one batch (harmless: document ids are
//! idempotent). The log is bounded by a byte budget: past it, appends fail
//! with `Overloaded` and the caller retries.
//!
//! Segment file `<base offset, 20 digits>.seg`: the 8-byte magic
//! `STRESBL1`, then records `[len u32][crc32 u32][append_ns u64][payload]`
//! (little-endian; the CRC covers append_ns and payload). A record's offset
//! is its segment's base plus its position in the file.

mod format;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use format::*;
pub use format::{DEFAULT_SEGMENT_BYTES, MAX_RECORD_BYTES};

/// One queued bulk entry.
#[derive(Debug)]
pub struct Record {
    /// Offset just past this record: the checkpoint once it is settled.
    pub end: u64,
    pub append_ns: u64,
    pub payload: Vec<u8>,
}

/// Records read from the checkpoint on.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Where the next read starts (past a corrupt region, if one was hit).
    pub end: u64,
    /// Reading stopped at a count or byte limit (more records follow).
    pub full: bool,
    /// A record failed its checksum or framing; the rest of its segment is
    /// skipped (`end` points past it) and reported by the caller.
    pub corrupt: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub records: u64,
    pub bytes: u64,
}

pub struct Backlog {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    /// Log offset up to which everything is fsynced. Taken after `inner`
    /// is released, never while holding it.
    durable: Mutex<u64>,
    /// Holds the directory's exclusive lock for the backlog's lifetime.
    _lock: File,
}

struct Inner {
    /// base offset → length in bytes, oldest first; the last is active.
    segments: BTreeMap<u64, u64>,
    active: File,
    checkpoint: u64,
    pending_records: u64,
    closed: bool,
}

impl Inner {
    fn end(&self) -> u64 {
        self.segments
            .iter()
            .next_back()
            .map(|(b, l)| b + l)
            .unwrap_or(0)
    }
}

impl Backlog {
    /// Opens (or creates) the backlog in `dir`: takes the directory lock,
    /// cuts a torn tail left by a crash, and resumes from the checkpoint.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> Result<Backlog> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        lock_exclusive(&lock, dir)?;
        let mut segments = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let Some(stem) = name.strip_suffix(".seg") else {
                continue;
            };
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(base) = stem.parse::<u64>() {
                    segments.insert(base, fs::metadata(segment_path(dir, base))?.len());
                }
            }
        }
        // The last segment may end in a torn record (never acknowledged),
        // or lack its header if a crash hit while it was created.
        if let Some((&base, &len)) = segments.iter().next_back() {
            let path = segment_path(dir, base);
            let mut magic = [0u8; 8];
            let ok = len >= HEADER
                && File::open(&path)?.read_exact(&mut magic).is_ok()
                && &magic == SEGMENT_MAGIC;
            if !ok {
                fs::remove_file(&path)?;
                segments.remove(&base);
            } else {
                let (valid, _) = scan_segment(&path, HEADER, len, true)?;
                if valid < len {
                    // Kept aside, not silently dropped: an append that was
                    // torn by a crash was never acknowledged, but bytes
                    // that fail for another reason deserve a look.
                    let aside = dir.join(format!("torn-{base:020}-{valid:020}.bin"));
                    let mut f = File::open(&path)?;
                    f.seek(SeekFrom::Start(valid))?;
                    std::io::copy(&mut f.take(len - valid), &mut File::create(&aside)?)?;
                    tracing::warn!(segment = %path.display(), from = len, to = valid, kept = %aside.display(), "backlog: cutting torn tail");
                    let f = OpenOptions::new().write(true).open(&path)?;
                    f.set_len(valid)?;
                    f.sync_all()?;
                    segments.insert(base, valid);
                }
            }
        }
        let first = segments.keys().next().copied();
        let saved = read_checkpoint(dir);
        if saved.is_none() && dir.join("checkpoint").exists() {
            // Replaying is safe (idempotent ids); losing data is not.
            tracing::warn!(dir = %dir.display(), "backlog: unreadable checkpoint, replaying from the oldest segment");
        }
        let mut checkpoint = saved.or(first).unwrap_or(0);
        let active = match segments.iter().next_back() {
            Some((&base, _)) => OpenOptions::new()
                .append(true)
                .open(segment_path(dir, base))?,
            None => {
                let f = create_segment(dir, checkpoint)?;
                segments.insert(checkpoint, HEADER);
                f
            }
        };
        let end = segments.iter().next_back().map(|(b, l)| b + l).unwrap_or(0);
        checkpoint = checkpoint.clamp(segments.keys().next().copied().unwrap_or(0), end);
        active.sync_data()?;
        let inner = Inner {
            segments,
            active,
            checkpoint,
            pending_records: 0,
            closed: false,
        };
        let backlog = Backlog {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: segment_bytes.max(HEADER + 1),
            inner: Mutex::new(inner),
            durable: Mutex::new(end),
            _lock: lock,
        };
        backlog.drop_settled_segments()?;
        let pending = backlog.count_pending()?;
        backlog.inner.lock().pending_records = pending;
        Ok(backlog)
    }

    /// Appends entries as one fsynced write. `Overloaded` when the budget
    /// would be exceeded; `TooLarge` when the entries could never fit.
    pub fn append(&self, entries: &[Vec<u8>], now_ns: u64) -> Result<()> {
        let mut buf = Vec::with_capacity(
            entries
                .iter()
                .map(|e| e.len() + RECORD_HEADER as usize)
                .sum(),
        );
        for e in entries {
            if e.len() > MAX_RECORD_BYTES {
                return Err(Error::TooLarge(format!(
                    "span document of {} bytes",
                    e.len()
                )));
            }
            buf.extend_from_slice(&(e.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc(now_ns, e).to_le_bytes());
            buf.extend_from_slice(&now_ns.to_le_bytes());
            buf.extend_from_slice(e);
        }
        let size = buf.len() as u64;
        if size > self.max_bytes {
            return Err(Error::TooLarge(format!(
                "{size} bytes exceed the elasticsearch backlog budget"
            )));
        }
        let mut g = self.inner.lock();
        if g.closed {
            return Err(Error::Unavailable(
                "elasticsearch writer is shut down".into(),
            ));
        }
        let end = g.end();
        if end - g.checkpoint + size > self.max_bytes {
            return Err(Error::Overloaded(format!(
                "elasticsearch backlog holds {} of {} bytes",
                end - g.checkpoint,
                self.max_bytes
            )));
        }
        let (&base, &len) = g
            .segments
            .iter()
            .next_back()
            .ok_or_else(|| Error::Internal("backlog has no segment".into()))?;
        if len > HEADER && len + size > self.segment_bytes {
            // Later group commits fsync only the active file: make the
            // full one durable before leaving it.
            g.active.sync_data()?;
            g.active = create_segment(&self.dir, end)?;
            g.segments.insert(end, HEADER);
        }
        let (&base_now, &len_now) = g.segments.iter().next_back().unwrap_or((&base, &len));
        if let Err(e) = g.active.write_all(&buf) {
            // Cut a partial write so the next append starts on a boundary.
            let _ = g.active.set_len(len_now);
            return Err(e.into());
        }
        g.segments.insert(base_now, len_now + size);
        g.pending_records += entries.len() as u64;
        let written = g.end();
        drop(g);
        self.sync_to(written)
    }

    /// Returns once the log is fsynced up to `offset`. One caller fsyncs
    /// everything written so far while the others wait for the lock and
    /// then find their records already covered.
    fn sync_to(&self, offset: u64) -> Result<()> {
        let mut durable = self.durable.lock();
        if *durable >= offset {
            return Ok(());
        }
        let (file, end) = {
            let g = self.inner.lock();
            (g.active.try_clone()?, g.end())
        };
        // Older segments were fsynced when the active one replaced them.
        file.sync_data()?;
        *durable = end;
        Ok(())
    }

    pub fn pending(&self) -> Pending {
        let g = self.inner.lock();
        Pending {
            records: g.pending_records,
            bytes: g.end() - g.checkpoint,
        }
    }

    pub fn checkpoint(&self) -> u64 {
        self.inner.lock().checkpoint
    }

    /// Refuses further appends (the writer is shutting down).
    pub fn close(&self) {
        self.inner.lock().closed = true;
    }

    /// Reads records from `from` on, at most `max_records` and (past the
    /// first record) `max_bytes` of payload.
    pub fn read(&self, from: u64, max_records: usize, max_bytes: usize) -> Result<Batch> {
        let (segments, end) = {
            let g = self.inner.lock();
            (g.segments.clone(), g.end())
        };
        // Records not yet fsynced are not handed out: the checkpoint must
        // never pass what a power loss could take back.
        let end = end.min(*self.durable.lock());
        let mut batch = Batch {
            end: from,
            ..Default::default()
        };
        let mut bytes = 0usize;
        let mut reader: Option<(u64, BufReader<File>)> = None;
        let mut off = from;
        while off < end {
            if batch.records.len() >= max_records.max(1) {
                batch.full = true;
                break;
            }
            let Some((&base, &len)) = segments.range(..=off).next_back() else {
                off = segments.keys().next().copied().unwrap_or(end);
                continue;
            };
            if off >= base + len {
                match segments.range(off + 1..).next() {
                    Some((&next, _)) => off = next,
                    None => break,
                }
                continue;
            }
            off = off.max(base + HEADER);
            if reader.as_ref().is_none_or(|(b, _)| *b != base) {
                let mut r =
                    BufReader::with_capacity(1 << 20, File::open(segment_path(&self.dir, base))?);
                r.seek(SeekFrom::Start(off - base))?;
                reader = Some((base, r));
            }
            let Some((_, r)) = reader.as_mut() else { break };
            let next_segment = segments
                .range(base + 1..)
                .next()
                .map(|(b, _)| *b)
                .unwrap_or(base + len);
            let (rlen, rcrc, ns) = match read_header(r) {
                Ok(h) => h,
                Err(e) => {
                    batch.corrupt = Some(format!("record header at offset {off}: {e}"));
                    batch.end = next_segment;
                    return Ok(batch);
                }
            };
            let rlen_u = rlen as usize;
            if rlen_u > MAX_RECORD_BYTES || off + RECORD_HEADER + rlen as u64 > base + len {
                batch.corrupt = Some(format!(
                    "record at offset {off} has impossible length {rlen}"
                ));
                batch.end = next_segment;
                return Ok(batch);
            }
            if !batch.records.is_empty() && bytes + rlen_u > max_bytes {
                batch.full = true;
                break;
            }
            let mut payload = vec![0u8; rlen_u];
            if r.read_exact(&mut payload).is_err() || crc(ns, &payload) != rcrc {
                batch.corrupt = Some(format!("record at offset {off} fails its checksum"));
                batch.end = next_segment;
                return Ok(batch);
            }
            bytes += rlen_u;
            off += RECORD_HEADER + rlen as u64;
            batch.records.push(Record {
                end: off,
                append_ns: ns,
                payload,
            });
            batch.end = off;
        }
        Ok(batch)
    }

    /// Append time of the oldest unsettled record, if any.
    pub fn head_append_ns(&self) -> Result<Option<u64>> {
        let from = self.checkpoint();
        let b = self.read(from, 1, 0)?;
        Ok(b.records.first().map(|r| r.append_ns))
    }

    /// Durably moves the checkpoint to `to` (settling `records` records)
    /// and deletes segments that are wholly behind it.
    pub fn commit(&self, to: u64, records: u64) -> Result<()> {
        write_checkpoint(&self.dir, to)?;
        {
            let mut g = self.inner.lock();
            g.checkpoint = g.checkpoint.max(to);
            g.pending_records = g.pending_records.saturating_sub(records);
            if g.checkpoint >= g.end() {
                // Records skipped in a corrupt region were never counted
                // out; an empty backlog has none, whatever the count says.
                g.pending_records = 0;
            }
        }
        self.drop_settled_segments()
    }

    fn drop_settled_segments(&self) -> Result<()> {
        let doomed: Vec<u64> = {
            let g = self.inner.lock();
            let active = g.segments.keys().next_back().copied();
            g.segments
                .iter()
                .filter(|(b, l)| *b + *l <= g.checkpoint && Some(**b) != active)
                .map(|(b, _)| *b)
                .collect()
        };
        for base in &doomed {
            fs::remove_file(segment_path(&self.dir, *base))?;
            self.inner.lock().segments.remove(base);
        }
        if !doomed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn count_pending(&self) -> Result<u64> {
        let (segments, checkpoint) = {
            let g = self.inner.lock();
            (g.segments.clone(), g.checkpoint)
        };
        let mut n = 0;
        for (&base, &len) in &segments {
            if base + len <= checkpoint {
                continue;
            }
            let from = checkpoint.saturating_sub(base).max(HEADER);
            n += scan_segment(&segment_path(&self.dir, base), from, len, false)?.1;
        }
        Ok(n)
    }
}
