//! What a stored write does to the in-memory mirror: one definition for the committer (as
//! it acknowledges a write) and for recovery (as it replays one), so that the state after a
//! restart is exactly the state before it.

use kv_protocol::Event;

use super::record::Record;
use crate::memory::{Admit, MemoryBucket, MemoryStore};

/// Applies one write, stored or about to be acknowledged, to the mirror. It is counted
/// against the memory limit but never refused: it is on disk already (replay), or the
/// committer admitted it before journaling it. Returns the bucket a `PUT` or `DELETE`
/// changed, and its event, for the committer to publish.
pub(crate) fn apply<'r>(
    mirror: &MemoryStore,
    record: Record<'r>,
) -> Option<(MemoryBucket, Event<'r>)> {
    match record {
        Record::Create { bucket } => {
            let _ = mirror.create_now(bucket, Admit::Decided);
            None
        }
        Record::Put { bucket, key, value } => {
            let bucket = bucket_of(mirror, bucket);
            let _ = bucket.put_now(key, value, Admit::Decided);
            Some((bucket, Event::Set { key, value }))
        }
        Record::Delete { bucket, key } => {
            let bucket = bucket_of(mirror, bucket);
            bucket.delete_now(key);
            Some((bucket, Event::Deleted { key }))
        }
        Record::SnapshotEnd { .. } => None,
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
