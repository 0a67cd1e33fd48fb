//! The pending log: what makes a waiting span durable before its trace is
//! decided. One directory per write shard, files `<generation>.tlog`, each
//! a sequence of records `[kind: u8][len: u32 LE][crc32(len ++ payload)]
//! [payload]`:
//! - kind 1, spans: the payload is the WAL's (an OTLP `TracesData`), so a
//!   batch's pre-encoded WAL record is written as it is;
//! - kind 2, decisions: 17 bytes each, trace id and 1 = keep / 0 = drop,
//!   written after the kept spans are in the hot store's WAL.
//!
//! A generation is deleted once no waiting trace has spans in it. Replay
//! reads the generations in order and stops reading a file at its first
//! torn or corrupt record (it was being written when the process died).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::Result;
use crate::model::{Span, TraceId};
use crate::otlp::convert;
use crate::otlp::proto::trace::v1 as pt;

const SPANS: u8 = 1;
const DECISIONS: u8 = 2;
const HEADER: usize = 9;
/// A generation is closed past this size.
pub const GENERATION_BYTES: u64 = 64 << 20;

pub enum Entry {
    Spans(Vec<Span>),
    Decisions(Vec<(TraceId, bool)>),
}

pub struct PendingLog {
    dir: PathBuf,
    fsync: bool,
    generation: u64,
    file: File,
    written: u64,
    /// Records waiting for the next `sync`.
    buf: Vec<u8>,
}

fn path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}.tlog"))
}

/// Generations present in `dir`, oldest first.
pub fn generations(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        if let Some(g) = name
            .to_string_lossy()
            .strip_suffix(".tlog")
            .and_then(|s| s.parse().ok())
        {
            out.push(g);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl PendingLog {
    /// Starts a new generation after the newest in `dir`.
    pub fn create(dir: &Path, fsync: bool) -> Result<PendingLog> {
        fs::create_dir_all(dir)?;
        let generation = generations(dir)?.last().map_or(1, |g| g + 1);
        let file = new_file(dir, generation)?;
        Ok(PendingLog {
            dir: dir.to_path_buf(),
            fsync,
            generation,
            file,
            written: 0,
            buf: Vec::new(),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Queues one batch's WAL record (`[len][crc][TracesData]`).
    pub fn push_spans(&mut self, wal_record: &[u8]) {
        self.buf.push(SPANS);
        self.buf.extend_from_slice(wal_record);
    }

    pub fn push_decisions(&mut self, decisions: &[(TraceId, bool)]) {
        if decisions.is_empty() {
            return;
        }
        let mut payload = Vec::with_capacity(decisions.len() * 17);
        for (id, keep) in decisions {
            payload.extend_from_slice(&id.0);
            payload.push(u8::from(*keep));
        }
        self.buf.push(DECISIONS);
        frame(&payload, &mut self.buf);
    }

    /// Writes what was queued with one fsync, then closes the generation
    /// if it grew past [`GENERATION_BYTES`].
    pub fn sync(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        if self.fsync {
            self.file.sync_data()?;
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
        if self.written >= GENERATION_BYTES {
            self.generation += 1;
            self.file = new_file(&self.dir, self.generation)?;
            self.written = 0;
        }
        Ok(())
    }

    /// Deletes the generations before `first_needed` (never the current).
    pub fn forget_before(&mut self, first_needed: u64) -> Result<()> {
        let mut removed = false;
        for g in generations(&self.dir)? {
            if g >= first_needed.min(self.generation) {
                break;
            }
            fs::remove_file(path(&self.dir, g))?;
            removed = true;
        }
        if removed && self.fsync {
            crate::store::format::sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn new_file(dir: &Path, generation: u64) -> Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path(dir, generation))?;
    crate::store::format::sync_dir(dir)?;
    Ok(f)
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Every good record of every generation in `dir`, oldest first, each with
/// its generation.
pub fn replay(dir: &Path) -> Result<Vec<(u64, Entry)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for g in generations(dir)? {
        let data = fs::read(path(dir, g))?;
        let mut pos = 0;
        while let Some((kind, payload, next)) = record(&data, pos) {
            let entry = match kind {
                SPANS => match pt::TracesData::decode(payload) {
                    Ok(td) => Entry::Spans(convert::spans_from_proto(&td.resource_spans)),
                    Err(_) => break,
                },
                DECISIONS if payload.len() % 17 == 0 => Entry::Decisions(
                    payload
                        .chunks_exact(17)
                        .map(|c| {
                            let mut id = [0u8; 16];
                            id.copy_from_slice(&c[..16]);
                            (TraceId(id), c[16] == 1)
                        })
                        .collect(),
                ),
                _ => break,
            };
            out.push((g, entry));
            pos = next;
        }
        if pos < data.len() {
            tracing::warn!(
                generation = g,
                cut = data.len() - pos,
                "pending log: torn tail ignored"
            );
        }
    }
    Ok(out)
}

fn record(data: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let header = data.get(pos..pos.checked_add(HEADER)?)?;
    let len_bytes: [u8; 4] = header[1..5].try_into().ok()?;
    let crc: [u8; 4] = header[5..9].try_into().ok()?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 || len > crate::store::wal::MAX_RECORD {
        return None;
    }
    let end = pos.checked_add(HEADER)?.checked_add(len)?;
    let payload = data.get(pos + HEADER..end)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&len_bytes);
    h.update(payload);
    (h.finalize() == u32::from_le_bytes(crc)).then_some((header[0], payload, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::span;
    use crate::store::wal::encode_record;

    #[test]
    fn replays_spans_and_decisions_in_order_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<Span> = (0..3).map(|i| span(1, i, "s", "op")).collect();
        let mut log = PendingLog::create(dir.path(), true).unwrap();
        log.push_spans(&encode_record(&a));
        log.push_decisions(&[(a[0].trace_id, true)]);
        log.sync().unwrap();
        let g = log.generation();
        drop(log);
        // Half a record, as a crash mid-write leaves it.
        let rec = encode_record(&a);
        let mut f = OpenOptions::new()
            .append(true)
            .open(path(dir.path(), g))
            .unwrap();
        f.write_all(&[SPANS]).unwrap();
        f.write_all(&rec[..rec.len() / 2]).unwrap();
        let got = replay(dir.path()).unwrap();
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0].1, Entry::Spans(s) if *s == a));
        assert!(matches!(&got[1].1, Entry::Decisions(d) if d == &[(a[0].trace_id, true)]));
        // A new log starts a newer generation and forgets older ones.
        let mut log = PendingLog::create(dir.path(), true).unwrap();
        assert_eq!(log.generation(), g + 1);
        log.forget_before(g + 1).unwrap();
        assert_eq!(generations(dir.path()).unwrap(), vec![g + 1]);
    }
}
