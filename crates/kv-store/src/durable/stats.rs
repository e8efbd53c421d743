//! What the durable engine has done, counted by the committer and read by anyone: for an
//! operator (how many syncs the writes cost) and for tests that must count syncs rather
//! than time them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::Persistence;

/// Upper bounds of the commit latency histogram's buckets, in microseconds (`+Inf`
/// implicit): from a page-cache append (`everysec`) to a sync on a slow or failing disk.
pub const COMMIT_LATENCY_BOUNDS_MICROS: [u64; 13] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Buckets: one per bound and `+Inf`.
pub const COMMIT_LATENCY_BUCKETS: usize = COMMIT_LATENCY_BOUNDS_MICROS.len() + 1;

/// Counters since the store was opened (a snapshot of them: [`Persistence`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    syncs: AtomicU64,
    write_errors: AtomicU64,
    /// Commits per latency bucket (not cumulative).
    commit_latency: [AtomicU64; COMMIT_LATENCY_BUCKETS],
    commit_latency_sum_nanos: AtomicU64,
    journal_bytes: AtomicU64,
}

impl Counters {
    /// A frame was appended, and synced if `synced`, in `took`.
    pub(crate) fn record_commit(&self, synced: bool, took: Duration) {
        self.commits.fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = COMMIT_LATENCY_BOUNDS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(COMMIT_LATENCY_BOUNDS_MICROS.len());
        self.commit_latency[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.commit_latency_sum_nanos.fetch_add(nanos, Relaxed);
        if synced {
            self.syncs.fetch_add(1, Relaxed);
        }
    }

    /// Appended frames were synced later (`everysec`).
    pub(crate) fn record_sync(&self) {
        self.syncs.fetch_add(1, Relaxed);
    }

    /// The journal being appended to is `bytes` long (after a group commit or a switch).
    pub(crate) fn record_journal_len(&self, bytes: u64) {
        self.journal_bytes.store(bytes, Relaxed);
    }

    /// `writes` writes failed on the disk.
    pub(crate) fn record_write_errors(&self, writes: usize) {
        self.write_errors.fetch_add(writes as u64, Relaxed);
    }

    /// The counters now, as the store reports them, with its `fsync` policy's name.
    pub(crate) fn snapshot(&self, fsync: &'static str) -> Persistence {
        Persistence {
            fsync,
            commits: self.commits.load(Relaxed),
            syncs: self.syncs.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            commit_latency: std::array::from_fn(|i| self.commit_latency[i].load(Relaxed)),
            commit_latency_sum_nanos: self.commit_latency_sum_nanos.load(Relaxed),
            journal_bytes: self.journal_bytes.load(Relaxed),
        }
    }
}
