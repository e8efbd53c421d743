//! Start-up: rebuilding the in-memory state from the data directory, upgrading it from
//! an earlier format version on the way.
//!
//! Load the newest snapshot (if any), then replay the journals of its generation and
//! later, in order. Every file must be whole, except that the newest journal may end in a
//! torn write of its own format, which is cut off. Missing files or damage anywhere else
//! stop start-up.
//!
//! Nothing in the directory changes until every file has been read: a directory refused
//! for its version ([`OpenError::UnsupportedVersion`]) or for damage is left as it was.
//!
//! **Upgrades.** Each file says its format version ([`super::format`]) and is read in it,
//! so a directory may mix versions. If any file is of an earlier version, the state read
//! is written out in the current one before any client is served: the newest journal is
//! cut back to its whole frames, a new journal is started after it (unless the newest is
//! already current), a snapshot of everything is written for that journal's generation,
//! and the files it replaces are removed — the same steps as a compaction, so a crash at
//! any point leaves a directory that the next start reads (and finishes upgrading).

use std::path::Path;

use tracing::{info, warn};

use super::dir::{remove_if_present, Contents, DataDir};
use super::error::RecoveryError;
use super::format::{self, Format, Kind, CURRENT};
use super::journal::{self, Journal, Replayed};
use super::mirror::apply;
use super::{snapshot, OpenError};
use crate::memory::MemoryStore;

/// What recovery hands the committer.
pub(crate) struct Recovered {
    /// The journal to append to.
    pub(crate) journal: Journal,
    /// Size of the snapshot it started from (0 if none).
    pub(crate) snapshot_len: u64,
}

/// The files start-up reads, each with the format it is in.
struct Plan {
    /// The newest snapshot, if any.
    base: Option<(u64, Format)>,
    /// The journals from the snapshot's generation on, in order; never empty after a
    /// snapshot.
    journals: Vec<(u64, Format)>,
}

impl Plan {
    /// The generation the state starts from.
    fn first(&self) -> u64 {
        self.base.map_or(0, |(generation, _)| generation)
    }

    /// The oldest format version among the files, if it is not the current one.
    fn legacy_version(&self) -> Option<u32> {
        let formats = self.base.iter().chain(&self.journals).map(|(_, f)| f);
        formats.map(|f| f.version).min().filter(|&v| v < CURRENT)
    }
}

/// Loads the directory's state into `mirror`.
pub(crate) fn recover(dir: &DataDir, mirror: &MemoryStore) -> Result<Recovered, OpenError> {
    recover_files(dir, mirror).map_err(|e| e.into_open_error(dir.path()))
}

fn recover_files(dir: &DataDir, mirror: &MemoryStore) -> Result<Recovered, RecoveryError> {
    let contents = dir
        .contents()
        .map_err(RecoveryError::io(dir.path(), "list"))?;
    let plan = plan(dir, &contents)?;
    let replayed = read(dir, &plan, mirror)?;

    // Everything is read: from here on the directory changes.
    for temporary in &contents.temporaries {
        // A snapshot or journal that a crash interrupted: what it would have replaced remains.
        remove_if_present(temporary).map_err(RecoveryError::io(temporary, "remove"))?;
    }
    let journal = match (plan.journals.last(), replayed) {
        (Some(&(generation, format)), Some(replayed)) => {
            continue_journal(dir, generation, &format, &replayed)?
        }
        _ => Journal::create(dir, plan.first())
            .map_err(RecoveryError::io(&dir.journal(plan.first()), "create"))?,
    };
    let mut snapshot_len = match plan.base {
        Some((generation, _)) => std::fs::metadata(dir.snapshot(generation)).map_or(0, |m| m.len()),
        None => 0,
    };
    if let Some(version) = plan.legacy_version() {
        snapshot_len = upgrade(dir, journal.generation(), mirror, version)?;
    } else if contents.snapshots.len() > 1 || contents.journals.iter().any(|&g| g < plan.first()) {
        // Left by a crash between a snapshot and the removal of what it replaced.
        dir.remove_before(plan.first())
            .map_err(RecoveryError::io(dir.path(), "remove replaced files from"))?;
    }
    info!(
        "data directory {}: snapshot {}, {} journal(s) replayed",
        dir.path().display(),
        plan.base.map_or("none".to_string(), |(g, _)| g.to_string()),
        plan.journals.len()
    );
    Ok(Recovered {
        journal,
        snapshot_len,
    })
}

/// What a data directory holds, read without changing it (`kv-server check`).
pub(crate) struct Inspection {
    /// The newest snapshot's generation and format version, if any.
    pub(crate) snapshot: Option<(u64, u32)>,
    /// The journals replayed after it: generation and format version, in order.
    pub(crate) journals: Vec<(u64, u32)>,
    /// What the newest journal held (a torn tail is cut at the next start).
    pub(crate) newest: Option<Replayed>,
    /// Unfinished files a crash left (removed at the next start).
    pub(crate) temporaries: usize,
}

/// Reads `dir` into `mirror` as start-up would, changing nothing on disk.
pub(crate) fn inspect(dir: &DataDir, mirror: &MemoryStore) -> Result<Inspection, RecoveryError> {
    let contents = dir
        .contents()
        .map_err(RecoveryError::io(dir.path(), "list"))?;
    let plan = plan(dir, &contents)?;
    let newest = read(dir, &plan, mirror)?;
    Ok(Inspection {
        snapshot: plan.base.map(|(generation, f)| (generation, f.version)),
        journals: plan.journals.iter().map(|(g, f)| (*g, f.version)).collect(),
        newest,
        temporaries: contents.temporaries.len(),
    })
}

/// Which files to read, and their formats (read-only). Refuses a missing journal and a
/// file of a version this build does not read.
fn plan(dir: &DataDir, contents: &Contents) -> Result<Plan, RecoveryError> {
    let base = contents.snapshots.last().copied();
    let first = base.unwrap_or(0);
    let journals: Vec<u64> = contents
        .journals
        .iter()
        .copied()
        .filter(|&g| g >= first)
        .collect();
    let missing = (first..).zip(&journals).find(|(want, &have)| *want != have);
    if let Some((want, _)) = missing {
        return Err(RecoveryError::Missing(dir.journal(want)));
    }
    if base.is_some() && journals.is_empty() {
        return Err(RecoveryError::Missing(dir.journal(first)));
    }
    let base = match base {
        Some(g) => Some((g, probe(&dir.snapshot(g), Kind::Snapshot)?)),
        None => None,
    };
    let journals = journals
        .into_iter()
        .map(|g| Ok((g, probe(&dir.journal(g), Kind::Journal)?)))
        .collect::<Result<_, RecoveryError>>()?;
    Ok(Plan { base, journals })
}

/// The format of the file at `path`, or why it cannot be read.
fn probe(path: &Path, kind: Kind) -> Result<Format, RecoveryError> {
    format::probe(path, kind)
        .map_err(RecoveryError::io(path, "read"))?
        .map_err(|e| RecoveryError::format(path, e))
}

/// Loads the snapshot and replays the journals of `plan` into `mirror`, changing nothing
/// on disk; returns what the newest journal held.
fn read(
    dir: &DataDir,
    plan: &Plan,
    mirror: &MemoryStore,
) -> Result<Option<Replayed>, RecoveryError> {
    if let Some((generation, format)) = &plan.base {
        snapshot::load(&dir.snapshot(*generation), format, |record| {
            apply(mirror, record);
        })?;
    }
    let mut newest = None;
    for (i, (generation, format)) in plan.journals.iter().enumerate() {
        let is_newest = i + 1 == plan.journals.len();
        let path = dir.journal(*generation);
        newest = Some(journal::replay(&path, format, is_newest, |record| {
            apply(mirror, record);
        })?);
    }
    Ok(newest)
}

/// The journal to append to after the newest one, `generation`, was `replayed`: itself
/// with a torn tail cut off, or, if it is of an earlier format, the next one.
fn continue_journal(
    dir: &DataDir,
    generation: u64,
    format: &Format,
    replayed: &Replayed,
) -> Result<Journal, RecoveryError> {
    let path = dir.journal(generation);
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
    if !format.is_legacy() {
        return Journal::resume(dir, generation, replayed)
            .map_err(RecoveryError::io(&path, "reopen"));
    }
    journal::cut_legacy_tail(&path, replayed)
        .map_err(RecoveryError::io(&path, "cut the torn tail of"))?;
    Journal::create(dir, generation + 1)
        .map_err(RecoveryError::io(&dir.journal(generation + 1), "create"))
}

/// Rewrites the state read from files of format `version` in the current format: a
/// snapshot for the journal of `generation`, then the files it replaces are removed.
/// Returns the snapshot's size.
fn upgrade(
    dir: &DataDir,
    generation: u64,
    mirror: &MemoryStore,
    version: u32,
) -> Result<u64, RecoveryError> {
    let len = snapshot::write(dir, generation, mirror).map_err(RecoveryError::io(
        &dir.snapshot(generation),
        "write the upgraded snapshot",
    ))?;
    dir.remove_before(generation).map_err(RecoveryError::io(
        dir.path(),
        "remove the files the upgrade replaced from",
    ))?;
    let (buckets, keys) = mirror.stats();
    info!(
        "data directory {}: upgraded from format version {version} to {CURRENT} ({buckets} \
         bucket(s), {keys} key(s))",
        dir.path().display()
    );
    Ok(len)
}
