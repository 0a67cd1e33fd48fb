//! The backlog's on-disk format: segment files of framed, checksummed
//! records, and the atomically replaced checkpoint file.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub(super) const SEGMENT_MAGIC: &[u8; 8] = b"STRESBL1";
pub(super) const CHECKPOINT_MAGIC: &[u8; 8] = b"STRESCP1";
pub(super) const HEADER: u64 = SEGMENT_MAGIC.len() as u64;
pub(super) const RECORD_HEADER: u64 = 16;
/// No single record (one span document) may be larger than this.
pub const MAX_RECORD_BYTES: usize = 64 << 20;
/// A new segment is started once the active one is this large.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

pub(super) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

pub(super) fn lock_exclusive(f: &File, dir: &Path) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `f` keeps open for
    // the duration of the call; it touches no Rust-managed memory.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Unavailable(format!(
            "backlog {} is in use by another writer",
            dir.display()
        )));
    }
    Ok(())
}

pub(super) fn crc(append_ns: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&append_ns.to_le_bytes());
    h.update(payload);
    h.finalize()
}

pub(super) fn create_segment(dir: &Path, base: u64) -> Result<File> {
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, base))?;
    f.write_all(SEGMENT_MAGIC)?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(f)
}

/// Reads one record header at the reader's position: (len, crc, append_ns).
pub(super) fn read_header(r: &mut impl Read) -> std::io::Result<(u32, u32, u64)> {
    let mut h = [0u8; RECORD_HEADER as usize];
    r.read_exact(&mut h)?;
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let ns = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    Ok((word(0), word(4), ns))
}

/// Walks the records of a segment from `pos`, validating each; returns the
/// position after the last valid record and how many records it passed.
pub(super) fn scan_segment(path: &Path, pos: u64, len: u64, verify: bool) -> Result<(u64, u64)> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    r.seek(SeekFrom::Start(pos))?;
    let (mut at, mut n) = (pos, 0u64);
    let mut buf = Vec::new();
    while at + RECORD_HEADER <= len {
        let Ok((rlen, rcrc, ns)) = read_header(&mut r) else {
            break;
        };
        let rlen = u64::from(rlen);
        if rlen as usize > MAX_RECORD_BYTES || at + RECORD_HEADER + rlen > len {
            break;
        }
        if verify {
            buf.resize(rlen as usize, 0);
            if r.read_exact(&mut buf).is_err() || crc(ns, &buf) != rcrc {
                break;
            }
        } else {
            r.seek_relative(rlen as i64)?;
        }
        at += RECORD_HEADER + rlen;
        n += 1;
    }
    Ok((at, n))
}

pub(super) fn read_checkpoint(dir: &Path) -> Option<u64> {
    let b = fs::read(dir.join("checkpoint")).ok()?;
    if b.len() != 20 || &b[..8] != CHECKPOINT_MAGIC {
        return None;
    }
    let off = u64::from_le_bytes(b[8..16].try_into().ok()?);
    (crc32fast::hash(&b[..16]) == u32::from_le_bytes(b[16..20].try_into().ok()?)).then_some(off)
}

pub(super) fn write_checkpoint(dir: &Path, off: u64) -> Result<()> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(CHECKPOINT_MAGIC);
    b.extend_from_slice(&off.to_le_bytes());
    b.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
    let tmp = dir.join("checkpoint.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&b)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join("checkpoint"))?;
    sync_dir(dir)
}
