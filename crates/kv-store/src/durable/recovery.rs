//! Start-up: rebuilding the in-memory state from the data directory.
//!
//! Load the newest snapshot (if any), then replay the journals of its generation and
//! later, in order. Every file must be whole, except that the newest journal may end in a
//! torn write, which is cut off. Missing files or damage anywhere else stop start-up.

use tracing::{info, warn};

use super::dir::{remove_if_present, DataDir};
use super::journal::{self, Journal};
use super::record::Record;
use super::{snapshot, OpenError};
use crate::memory::{MemoryBucket, MemoryStore};

/// What recovery hands the committer.
pub(crate) struct Recovered {
    /// The journal to append to.
    pub(crate) journal: Journal,
    /// Size of the snapshot it started from (0 if none).
    pub(crate) snapshot_len: u64,
}

/// Loads the directory's state into `mirror`.
pub(crate) fn recover(dir: &DataDir, mirror: &MemoryStore) -> Result<Recovered, OpenError> {
    let unusable = |reason: String| OpenError::Unusable(dir.path().to_path_buf(), reason);
    let contents = dir
        .contents()
        .map_err(|e| unusable(format!("cannot list it: {e}")))?;
    for temporary in &contents.temporaries {
        // A snapshot that a crash interrupted: the journals it would have replaced remain.
        remove_if_present(temporary)
            .map_err(|e| unusable(format!("cannot remove {}: {e}", temporary.display())))?;
    }

    let base = contents.snapshots.last().copied();
    let mut snapshot_len = 0;
    if let Some(generation) = base {
        let path = dir.snapshot(generation);
        snapshot::load(&path, |record| apply(mirror, record)).map_err(unusable)?;
        snapshot_len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    }
    let first = base.unwrap_or(0);
    let journals: Vec<u64> = contents
        .journals
        .iter()
        .copied()
        .filter(|&g| g >= first)
        .collect();
    if let Some(missing) = (first..).zip(&journals).find(|(want, &have)| *want != have) {
        return Err(unusable(format!(
            "{} is missing",
            dir.journal(missing.0).display()
        )));
    }
    if base.is_some() && journals.is_empty() {
        return Err(unusable(format!(
            "{} is missing",
            dir.journal(first).display()
        )));
    }

    let mut journal = None;
    for (i, &generation) in journals.iter().enumerate() {
        let newest = i + 1 == journals.len();
        let path = dir.journal(generation);
        let replayed =
            journal::replay(&path, newest, |record| apply(mirror, record)).map_err(unusable)?;
        if newest {
            if replayed.dropped_unsynced {
                warn!(
                    "{}: a write that was never synced is missing (power loss with --fsync \
                     everysec); dropped it and the {} byte(s) after it, as that mode allows",
                    path.display(),
                    replayed.torn
                );
            } else if replayed.torn > 0 {
                warn!(
                    "{}: cut off {} byte(s) of a write that never completed (it was never \
                     acknowledged)",
                    path.display(),
                    replayed.torn
                );
            }
            journal = Some(
                Journal::resume(dir, generation, &replayed)
                    .map_err(|e| unusable(format!("cannot reopen {}: {e}", path.display())))?,
            );
        }
    }
    let journal = match journal {
        Some(journal) => journal,
        None => Journal::create(dir, first)
            .map_err(|e| unusable(format!("cannot create its journal: {e}")))?,
    };
    if contents.snapshots.len() > 1 || contents.journals.iter().any(|&g| g < first) {
        // Left by a crash between a snapshot and the removal of what it replaced.
        dir.remove_before(first)
            .map_err(|e| unusable(format!("cannot remove replaced files: {e}")))?;
    }
    info!(
        "data directory {}: snapshot {}, {} journal(s) replayed",
        dir.path().display(),
        base.map_or("none".to_string(), |g| g.to_string()),
        journals.len()
    );
    Ok(Recovered {
        journal,
        snapshot_len,
    })
}

/// Applies one stored write to the mirror.
pub(crate) fn apply(mirror: &MemoryStore, record: Record<'_>) {
    match record {
        Record::Create { bucket } => mirror.create_now(bucket),
        Record::Put { bucket, key, value } => {
            if let Some(bucket) = bucket_of(mirror, bucket) {
                bucket.put_now(key, value);
            }
        }
        Record::Delete { bucket, key } => {
            if let Some(bucket) = bucket_of(mirror, bucket) {
                bucket.delete_now(key);
            }
        }
        Record::SnapshotEnd { .. } => {}
    }
}

/// The bucket a stored write names. It was created before the write was acknowledged, so
/// its creation was stored first; created again here only for robustness.
fn bucket_of(mirror: &MemoryStore, name: &[u8]) -> Option<MemoryBucket> {
    mirror.bucket_now(name).or_else(|| {
        mirror.create_now(name);
        mirror.bucket_now(name)
    })
}
