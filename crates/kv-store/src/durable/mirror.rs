//! What a stored write does to the in-memory mirror: one definition for the committer (as
//! it acknowledges a write) and for recovery (as it replays one), so that the state after a
//! restart is exactly the state before it.

use super::record::Record;
use crate::memory::{Admit, MemoryBucket, MemoryStore};

/// Applies one write, stored or about to be acknowledged, to the mirror. It is counted
/// against the memory limit but never refused: it is on disk already (replay), or the
/// committer admitted it before journaling it.
pub(crate) fn apply(mirror: &MemoryStore, record: Record<'_>) {
    match record {
        Record::Create { bucket } => {
            let _ = mirror.create_now(bucket, Admit::Decided);
        }
        Record::Put { bucket, key, value } => {
            let _ = bucket_of(mirror, bucket).put_now(key, value, Admit::Decided);
        }
        Record::Delete { bucket, key } => bucket_of(mirror, bucket).delete_now(key),
        Record::SnapshotEnd { .. } => {}
    }
}

/// The bucket a write names. Buckets are created before any write to them is accepted and
/// are never removed, so it exists; were a record to say otherwise, both paths create it
/// alike rather than diverge.
fn bucket_of(mirror: &MemoryStore, name: &[u8]) -> MemoryBucket {
    loop {
        if let Some(bucket) = mirror.bucket_now(name) {
            return bucket;
        }
        let _ = mirror.create_now(name, Admit::Decided);
    }
}
