//! The memory limit (`--maxmemory`): what the data holds, counted, and a write that would
//! take it past the limit refused before it changes anything (docs/SECURITY.md, "Memory limit").
//!
//! What is counted is the data and its bookkeeping, not the process: an entry costs its key
//! and value bytes plus [`ENTRY_OVERHEAD`], a bucket its name plus [`BUCKET_OVERHEAD`].
//! The entry overhead is calibrated against the server's RSS: 1 M keys (11-byte keys,
//! 16-byte values, one bucket, loaded by `kv-bench --keys 1000000`) grew the release
//! server's RSS by 213 MiB, 218 bytes per entry, 27 of them key and value (BENCHMARKS.md,
//! "Memory limit"). Nothing is ever evicted (as Redis' `noeviction`): a full server refuses
//! growth and keeps serving reads and deletes, so it can be emptied.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes an entry costs beyond its key and value, as measured (module docs): its 64-byte
/// table slot and control byte at the tables' load factor, the allocator's rounding of the
/// key's and value's copies, and what the allocator keeps from the tables' growth.
pub const ENTRY_OVERHEAD: u64 = 191;
/// Bytes a bucket costs beyond its name: its 64 shards (a lock and an empty table each)
/// and its registry entry.
pub const BUCKET_OVERHEAD: u64 = 64 * 48 + 96;

/// What an entry with a key and value of these lengths costs.
pub fn entry_cost(key: usize, value: usize) -> u64 {
    key as u64 + value as u64 + ENTRY_OVERHEAD
}

/// What a bucket with a name of this length costs.
pub fn bucket_cost(name: usize) -> u64 {
    name as u64 + BUCKET_OVERHEAD
}

/// What putting a `value`-byte value at a `key`-byte key adds to the data (negative: frees),
/// given the length of the value the key holds now (`None`: no entry): a new entry costs
/// all of [`entry_cost`], a replaced value only the difference, as its key and overhead
/// are already counted.
pub fn put_delta(key: usize, now: Option<usize>, value: usize) -> i64 {
    match now {
        Some(old) => value as i64 - old as i64,
        None => entry_cost(key, value) as i64,
    }
}

/// What deleting a `key`-byte key adds to the data (never more than 0), given the length
/// of the value it holds now (`None`: no entry, nothing to free).
pub fn delete_delta(key: usize, now: Option<usize>) -> i64 {
    now.map_or(0, |old| -(entry_cost(key, old) as i64))
}

/// Bytes counted against a limit; shared by a store and all its buckets.
#[derive(Debug, Default)]
pub struct Budget {
    used: AtomicU64,
    /// 0: no limit.
    limit: u64,
}

/// A write would take the data past the limit; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit;

impl Budget {
    /// A budget of `limit` bytes; 0 is no limit.
    pub fn new(limit: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            limit,
        }
    }

    /// Bytes counted now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit; 0 is none.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Counts `bytes` more if they fit under the limit, atomically: concurrent writers
    /// cannot together overshoot it.
    pub fn try_take(&self, bytes: u64) -> Result<(), OverLimit> {
        if self.limit == 0 {
            self.used.fetch_add(bytes, Ordering::Relaxed);
            return Ok(());
        }
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| OverLimit)
    }

    /// Whether `bytes` more would fit now, on top of `pending` already promised (negative:
    /// already promised to be freed).
    pub fn fits(&self, pending: i64, bytes: i64) -> bool {
        let after = self.used() as i128 + pending as i128 + bytes as i128;
        self.limit == 0 || after <= self.limit as i128
    }

    /// Counts `bytes` more whatever the limit: for writes already decided on (replayed
    /// from disk, or admitted by the durable committer).
    pub fn take(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` fewer.
    pub fn give_back(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Counts a change of `delta` bytes (either sign) whatever the limit.
    pub fn adjust(&self, delta: i64) {
        if delta >= 0 {
            self.take(delta.unsigned_abs());
        } else {
            self.give_back(delta.unsigned_abs());
        }
    }

    /// Counts a change of `delta` bytes if it fits; shrinking always fits.
    pub fn try_adjust(&self, delta: i64) -> Result<(), OverLimit> {
        if delta > 0 {
            self.try_take(delta.unsigned_abs())
        } else {
            self.give_back(delta.unsigned_abs());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_admits_up_to_itself_and_never_past() {
        let budget = Budget::new(100);
        assert_eq!(budget.try_take(60), Ok(()));
        assert_eq!(budget.try_take(41), Err(OverLimit));
        assert_eq!(budget.try_take(40), Ok(()));
        assert_eq!(budget.used(), 100);
        budget.give_back(30);
        assert!(budget.fits(10, 20));
        assert!(!budget.fits(11, 20));
        assert!(budget.fits(-20, 40));
        assert_eq!(budget.try_adjust(-200), Ok(()));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn no_limit_counts_everything() {
        let budget = Budget::new(0);
        assert_eq!(budget.try_take(u64::MAX / 2), Ok(()));
        assert!(budget.fits(i64::MAX, 1));
    }

    #[test]
    fn concurrent_takers_never_overshoot_together() {
        let budget = std::sync::Arc::new(Budget::new(10_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    (0..10_000).filter(|_| budget.try_take(3).is_ok()).count()
                })
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(taken, 3333);
        assert_eq!(budget.used(), 9999);
    }
}
