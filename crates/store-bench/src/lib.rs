//! The candidates for kv-store's concurrent map, behind one tiny trait so the benchmark
//! drives each the same way: byte-string keys, `Bytes` values, a GET copies the stored
//! value into a reply buffer under the map's lock (as kv-store's does), a PUT overwrites
//! in place. Each thread works through a handle of its own, as each connection works
//! through its own pipeline.
//!
//! Run `cargo bench -p store-bench`; results and the
//! decision they support are in BENCHMARKS.md.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};

use bytes::{Bytes, BytesMut};
use foldhash::fast::RandomState;
use futures_util::FutureExt;
use kv_store::{Answer, Answers, MemoryPipeline, MemoryStore, Op, Pipeline, Store};

/// What the benchmark needs of a concurrent map.
pub trait Candidate: Send + Sync {
    /// What one thread keeps to work on the map (nothing, for most).
    type Local: Send;

    /// A thread's handle.
    fn local(&self) -> Self::Local;

    /// Appends the value of `key` to `out`; whether there was one.
    fn get(&self, local: &mut Self::Local, key: &[u8], out: &mut BytesMut) -> bool;

    fn put(&self, local: &mut Self::Local, key: &[u8], value: &[u8]);
}

/// The copy a GET makes into the reply, and whether it found anything.
fn copy_into(value: Option<&Bytes>, out: &mut BytesMut) -> bool {
    value.map(|value| out.extend_from_slice(value)).is_some()
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
    type Local = ();
    fn local(&self) {}
    fn get(&self, _: &mut (), key: &[u8], out: &mut BytesMut) -> bool {
        copy_into(
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key),
            out,
        )
    }
    fn put(&self, _: &mut (), key: &[u8], value: &[u8]) {
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
    type Local = ();
    fn local(&self) {}
    fn get(&self, _: &mut (), key: &[u8], out: &mut BytesMut) -> bool {
        copy_into(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key),
            out,
        )
    }
    fn put(&self, _: &mut (), key: &[u8], value: &[u8]) {
        put_into(
            &mut self.0.write().unwrap_or_else(PoisonError::into_inner),
            key,
            value,
        );
    }
}

/// What kv-server uses: kv-store's in-memory engine (sharded hash tables behind
/// `RwLock`s), through a pipeline per thread as the server's connections use it. Its
/// futures are ready at once, so `now_or_never` runs them without a runtime.
pub struct KvStore(MemoryStore);

const BUCKET: &[u8] = b"bench";

impl Default for KvStore {
    fn default() -> Self {
        let store = MemoryStore::new();
        let _ = store
            .pipeline()
            .submit(BUCKET, Op::Create, &mut Found::default())
            .now_or_never();
        Self(store)
    }
}

/// A GET's answer, copied into the reply buffer as the server's session does.
#[derive(Default)]
struct Found<'a>(Option<&'a mut BytesMut>, bool);

impl Answers for Found<'_> {
    fn answer(&mut self, answer: Answer<'_>) {
        if let (Answer::Value(Some(value)), Some(out)) = (answer, &mut self.0) {
            out.extend_from_slice(value);
            self.1 = true;
        }
    }
}

impl Candidate for KvStore {
    type Local = MemoryPipeline;
    fn local(&self) -> MemoryPipeline {
        self.0.pipeline()
    }
    fn get(&self, local: &mut MemoryPipeline, key: &[u8], out: &mut BytesMut) -> bool {
        let mut found = Found(Some(out), false);
        let _ = local
            .submit(BUCKET, Op::Get { key }, &mut found)
            .now_or_never();
        found.1
    }
    fn put(&self, local: &mut MemoryPipeline, key: &[u8], value: &[u8]) {
        let op = Op::Put { key, value };
        let _ = local
            .submit(BUCKET, op, &mut Found::default())
            .now_or_never();
    }
}

/// dashmap: sharded `RwLock`s, like kv-store's, in a popular crate.
#[derive(Default)]
pub struct DashMapCandidate(dashmap::DashMap<Bytes, Bytes, RandomState>);

impl Candidate for DashMapCandidate {
    type Local = ();
    fn local(&self) {}
    fn get(&self, _: &mut (), key: &[u8], out: &mut BytesMut) -> bool {
        copy_into(self.0.get(key).as_deref(), out)
    }
    fn put(&self, _: &mut (), key: &[u8], value: &[u8]) {
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
    type Local = ();
    fn local(&self) {}
    fn get(&self, _: &mut (), key: &[u8], out: &mut BytesMut) -> bool {
        copy_into(self.0.pin().get(key), out)
    }
    fn put(&self, _: &mut (), key: &[u8], value: &[u8]) {
        self.0
            .pin()
            .insert(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
    }
}
