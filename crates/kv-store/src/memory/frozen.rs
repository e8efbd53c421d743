//! A frozen view: the store as it was at one moment, read while writes go on.
//!
//! A backup must hold the data exactly as it was at one point in the order writes took
//! effect, without stopping writers and without copying the data. The view is taken by
//! incrementing an epoch (one atomic store, under the registry's write lock so that a
//! bucket is either created before it or after it); from then on, a writer about to change
//! a key in a shard the view has not read yet first keeps the key's value from before the
//! change (its *pre-image*: the value it replaces is moved there, never copied). The view
//! reads each shard key by key, preferring the pre-image, and then marks the shard read and
//! drops its pre-images. What it costs beyond the data is the pre-images of the keys
//! changed while it runs, in shards it has not read yet: like the pages a forked Redis
//! `BGSAVE` copies on write, it grows with the writes during the backup, not with the data.
//!
//! Why this is one moment: a writer loads the epoch under its shard's write lock, and the
//! view reads a shard under the same lock, so every write either loaded the old epoch
//! (it is in the view: it took effect before the view read its shard) or the new one (it
//! kept a pre-image: not in the view). A write that completed before another began loaded
//! an epoch no newer than the later one did (the atomic's coherence), so the writes in the
//! view are a prefix of every order the clients could have observed: everything
//! acknowledged before the view began is in it, and for each connection, a prefix of its
//! writes. `tests.rs`, `a_frozen_view_holds_a_prefix_of_every_writers_writes`, holds it.
//!
//! One view at a time: a second is refused while one runs ([`AlreadyRunning`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::PoisonError;

use bytes::Bytes;
use foldhash::fast::RandomState;

use super::{MemoryBucket, MemoryStore};

/// Which view (if any) is reading the store: shared by the registry and every bucket.
#[derive(Debug, Default)]
pub(crate) struct Epochs {
    /// The running view's epoch; 0: none runs.
    running: AtomicU64,
    /// The newest epoch begun: a bucket created now has nothing to keep for any view up to
    /// it. Changed only under the registry's write lock.
    begun: AtomicU64,
}

impl Epochs {
    /// The running view's epoch (0: none). Loaded by a writer under its shard's write lock
    /// (the module's note says why there).
    fn running(&self) -> u64 {
        self.running.load(Ordering::Acquire)
    }

    /// What a new shard starts as read by: every view begun so far.
    pub(super) fn new_shard(&self) -> ShardState {
        ShardState {
            read_by: self.begun.load(Ordering::Acquire),
            pre_images: None,
        }
    }
}

/// What a running view still needs from one shard; kept in the shard, under its lock.
#[derive(Default)]
pub(crate) struct ShardState {
    /// The newest view that has read this shard.
    read_by: u64,
    /// Values of keys changed since the running view began, as they were then (`None`: the
    /// key did not exist). Only while a view that has not read the shard runs. Boxed: one
    /// pointer in each of a bucket's 64 shards while no backup runs, not a whole map.
    #[allow(clippy::box_collection)]
    pre_images: Option<Box<HashMap<Bytes, Option<Bytes>, RandomState>>>,
}

impl ShardState {
    /// A write is about to change `key`, whose value until now is `before`; called under the
    /// shard's write lock. Keeps `before` if a running view has not read the shard and this
    /// is the key's first change since the view began. One atomic load otherwise.
    #[inline]
    pub(super) fn before_change(
        &mut self,
        epochs: &Epochs,
        key: &[u8],
        before: impl FnOnce() -> Option<Bytes>,
    ) {
        let running = epochs.running();
        if running == 0 || self.read_by >= running {
            return;
        }
        let pre_images = self.pre_images.get_or_insert_with(Box::default);
        if !pre_images.contains_key(key) {
            pre_images.insert(Bytes::copy_from_slice(key), before());
        }
    }

    /// The view `epoch` has read this shard: nothing more to keep for it.
    fn read(&mut self, epoch: u64) {
        self.read_by = self.read_by.max(epoch);
        self.pre_images = None;
    }
}

/// Another frozen view (a backup) is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyRunning;

/// The keys of one shard as the view sees them, packed in one buffer.
#[derive(Default)]
pub(crate) struct ShardKeys {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl ShardKeys {
    fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    /// The keys, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.bytes[start..end])
    }
}

/// The store at one moment, read shard by shard. Dropping it ends the view (finished or
/// not): writers stop keeping pre-images and those kept are freed.
pub(crate) struct FrozenView {
    store: MemoryStore,
    epoch: u64,
    /// The buckets that existed when the view began, with their names.
    buckets: Vec<(Bytes, MemoryBucket)>,
}

impl FrozenView {
    /// Begins a view of `store` as it is now; refused while another runs.
    pub(crate) fn begin(store: &MemoryStore) -> Result<Self, AlreadyRunning> {
        let registry = &store.0;
        let buckets = registry
            .buckets
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let epochs = &registry.epochs;
        if epochs.running.load(Ordering::Acquire) != 0 {
            return Err(AlreadyRunning);
        }
        let epoch = epochs.begun.load(Ordering::Acquire) + 1;
        epochs.begun.store(epoch, Ordering::Release);
        epochs.running.store(epoch, Ordering::Release);
        let buckets = buckets
            .iter()
            .map(|(name, bucket)| (name.clone(), bucket.clone()))
            .collect();
        Ok(Self {
            store: store.clone(),
            epoch,
            buckets,
        })
    }

    /// The buckets the view holds, with their names.
    pub(crate) fn buckets(&self) -> &[(Bytes, MemoryBucket)] {
        &self.buckets
    }

    /// The keys shard `shard` of `bucket` held when the view began (and maybe some it did
    /// not: [`Self::value`] says `None` for those).
    pub(crate) fn keys(&self, bucket: &MemoryBucket, shard: usize) -> ShardKeys {
        let mut keys = ShardKeys::default();
        let Some(shard) = bucket.0.shards.get(shard) else {
            return keys;
        };
        let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
        for (key, _) in shard.entries.iter() {
            keys.push(key);
        }
        if let Some(pre_images) = &shard.frozen.pre_images {
            // Deleted since the view began: only in the pre-images.
            for key in pre_images.keys() {
                let hash = bucket.hash(key);
                if shard.entries.find(hash, |(k, _)| k == key).is_none() {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// Calls `look` with `key`'s value when the view began (`None`: it had none), under
    /// its shard's read lock.
    pub(crate) fn value<R>(
        &self,
        bucket: &MemoryBucket,
        key: &[u8],
        look: impl FnOnce(Option<&[u8]>) -> R,
    ) -> R {
        let hash = bucket.hash(key);
        let shard = bucket
            .shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(before) = shard.frozen.pre_images.as_ref().and_then(|p| p.get(key)) {
            return look(before.as_deref());
        }
        look(
            shard
                .entries
                .find(hash, |(k, _)| k[..] == *key)
                .map(|(_, v)| &v[..]),
        )
    }

    /// The view has read shard `shard` of `bucket`: its pre-images are freed.
    pub(crate) fn done_with(&self, bucket: &MemoryBucket, shard: usize) {
        if let Some(shard) = bucket.0.shards.get(shard) {
            let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
            shard.frozen.read(self.epoch);
        }
    }
}

impl Drop for FrozenView {
    fn drop(&mut self) {
        // Writers stop keeping pre-images first; then what shards not read yet kept goes.
        self.store.0.epochs.running.store(0, Ordering::Release);
        for (_, bucket) in &self.buckets {
            for shard in 0..bucket.shard_count() {
                self.done_with(bucket, shard);
            }
        }
    }
}
