//! What the durable engine has done, counted by the committer and read by anyone: for an
//! operator (how many syncs the writes cost) and for tests that must count syncs rather
//! than time them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters since the store was opened (a snapshot of them: [`DurableStats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    syncs: AtomicU64,
    write_errors: AtomicU64,
}

/// The durable engine's work since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurableStats {
    /// Journal frames appended: one per group commit.
    pub commits: u64,
    /// `fdatasync` calls that made commits durable (with `--fsync always`, one per commit;
    /// with `everysec`, about one a second).
    pub syncs: u64,
    /// Writes answered `ERROR` because the disk failed them.
    pub write_errors: u64,
}

impl Counters {
    /// A frame was appended, and synced if `synced`.
    pub(crate) fn record_commit(&self, synced: bool) {
        self.commits.fetch_add(1, Relaxed);
        if synced {
            self.syncs.fetch_add(1, Relaxed);
        }
    }

    /// Appended frames were synced later (`everysec`).
    pub(crate) fn record_sync(&self) {
        self.syncs.fetch_add(1, Relaxed);
    }

    /// `writes` writes failed on the disk.
    pub(crate) fn record_write_errors(&self, writes: usize) {
        self.write_errors.fetch_add(writes as u64, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> DurableStats {
        DurableStats {
            commits: self.commits.load(Relaxed),
            syncs: self.syncs.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
        }
    }
}
