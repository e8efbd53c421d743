//! The in-memory engine: the guide's buckets, living in memory.
//!
//! The registry is a read-mostly map of names to buckets behind a `RwLock` (buckets are
//! created rarely and looked up on every request; callers also keep handles). Each bucket
//! is split into shards, each a `HashMap` behind its own std `RwLock`, so two cores rarely
//! touch the same lock and a read never blocks a read. Why this structure and not another
//! is measured in `crates/store-bench` (see BENCHMARKS.md). Std locks are right here: no
//! critical section awaits or does more than a hash-map operation.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use foldhash::fast::RandomState;

use crate::{Bucket, Store, StoreError};

/// Shards per bucket: a power of two comfortably above the core count, so that lock
/// collisions between concurrent requests are rare.
const SHARDS: usize = 64;

/// The registry of buckets; clones share it.
#[derive(Clone, Default)]
pub struct MemoryStore {
    buckets: Arc<RwLock<HashMap<Bytes, MemoryBucket, RandomState>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Synchronous `create`, for callers outside async code.
    pub fn create_now(&self, name: &[u8]) {
        if self.bucket_now(name).is_some() {
            return;
        }
        let mut buckets = self.buckets.write().unwrap_or_else(PoisonError::into_inner);
        buckets.entry(Bytes::copy_from_slice(name)).or_default();
    }

    /// Number of buckets and of keys in all of them.
    pub fn stats(&self) -> (usize, usize) {
        let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
        (buckets.len(), buckets.values().map(MemoryBucket::len).sum())
    }

    /// Synchronous `bucket`.
    pub fn bucket_now(&self, name: &[u8]) -> Option<MemoryBucket> {
        let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
        buckets.get(name).cloned()
    }
}

impl Store for MemoryStore {
    type Bucket = MemoryBucket;

    async fn create(&self, name: &[u8]) -> Result<(), StoreError> {
        self.create_now(name);
        Ok(())
    }

    async fn bucket(&self, name: &[u8]) -> Result<Option<MemoryBucket>, StoreError> {
        Ok(self.bucket_now(name))
    }
}

type Shard = RwLock<HashMap<Bytes, Bytes, RandomState>>;

/// One bucket: sharded maps; clones share it.
#[derive(Clone)]
pub struct MemoryBucket {
    shards: Arc<[Shard]>,
    /// Picks the shard; the maps hash again with their own seeds.
    shard_hasher: RandomState,
}

impl Default for MemoryBucket {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            shard_hasher: RandomState::default(),
        }
    }
}

impl MemoryBucket {
    fn shard(&self, key: &[u8]) -> &Shard {
        let hash = self.shard_hasher.hash_one(key);
        // High bits: the low ones are what the shard's own table would use.
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    /// Synchronous `put`. Key and value are copied into their own allocations, so they
    /// never pin the connection's read buffer.
    pub fn put_now(&self, key: &[u8], value: &[u8]) {
        let value = Bytes::copy_from_slice(value);
        let mut shard = self
            .shard(key)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match shard.get_mut(key) {
            Some(slot) => *slot = value,
            None => {
                shard.insert(Bytes::copy_from_slice(key), value);
            }
        }
    }

    /// `put_now` for a key and value the caller already owns (no copy).
    pub fn put_bytes(&self, key: Bytes, value: Bytes) {
        let mut shard = self
            .shard(&key)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        shard.insert(key, value);
    }

    /// Synchronous `get`: a reference-count increment, no copy.
    pub fn get_now(&self, key: &[u8]) -> Option<Bytes> {
        let shard = self
            .shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.get(key).cloned()
    }

    /// Synchronous `delete`.
    pub fn delete_now(&self, key: &[u8]) {
        let mut shard = self
            .shard(key)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        shard.remove(key);
    }

    /// Number of keys (takes every shard's lock in turn; for tests and stats).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether the bucket holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Bucket for MemoryBucket {
    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.put_now(key, value);
        Ok(())
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.get_now(key))
    }

    async fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        self.delete_now(key);
        Ok(())
    }
}

/// Reading a whole store, shard by shard: what a durable snapshot is made from.
impl MemoryStore {
    /// Every bucket with its name (a point-in-time list; buckets are never removed).
    pub fn buckets(&self) -> Vec<(Bytes, MemoryBucket)> {
        let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
        buckets
            .iter()
            .map(|(name, bucket)| (name.clone(), bucket.clone()))
            .collect()
    }
}

impl MemoryBucket {
    /// Number of shards, for [`Self::visit_shard`].
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Calls `visit` with every key and value of shard `index` (0..[`Self::shard_count`]),
    /// under that shard's read lock only, so writers to other shards never wait for it.
    pub fn visit_shard(&self, index: usize, mut visit: impl FnMut(&[u8], &[u8])) {
        let Some(shard) = self.shards.get(index) else {
            return;
        };
        let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in shard.iter() {
            visit(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_must_be_created_before_use() {
        let store = MemoryStore::new();
        assert!(store.bucket(b"shopping").await.unwrap().is_none());
        store.create(b"shopping").await.unwrap();
        assert!(store.bucket(b"shopping").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn creating_twice_keeps_the_contents() {
        let store = MemoryStore::new();
        store.create(b"b").await.unwrap();
        store.bucket_now(b"b").unwrap().put_now(b"k", b"v");
        store.create(b"b").await.unwrap();
        assert_eq!(
            store.bucket_now(b"b").unwrap().get_now(b"k").as_deref(),
            Some(&b"v"[..])
        );
    }

    #[tokio::test]
    async fn put_get_delete_round_trip_through_any_handle() {
        let store = MemoryStore::new();
        store.create(b"b").await.unwrap();
        let writer = store.bucket(b"b").await.unwrap().unwrap();
        let reader = store.bucket(b"b").await.unwrap().unwrap();
        writer.put(b"milk", b"1").await.unwrap();
        assert_eq!(
            reader.get(b"milk").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        writer.put(b"milk", b"3").await.unwrap();
        assert_eq!(
            reader.get(b"milk").await.unwrap().as_deref(),
            Some(&b"3"[..])
        );
        writer.delete(b"milk").await.unwrap();
        assert_eq!(reader.get(b"milk").await.unwrap(), None);
        writer.delete(b"milk").await.unwrap();
    }

    #[test]
    fn buckets_are_separate_and_names_case_sensitive() {
        let store = MemoryStore::new();
        store.create_now(b"a");
        store.create_now(b"A");
        store.bucket_now(b"a").unwrap().put_now(b"k", b"1");
        assert_eq!(store.bucket_now(b"A").unwrap().get_now(b"k"), None);
        assert_eq!(store.bucket_now(b"a").unwrap().len(), 1);
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let store = MemoryStore::new();
        store.create_now(b"b");
        std::thread::scope(|s| {
            for t in 0..4 {
                let bucket = store.bucket_now(b"b").unwrap();
                s.spawn(move || {
                    for i in 0..5_000 {
                        bucket.put_now(format!("{t}-{i}").as_bytes(), b"v");
                    }
                });
            }
        });
        assert_eq!(store.bucket_now(b"b").unwrap().len(), 20_000);
    }
}
