//! The on-disk envelope every immutable hot-store file shares: a payload
//! followed by a fixed 32-byte footer (magic, file kind, format version,
//! payload length, CRC32 of the payload, CRC32 of the footer itself), and
//! the durable-write helpers (fsync file, atomic replace, fsync directory).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

pub const MAGIC: &[u8; 8] = b"STRANDFT";
pub const FOOTER_LEN: usize = 32;
/// Format version of segment data and manifest files; bumped on
/// incompatible change.
pub const FORMAT_VERSION: u32 = 1;
/// Format version of segment index files written now (the index's own).
/// Version 2 appended the tag catalog and dependency edges, version 3 the
/// catalog's per-service part; older files are still read (version 1 as
/// an empty catalog and no edges, version 2 with the per-service part
/// marked missing).
pub const INDEX_FORMAT_VERSION: u32 = crate::index::INDEX_VERSION;

/// What a file holds; a file of the wrong kind is as corrupt as a torn one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FileKind {
    SegmentData = 1,
    SegmentIndex = 2,
    Manifest = 3,
}

/// The version a file of `kind` is written with.
pub fn current_version(kind: FileKind) -> u32 {
    match kind {
        FileKind::SegmentIndex => INDEX_FORMAT_VERSION,
        _ => FORMAT_VERSION,
    }
}

/// Builds the footer for `payload`.
pub fn footer(kind: FileKind, payload: &[u8]) -> [u8; FOOTER_LEN] {
    footer_versioned(kind, current_version(kind), payload)
}

/// Builds a footer naming `version` (tests write older versions with it).
pub fn footer_versioned(kind: FileKind, version: u32, payload: &[u8]) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[0..8].copy_from_slice(MAGIC);
    f[8..12].copy_from_slice(&(kind as u32).to_le_bytes());
    f[12..16].copy_from_slice(&version.to_le_bytes());
    f[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    f[24..28].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let fcrc = crc32fast::hash(&f[0..28]);
    f[28..32].copy_from_slice(&fcrc.to_le_bytes());
    f
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

/// Verifies the footer and checksum of a whole file image and returns the
/// payload. Any mismatch (length, magic, kind, version, either CRC) is
/// `Error::Corrupt`, naming what failed.
pub fn verify(kind: FileKind, file: &[u8]) -> Result<&[u8]> {
    verify_versioned(kind, file).map(|(p, _)| p)
}

/// [`verify`], also returning the file's format version: any from 1 to
/// the kind's current one.
pub fn verify_versioned(kind: FileKind, file: &[u8]) -> Result<(&[u8], u32)> {
    let corrupt = |what: &str| Error::Corrupt(format!("{kind:?} file: {what}"));
    if file.len() < FOOTER_LEN {
        return Err(corrupt("shorter than its footer"));
    }
    let (payload, f) = file.split_at(file.len() - FOOTER_LEN);
    if &f[0..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    if le_u32(&f[28..32]) != crc32fast::hash(&f[0..28]) {
        return Err(corrupt("footer checksum mismatch"));
    }
    if le_u32(&f[8..12]) != kind as u32 {
        return Err(corrupt("wrong file kind"));
    }
    let version = le_u32(&f[12..16]);
    if version == 0 || version > current_version(kind) {
        return Err(corrupt(&format!("unsupported format version {version}")));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&f[16..24]);
    if u64::from_le_bytes(len) != payload.len() as u64 {
        return Err(corrupt("payload length mismatch"));
    }
    if le_u32(&f[24..28]) != crc32fast::hash(payload) {
        return Err(corrupt("payload checksum mismatch"));
    }
    Ok((payload, version))
}

/// Writes `payload` + footer to `path` atomically (see [`replace_file`]).
pub fn write_atomic(path: &Path, kind: FileKind, payload: &[u8]) -> Result<()> {
    replace_file(path, &[payload, &footer(kind, payload)])
}

/// Replaces `path` with the concatenation of `parts`: temp file, fsync,
/// rename, fsync of the directory. Readers see the old file or the new one.
pub fn replace_file(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        for part in parts {
            f.write_all(part)?;
        }
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Streams a payload to a file while checksumming it, then appends the
/// footer; `finish` fsyncs. Used for segment data, which is too large to
/// assemble in memory first.
pub struct ChecksumWriter<W: Write> {
    inner: W,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> ChecksumWriter<W> {
    pub fn new(inner: W) -> Self {
        ChecksumWriter {
            inner,
            hasher: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    /// Appends the footer and returns the inner writer and the file length.
    pub fn finish(mut self, kind: FileKind) -> std::io::Result<(W, u64)> {
        let mut f = [0u8; FOOTER_LEN];
        f[0..8].copy_from_slice(MAGIC);
        f[8..12].copy_from_slice(&(kind as u32).to_le_bytes());
        f[12..16].copy_from_slice(&current_version(kind).to_le_bytes());
        f[16..24].copy_from_slice(&self.len.to_le_bytes());
        f[24..28].copy_from_slice(&self.hasher.finalize().to_le_bytes());
        let fcrc = crc32fast::hash(&f[0..28]);
        f[28..32].copy_from_slice(&fcrc.to_le_bytes());
        self.inner.write_all(&f)?;
        Ok((self.inner, self.len + FOOTER_LEN as u64))
    }
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// fsync of a directory, so creations, renames and deletions in it survive
/// a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trips_and_detects_every_flipped_byte() {
        let payload = b"hello segment".to_vec();
        let mut file = payload.clone();
        file.extend_from_slice(&footer(FileKind::SegmentIndex, &payload));
        assert_eq!(verify(FileKind::SegmentIndex, &file).unwrap(), &payload[..]);
        assert!(
            verify(FileKind::SegmentData, &file).is_err(),
            "kind is checked"
        );
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x40;
            assert!(
                verify(FileKind::SegmentIndex, &bad).is_err(),
                "flip at {i} undetected"
            );
        }
        assert!(verify(FileKind::SegmentIndex, &file[..file.len() - 1]).is_err());
    }

    #[test]
    fn older_versions_verify_newer_ones_do_not() {
        let payload = b"idx".to_vec();
        for (version, ok) in [
            (0, false),
            (1, true),
            (INDEX_FORMAT_VERSION, true),
            (9, false),
        ] {
            let mut file = payload.clone();
            file.extend_from_slice(&footer_versioned(FileKind::SegmentIndex, version, &payload));
            let got = verify_versioned(FileKind::SegmentIndex, &file)
                .map(|(_, v)| v)
                .ok();
            assert_eq!(got, ok.then_some(version), "version {version}");
        }
        let mut data = payload.clone();
        data.extend_from_slice(&footer_versioned(FileKind::SegmentData, 2, &payload));
        assert!(
            verify(FileKind::SegmentData, &data).is_err(),
            "data files stay at 1"
        );
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("MANIFEST");
        write_atomic(&p, FileKind::Manifest, b"one").unwrap();
        write_atomic(&p, FileKind::Manifest, b"two").unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(verify(FileKind::Manifest, &bytes).unwrap(), b"two");
        assert!(!p.with_extension("tmp").exists());
    }
}
