//! File names and which files count. A file is named
//! `t{tier}-{start_s}-{end_s}-g{gen}-{raw|mrg}.smt`: its tier (0: the
//! finest resolution, 1: 1 min, 2: 1 h), the time range its points lie
//! in, a generation (unique, increasing) and whether it is an appended
//! raw file or the output of a merge (compaction or downsampling).
//!
//! The rule that makes merges crash-safe: a file is *shadowed* — already
//! inside a merge output, so never read and deleted when seen — when a
//! merged file of the same or a coarser tier covers its range and has a
//! higher generation. A merge writes its output (atomically) before
//! deleting its inputs, so a crash in between leaves inputs that are
//! shadowed, never counted twice.

use std::path::{Path, PathBuf};

pub const EXT: &str = "smt";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub tier: u8,
    pub start_s: u64,
    pub end_s: u64,
    pub gen: u64,
    pub merged: bool,
    pub path: PathBuf,
}

impl FileMeta {
    pub fn new(dir: &Path, tier: u8, start_s: u64, end_s: u64, gen: u64, merged: bool) -> FileMeta {
        let kind = if merged { "mrg" } else { "raw" };
        let name = format!("t{tier}-{start_s}-{end_s}-g{gen}-{kind}.{EXT}");
        FileMeta {
            tier,
            start_s,
            end_s,
            gen,
            merged,
            path: dir.join(name),
        }
    }

    /// Parses a file name; `None` for anything else in the directory.
    pub fn parse(path: &Path) -> Option<FileMeta> {
        let name = path
            .file_name()?
            .to_str()?
            .strip_suffix(&format!(".{EXT}"))?;
        let mut parts = name.split('-');
        let tier = parts.next()?.strip_prefix('t')?.parse().ok()?;
        let start_s = parts.next()?.parse().ok()?;
        let end_s = parts.next()?.parse().ok()?;
        let gen = parts.next()?.strip_prefix('g')?.parse().ok()?;
        let merged = match parts.next()? {
            "mrg" => true,
            "raw" => false,
            _ => return None,
        };
        if parts.next().is_some() || end_s <= start_s || tier > 2 {
            return None;
        }
        Some(FileMeta {
            tier,
            start_s,
            end_s,
            gen,
            merged,
            path: path.to_path_buf(),
        })
    }

    pub fn covers(&self, other: &FileMeta) -> bool {
        self.start_s <= other.start_s && self.end_s >= other.end_s
    }

    pub fn overlaps(&self, start_s: u64, end_s: u64) -> bool {
        self.start_s < end_s && self.end_s > start_s
    }

    fn shadows(&self, other: &FileMeta) -> bool {
        self.merged && self.tier >= other.tier && self.gen > other.gen && self.covers(other)
    }
}

/// Splits files into (visible, shadowed).
pub fn partition(files: &[FileMeta]) -> (Vec<FileMeta>, Vec<FileMeta>) {
    files
        .iter()
        .cloned()
        .partition(|f| !files.iter().any(|g| g.shadows(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        let f = FileMeta::new(Path::new("/m"), 1, 3600, 7200, 12, true);
        assert_eq!(f.path, Path::new("/m/t1-3600-7200-g12-mrg.smt"));
        assert_eq!(FileMeta::parse(&f.path), Some(f));
        for bad in [
            "retired.smt",
            "t1-5-5-g1-raw.smt",
            "t9-0-1-g1-raw.smt",
            "t0-0-1-g1-raw.tmp",
        ] {
            assert_eq!(FileMeta::parse(Path::new(bad)), None, "{bad}");
        }
    }

    #[test]
    fn a_newer_merge_of_the_same_or_coarser_tier_shadows() {
        let d = Path::new("/m");
        let raw = FileMeta::new(d, 0, 0, 3600, 1, false);
        let late = FileMeta::new(d, 0, 0, 3600, 5, false);
        let down = FileMeta::new(d, 1, 0, 3600, 3, true);
        let day = FileMeta::new(d, 2, 0, 86400, 4, true);
        let (vis, shadowed) = partition(&[raw.clone(), late.clone(), down.clone(), day.clone()]);
        assert_eq!(shadowed, vec![raw.clone(), down]);
        assert_eq!(
            vis,
            vec![late.clone(), day.clone()],
            "later data stays visible"
        );
        // A raw file never shadows; a finer merge never shadows a coarser file.
        let (vis, _) = partition(&[raw.clone(), late]);
        assert_eq!(vis.len(), 2);
        let fine = FileMeta::new(d, 0, 0, 3600, 9, true);
        let (vis, _) = partition(&[day, fine]);
        assert_eq!(vis.len(), 2);
    }
}
