//! The memory limit for the writes of one group commit (docs/SECURITY.md, "Memory limit").
//!
//! The committer decides on every write of a group before it applies any: the group is
//! journaled as one frame first, and only then applied to the mirror. So the mirror says
//! what the data held before the group, not what the group's earlier writes did to it: a
//! `DELETE` of a key the group put, a second `PUT` of a key, a write to a bucket the group
//! created. An overlay of what the group has done so far answers for those, so that each
//! write is charged exactly as the memory engine would charge it sent alone, after the
//! writes before it (whichever connection sent them). The cost rules are
//! [`crate::budget`]'s; this only feeds them the right "before".

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use foldhash::fast::RandomState;

use super::record::Op;
use crate::budget::{bucket_cost, delete_delta, put_delta};
use crate::memory::{MemoryBucket, MemoryStore};

/// Keys an overlay keeps room for between groups; one grown past this by a large group is
/// shrunk back, so a rare huge group does not pin its memory.
const KEEP: usize = 4096;

/// Per (bucket, key): the length of its value (`None`: no entry).
type Entries = HashMap<(Bytes, Bytes), Option<usize>, RandomState>;

/// What the admitted writes of the group being decided do to the data. Kept by the
/// committer and cleared for each group, so its tables are allocated once, not per group;
/// without a limit it is never touched.
#[derive(Default)]
pub(super) struct Admission {
    /// Bytes the admitted writes add, on top of the mirror's count (negative: they free).
    pending: i64,
    /// Every (bucket, key) the group has written, with the length of the value it holds
    /// after the admitted writes (`None`: no entry), its state before the group if they
    /// were all refused.
    entries: Entries,
    /// Buckets the group's admitted writes created.
    created: HashSet<Bytes, RandomState>,
}

impl Admission {
    /// Forgets the last group, for the next one to start from the mirror.
    pub(super) fn start(&mut self) {
        self.pending = 0;
        self.entries.clear();
        self.created.clear();
        if self.entries.capacity() > KEEP {
            self.entries.shrink_to(KEEP);
        }
        if self.created.capacity() > KEEP {
            self.created.shrink_to(KEEP);
        }
    }

    /// Whether `op` fits the limit of `mirror` after the group's writes admitted so far;
    /// if it does, the writes after it are charged against its effect. The committer is
    /// the mirror's only writer, so the mirror plus the overlay is exact.
    pub(super) fn admit(&mut self, mirror: &MemoryStore, op: &Op) -> bool {
        let budget = mirror.budget();
        if budget.limit() == 0 {
            // Nothing to count against: no lookup, no overlay.
            return true;
        }
        let (bucket, write) = match op {
            Op::Create { bucket } => (bucket, None),
            Op::Put { bucket, key, value } => (bucket, Some((key, Some(value.len())))),
            Op::Delete { bucket, key } => (bucket, Some((key, None))),
        };
        let found = mirror.bucket_now(bucket);
        // `mirror::apply` creates a missing bucket for any write to it, so each kind of
        // write is charged for that (clients only write to buckets that exist, or that an
        // earlier write of the group created).
        let creates = found.is_none() && !self.created.contains(bucket);
        let mut growth = if creates {
            bucket_cost(bucket.len()) as i64
        } else {
            0
        };
        let entry = write.map(|(key, after)| {
            let (now, delta) = charge(&mut self.entries, found.as_ref(), bucket, key, after);
            growth += delta;
            (now, after)
        });
        // As in the memory engine, a write that does not grow the data always fits.
        if growth > 0 && !budget.fits(self.pending, growth) {
            return false;
        }
        self.pending += growth;
        if let Some((now, after)) = entry {
            *now = after;
        }
        if creates {
            self.created.insert(bucket.clone());
        }
        true
    }
}

/// `key`'s state in `entries` (taken from the mirror's bucket, `found`, on the group's
/// first write to it) and what leaving it with a value of `after` bytes (`None`: deleted)
/// adds to the data. Only charged: the caller records `after` once the write is admitted.
fn charge<'a>(
    entries: &'a mut Entries,
    found: Option<&MemoryBucket>,
    bucket: &Bytes,
    key: &Bytes,
    after: Option<usize>,
) -> (&'a mut Option<usize>, i64) {
    let now = entries
        .entry((bucket.clone(), key.clone()))
        .or_insert_with(|| found.and_then(|b| b.value_len(key)));
    let delta = match after {
        Some(len) => put_delta(key.len(), *now, len),
        None => delete_delta(key.len(), *now),
    };
    (now, delta)
}
