//! The manifest: the list of live sealed segments. It is the single source
//! of truth for which segment files are served; it is replaced atomically
//! (temp file, fsync, rename, fsync dir) and carries the common checksummed
//! footer. Segment files not listed are leftovers of an interrupted seal.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::format::{self, FileKind};
use crate::error::{Error, Result};

pub const FILE: &str = "MANIFEST";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub segments: Vec<SegmentEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub id: u64,
    pub rows: u32,
    pub min_start_ns: u64,
    pub max_start_ns: u64,
    pub max_end_ns: u64,
    pub bytes: u64,
}

/// `Ok(None)` if there is no manifest yet (a new store).
pub fn load(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let payload = format::verify(FileKind::Manifest, &bytes)?;
    serde_json::from_slice(payload)
        .map(Some)
        .map_err(|e| Error::Corrupt(format!("manifest: {e}")))
}

pub fn store(dir: &Path, m: &Manifest) -> Result<()> {
    let json =
        serde_json::to_vec_pretty(m).map_err(|e| Error::Internal(format!("manifest: {e}")))?;
    format::write_atomic(&dir.join(FILE), FileKind::Manifest, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let m = Manifest {
            segments: vec![SegmentEntry {
                id: 3,
                rows: 10,
                min_start_ns: 1,
                max_start_ns: 2,
                max_end_ns: 3,
                bytes: 99,
            }],
        };
        store(dir.path(), &m).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(m));
        let p = dir.path().join(FILE);
        let mut b = std::fs::read(&p).unwrap();
        b[5] ^= 1;
        std::fs::write(&p, b).unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Corrupt(_))));
    }
}
