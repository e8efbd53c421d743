//! The data directory: its lock, its file names, and what it holds.
//!
//! ```text
//! LOCK                          held (flock) by the running kv-server
//! snapshot-<generation>.snap    every key as of the start of journal <generation>
//! journal-<generation>.log      writes since then, one frame per group commit
//! snapshot-<generation>.tmp     a snapshot being written (ignored and removed at start)
//! journal-<generation>.tmp      a journal being created (ignored and removed at start)
//! ```
//!
//! Journals and snapshots begin with a header naming their format version
//! ([`super::format`]).
//!
//! The state is the newest snapshot (none means empty) followed by the journals of its
//! generation and later, replayed in order.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use super::OpenError;

const LOCK_FILE: &str = "LOCK";
/// The file of format version 1, the redb-based store (refused rather than ignored, so no
/// data is silently left behind).
const REDB_FILE: &str = "kv.redb";

/// An open, locked data directory.
pub(crate) struct DataDir {
    path: PathBuf,
    /// Holding the open file holds the lock; the OS releases it if the process dies.
    _lock: File,
    /// The lock file did not exist before: a refused directory must be left as it was.
    created_lock: bool,
}

/// The generations of each kind of file found in the directory, sorted.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    pub(crate) snapshots: Vec<u64>,
    pub(crate) journals: Vec<u64>,
    /// Unfinished snapshots and journals left by a crash.
    pub(crate) temporaries: Vec<PathBuf>,
}

impl DataDir {
    /// Creates the directory if needed and takes its lock.
    pub(crate) fn open(path: &Path) -> Result<Self, OpenError> {
        let unusable = |reason: String| OpenError::Unusable(path.to_path_buf(), reason);
        let existed = path.is_dir();
        // Without this, a file in the way reads "cannot be created: File exists".
        if !existed && path.exists() {
            return Err(OpenError::NotADirectory(path.to_path_buf()));
        }
        fs::create_dir_all(path).map_err(|e| OpenError::CannotCreate(path.to_path_buf(), e))?;
        if !existed {
            // Make the new directory's own entry durable, in its parent.
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            let _ = File::open(parent.unwrap_or(Path::new("."))).and_then(|d| d.sync_all());
        }
        let lock_path = path.join(LOCK_FILE);
        let created_lock = !lock_path.exists();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| unusable(format!("cannot open its lock file: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(OpenError::Locked(path.to_path_buf())),
            Err(TryLockError::Error(e)) => return Err(unusable(format!("cannot lock it: {e}"))),
        }
        let dir = Self {
            path: path.to_path_buf(),
            _lock: lock,
            created_lock,
        };
        let redb = path.join(REDB_FILE);
        if redb.exists() {
            dir.release_refused();
            return Err(OpenError::UnsupportedVersion {
                file: redb,
                found: "format version 1 (the redb-based store of early kv-server builds), \
                        which this version cannot read"
                    .into(),
            });
        }
        Ok(dir)
    }

    /// Gives up a directory that start-up refused, leaving it as it was found: the lock
    /// file goes too if this process created it (removed while still held, so no other
    /// process can be holding it).
    pub(crate) fn release_refused(self) {
        if self.created_lock {
            let _ = fs::remove_file(self.path.join(LOCK_FILE));
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn journal(&self, generation: u64) -> PathBuf {
        self.path.join(format!("journal-{generation:020}.log"))
    }

    pub(crate) fn snapshot(&self, generation: u64) -> PathBuf {
        self.path.join(format!("snapshot-{generation:020}.snap"))
    }

    pub(crate) fn snapshot_in_progress(&self, generation: u64) -> PathBuf {
        self.path.join(format!("snapshot-{generation:020}.tmp"))
    }

    pub(crate) fn journal_in_progress(&self, generation: u64) -> PathBuf {
        self.path.join(format!("journal-{generation:020}.tmp"))
    }

    /// What the directory holds (files it does not know are left alone).
    pub(crate) fn contents(&self) -> io::Result<Contents> {
        let mut contents = Contents::default();
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(generation) = generation_of(name, "journal-", ".log") {
                contents.journals.push(generation);
            } else if let Some(generation) = generation_of(name, "snapshot-", ".snap") {
                contents.snapshots.push(generation);
            } else if generation_of(name, "snapshot-", ".tmp").is_some()
                || generation_of(name, "journal-", ".tmp").is_some()
            {
                contents.temporaries.push(entry.path());
            }
        }
        contents.journals.sort_unstable();
        contents.snapshots.sort_unstable();
        Ok(contents)
    }

    /// Removes the snapshots and journals older than `generation`, which a snapshot of
    /// `generation` has made redundant.
    pub(crate) fn remove_before(&self, generation: u64) -> io::Result<()> {
        let contents = self.contents()?;
        for &g in contents.snapshots.iter().filter(|&&g| g < generation) {
            remove_if_present(&self.snapshot(g))?;
        }
        for &g in contents.journals.iter().filter(|&&g| g < generation) {
            remove_if_present(&self.journal(g))?;
        }
        self.sync()
    }

    /// Makes file creations, renames and removals in the directory durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        File::open(&self.path)?.sync_all()
    }
}

pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `Some(generation)` if `name` is `<prefix><20 digits><suffix>`.
fn generation_of(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_strangers_are_ignored() {
        assert_eq!(
            generation_of("journal-00000000000000000042.log", "journal-", ".log"),
            Some(42)
        );
        assert_eq!(generation_of("journal-42.log", "journal-", ".log"), None);
        assert_eq!(
            generation_of("journal-0000000000000000004x.log", "journal-", ".log"),
            None
        );
        assert_eq!(
            generation_of("snapshot-00000000000000000007.snap", "journal-", ".log"),
            None
        );
    }
}
