//! `kv-server check`: a data directory verified offline, as start-up would read it, and
//! nothing in it changed (docs/BACKUP.md).

use std::fmt;
use std::path::{Path, PathBuf};

use super::dir::DataDir;
use super::recovery::{self, Inspection};
use super::OpenError;
use crate::memory::MemoryStore;

/// What a healthy data directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The directory.
    pub dir: PathBuf,
    /// The newest snapshot: its generation and format version.
    pub snapshot: Option<(u64, u32)>,
    /// The journals after it: generation and format version, in order.
    pub journals: Vec<(u64, u32)>,
    /// Buckets.
    pub buckets: u64,
    /// Keys in all buckets.
    pub keys: u64,
    /// Bytes of bucket names, keys and values.
    pub data_bytes: u64,
    /// Bytes of a write at the end of the newest journal that never completed (it was never
    /// acknowledged; the next start cuts it off).
    pub torn_bytes: u64,
    /// Writes that were never synced were lost with it (`--fsync everysec` and a power
    /// loss: what that mode allows).
    pub dropped_unsynced: bool,
    /// Unfinished files a crash left (the next start removes them).
    pub temporaries: usize,
}

/// Why a directory did not check out.
#[derive(Debug)]
pub enum CheckError {
    /// There is no directory there.
    Missing(PathBuf),
    /// It cannot be read as a data directory: damage (with the file and the offset), a
    /// missing file, an unknown format version, or another process holding it.
    Unusable(OpenError),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Missing(dir) => write!(f, "{} does not exist", dir.display()),
            CheckError::Unusable(OpenError::Unusable(dir, reason)) => {
                write!(f, "data directory {}: {reason}", dir.display())
            }
            CheckError::Unusable(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CheckError {}

/// Reads the data directory `dir` whole, as start-up would (every checksum, every record),
/// without changing it; refused while a server holds it.
pub fn check(dir: &Path) -> Result<CheckReport, CheckError> {
    if !dir.exists() {
        return Err(CheckError::Missing(dir.to_path_buf()));
    }
    let data_dir = DataDir::open(dir).map_err(CheckError::Unusable)?;
    let mirror = MemoryStore::new();
    let inspected = recovery::inspect(&data_dir, &mirror);
    data_dir.release_refused();
    let inspected = inspected.map_err(|e| CheckError::Unusable(e.into_open_error(dir)))?;
    Ok(report(dir, inspected, &mirror))
}

fn report(dir: &Path, inspected: Inspection, mirror: &MemoryStore) -> CheckReport {
    let (buckets, keys) = mirror.stats();
    let mut data_bytes = 0u64;
    for (name, bucket) in mirror.buckets() {
        data_bytes += name.len() as u64;
        for shard in 0..bucket.shard_count() {
            bucket.visit_shard(shard, |key, value| {
                data_bytes += (key.len() + value.len()) as u64;
            });
        }
    }
    let newest = inspected.newest.as_ref();
    CheckReport {
        dir: dir.to_path_buf(),
        snapshot: inspected.snapshot,
        journals: inspected.journals,
        buckets: buckets as u64,
        keys: keys as u64,
        data_bytes,
        torn_bytes: newest.map_or(0, |n| n.torn),
        dropped_unsynced: newest.is_some_and(|n| n.dropped_unsynced),
        temporaries: inspected.temporaries,
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data directory {}: healthy", self.dir.display())?;
        match self.snapshot {
            Some((generation, version)) => writeln!(
                f,
                "  snapshot: generation {generation}, format version {version}"
            )?,
            None => writeln!(f, "  snapshot: none")?,
        }
        let journals: Vec<String> = self
            .journals
            .iter()
            .map(|(g, v)| format!("generation {g} (format version {v})"))
            .collect();
        writeln!(f, "  journals: {}", journals.join(", "))?;
        writeln!(
            f,
            "  {} bucket(s), {} key(s), {} byte(s) of names, keys and values",
            self.buckets, self.keys, self.data_bytes
        )?;
        if self.torn_bytes > 0 {
            writeln!(
                f,
                "  the newest journal ends in {} byte(s) of a write that never completed \
                 (never acknowledged; the next start cuts it off)",
                self.torn_bytes
            )?;
        }
        if self.dropped_unsynced {
            writeln!(
                f,
                "  writes that were never synced are missing (power loss with --fsync \
                 everysec, as that mode allows)"
            )?;
        }
        if self.temporaries > 0 {
            writeln!(
                f,
                "  {} unfinished file(s) from a crash (the next start removes them)",
                self.temporaries
            )?;
        }
        Ok(())
    }
}
