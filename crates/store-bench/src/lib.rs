//! The candidates for kv-store's concurrent map, behind one tiny trait so the benchmark
//! drives each the same way: byte-string keys, `Bytes` values, a GET returns a cheap
//! clone of the stored value (as kv-store's does), a PUT overwrites in place.
//!
//! Run `cargo bench -p store-bench`; results and the
//! decision they support are in BENCHMARKS.md.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};

use bytes::Bytes;
use foldhash::fast::RandomState;
use futures_util::FutureExt;
use kv_store::{Bucket, Store};

/// What the benchmark needs of a concurrent map.
pub trait Candidate: Send + Sync {
    fn get(&self, key: &[u8]) -> Option<Bytes>;
    fn put(&self, key: &[u8], value: &[u8]);
}

type Map = HashMap<Bytes, Bytes, RandomState>;

fn put_into(map: &mut Map, key: &[u8], value: &[u8]) {
    let value = Bytes::copy_from_slice(value);
    match map.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(Bytes::copy_from_slice(key), value);
        }
    }
}

/// One map behind one mutex: the simplest thing, and the baseline.
#[derive(Default)]
pub struct MutexMap(Mutex<Map>);

impl Candidate for MutexMap {
    fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        put_into(
            &mut self.0.lock().unwrap_or_else(PoisonError::into_inner),
            key,
            value,
        );
    }
}

/// One map behind one reader-writer lock.
#[derive(Default)]
pub struct RwLockMap(RwLock<Map>);

impl Candidate for RwLockMap {
    fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        put_into(
            &mut self.0.write().unwrap_or_else(PoisonError::into_inner),
            key,
            value,
        );
    }
}

/// What kv-server uses: kv-store's in-memory bucket (sharded hash tables behind `RwLock`s),
/// through the `Bucket` seam as the server calls it. Its futures are ready at once, so
/// `now_or_never` runs them to completion without a runtime.
pub struct KvStoreBucket(pub kv_store::memory::MemoryBucket);

impl Default for KvStoreBucket {
    fn default() -> Self {
        let store = kv_store::MemoryStore::new();
        let bucket = store
            .create(b"bench")
            .now_or_never()
            .and_then(|_| store.bucket(b"bench").now_or_never());
        match bucket {
            Some(Ok(Some(bucket))) => Self(bucket),
            _ => unreachable!("the in-memory store creates and finds a bucket at once"),
        }
    }
}

impl Candidate for KvStoreBucket {
    fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.0
            .get(key)
            .now_or_never()
            .and_then(Result::ok)
            .flatten()
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        let _ = self.0.put(key, value).now_or_never();
    }
}

/// dashmap: sharded `RwLock`s, like kv-store's, in a popular crate.
#[derive(Default)]
pub struct DashMapCandidate(dashmap::DashMap<Bytes, Bytes, RandomState>);

impl Candidate for DashMapCandidate {
    fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.0.get(key).map(|v| v.value().clone())
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        let value = Bytes::copy_from_slice(value);
        match self.0.get_mut(key) {
            Some(mut slot) => *slot = value,
            None => {
                self.0.insert(Bytes::copy_from_slice(key), value);
            }
        }
    }
}

/// papaya: a lock-free map (readers never block, epoch-based reclamation).
#[derive(Default)]
pub struct PapayaMap(papaya::HashMap<Bytes, Bytes, RandomState>);

impl Candidate for PapayaMap {
    fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.0.pin().get(key).cloned()
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        self.0
            .pin()
            .insert(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
    }
}
