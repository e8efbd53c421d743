//! `kv-server restore`: a data directory made from a backup (docs/BACKUP.md).
//!
//! The backup is checked whole before anything is written; then its records become the
//! directory's first snapshot (generation 0, written aside, synced, renamed) beside an
//! empty journal of the same generation: exactly what start-up reads. A failure on the way
//! removes what was made, so the target is either a whole data directory or as it was.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::dir::{remove_if_present, DataDir};
use super::journal::Journal;
use super::snapshot;
use super::OpenError;
use crate::backup::{self, ReadError, Summary};

/// Why a backup was not restored. Nothing was written in the target directory.
#[derive(Debug)]
pub enum RestoreError {
    /// The backup is damaged, cut short, of an unknown version, or unreadable.
    Backup(PathBuf, ReadError),
    /// The target exists and holds something: a restore never overwrites data.
    NotEmpty(PathBuf),
    /// The target cannot be made a data directory (see [`OpenError`]).
    Target(OpenError),
    /// Writing the data directory failed (the disk, permissions); what was made is gone.
    Write(PathBuf, io::Error),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Backup(file, e) => {
                write!(
                    f,
                    "backup {} refused: {e}; nothing was written",
                    file.display()
                )
            }
            RestoreError::NotEmpty(dir) => write!(
                f,
                "{} is not empty; restore into a new or empty directory (nothing was written)",
                dir.display()
            ),
            RestoreError::Target(e) => write!(f, "{e}"),
            RestoreError::Write(dir, e) => write!(
                f,
                "cannot write the data directory {}: {e}; what was written is removed",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for RestoreError {}

/// Makes a data directory at `dir` (new or empty) from the backup file `file`; what it
/// holds.
pub fn restore(file: &Path, dir: &Path) -> Result<Summary, RestoreError> {
    let refused = |e| RestoreError::Backup(file.to_path_buf(), e);
    backup::verify(file).map_err(refused)?;
    let existed = dir.exists();
    if existed && !is_empty_dir(dir)? {
        return Err(RestoreError::NotEmpty(dir.to_path_buf()));
    }
    let data_dir = DataDir::open(dir).map_err(RestoreError::Target)?;
    let written = write(file, &data_dir);
    if written.is_err() {
        undo(data_dir, existed);
    }
    written
}

/// Whether `dir` holds nothing (a file there is "not empty": it is refused just the same).
fn is_empty_dir(dir: &Path) -> Result<bool, RestoreError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Ok(false),
        Err(e) => Err(RestoreError::Write(dir.to_path_buf(), e)),
    }
}

/// Writes the snapshot and journal of generation 0 from the (checked) backup `file`.
fn write(file: &Path, dir: &DataDir) -> Result<Summary, RestoreError> {
    let failed = |e| RestoreError::Write(dir.path().to_path_buf(), e);
    let temporary = dir.snapshot_in_progress(0);
    let mut snapshot = snapshot::Writer::create(&temporary).map_err(failed)?;
    let mut written = Ok(());
    let summary = backup::read_file(file, |record| {
        if written.is_ok() {
            written = snapshot.add(record);
        }
    })
    .map_err(|e| RestoreError::Backup(file.to_path_buf(), e))?;
    written.map_err(failed)?;
    snapshot.finish().map_err(failed)?;
    fs::rename(&temporary, dir.snapshot(0)).map_err(failed)?;
    Journal::create(dir, 0).map_err(failed)?;
    dir.sync().map_err(failed)?;
    Ok(summary)
}

/// Removes what a failed restore made in `dir` (which existed before, or not).
fn undo(dir: DataDir, existed: bool) {
    for path in [
        dir.snapshot_in_progress(0),
        dir.snapshot(0),
        dir.journal_in_progress(0),
        dir.journal(0),
    ] {
        let _ = remove_if_present(&path);
    }
    let path = dir.path().to_path_buf();
    dir.release_refused();
    if !existed {
        let _ = fs::remove_dir(&path);
    }
}
