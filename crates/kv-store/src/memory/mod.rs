//! The in-memory engine: the guide's buckets, living in memory.
//!
//! The registry is a read-mostly map of names to buckets behind a `RwLock` (buckets are
//! created rarely and looked up on every request; callers also keep handles). Each bucket
//! is split into shards, each a hash table behind its own std `RwLock`, so two cores rarely
//! touch the same lock and a read never blocks a read. Why this structure and not another
//! is measured in `crates/store-bench` (see BENCHMARKS.md). Std locks are right here: no
//! critical section awaits or does more than a hash-table operation.
//!
//! A key is hashed once per operation: the same hash picks the shard (from its middle
//! bits) and finds the key in the shard's table (which uses its low bits for the slot and
//! its top 7 bits as the tag), so the shards are `hashbrown::HashTable`s probed with that
//! hash rather than `HashMap`s that would hash the key again.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use foldhash::fast::RandomState;
use hashbrown::hash_table::{Entry, HashTable};

use crate::budget::{bucket_cost, delete_delta, put_delta, Budget, OverLimit};
use crate::subscription::{self, Subscription, Topic};
use crate::{Answer, Answers, Op, Pipeline, Store, StoreError, StoreReport};
use frozen::{Epochs, ShardState};
use kv_protocol::Event;

/// Shards per bucket: a power of two comfortably above the core count, so that lock
/// collisions between concurrent requests are rare.
const SHARDS: usize = 64;

/// The registry of buckets; clones share it. One pointer wide: every connection's pipeline
/// holds one, and what a session holds is paid for by every idle client.
#[derive(Clone, Default)]
pub struct MemoryStore(Arc<Registry>);

#[derive(Default)]
struct Registry {
    buckets: RwLock<HashMap<Bytes, MemoryBucket, RandomState>>,
    /// What the data holds, against `--maxmemory` ([`crate::budget`]); shared with every
    /// bucket, which counts its entries in it.
    budget: Arc<Budget>,
    /// Which frozen view (a backup) is reading the store, if any; shared with every bucket,
    /// whose writers keep what the view still needs ([`frozen`]).
    epochs: Arc<Epochs>,
}

/// Whether a write must fit the memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Refused ([`OverLimit`]) if it would take the data past the limit.
    WithinLimit,
    /// Already decided on (replayed from disk, or admitted by the durable committer):
    /// counted, never refused.
    Decided,
}

/// The reply to a write the memory limit refused.
pub(crate) fn out_of_memory() -> StoreError {
    StoreError::new("out of memory")
}

impl MemoryStore {
    /// An empty store without a memory limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that keeps what its data holds under `limit` bytes (0: no limit):
    /// a write that would need more is refused with `out of memory`.
    pub fn with_limit(limit: u64) -> Self {
        Self(Arc::new(Registry {
            buckets: RwLock::default(),
            budget: Arc::new(Budget::new(limit)),
            epochs: Arc::default(),
        }))
    }

    /// Bytes the data holds as counted ([`crate::budget`]), and the limit (0: none).
    pub fn memory(&self) -> (u64, u64) {
        (self.0.budget.used(), self.0.budget.limit())
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.0.budget
    }

    /// Synchronous `create`, for callers outside async code.
    pub(crate) fn create_now(&self, name: &[u8], admit: Admit) -> Result<(), OverLimit> {
        if self.bucket_now(name).is_some() {
            return Ok(());
        }
        let mut buckets = self
            .0
            .buckets
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if buckets.contains_key(name) {
            return Ok(());
        }
        let cost = bucket_cost(name.len());
        match admit {
            Admit::WithinLimit => self.0.budget.try_take(cost)?,
            Admit::Decided => self.0.budget.take(cost),
        }
        let name = Bytes::copy_from_slice(name);
        let bucket = MemoryBucket::new(
            name.clone(),
            Arc::clone(&self.0.budget),
            Arc::clone(&self.0.epochs),
        );
        buckets.insert(name, bucket);
        Ok(())
    }

    /// Number of buckets and of keys in all of them.
    pub fn stats(&self) -> (usize, usize) {
        let buckets = self
            .0
            .buckets
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        (buckets.len(), buckets.values().map(MemoryBucket::len).sum())
    }

    /// Synchronous `bucket`.
    pub(crate) fn bucket_now(&self, name: &[u8]) -> Option<MemoryBucket> {
        let buckets = self
            .0
            .buckets
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        buckets.get(name).cloned()
    }
}

impl Store for MemoryStore {
    type Pipeline = MemoryPipeline;

    fn pipeline(&self) -> MemoryPipeline {
        MemoryPipeline {
            buckets: Buckets::new(self.clone()),
        }
    }

    fn report(&self) -> StoreReport {
        let (buckets, keys) = self.stats();
        let (used_memory, max_memory) = self.memory();
        StoreReport {
            buckets: buckets as u64,
            keys: keys as u64,
            used_memory,
            max_memory,
            persistence: None,
            cluster: None,
        }
    }
}

/// A connection's way to its buckets: the registry, and the bucket it used last. Most
/// clients work in one bucket, so this saves a registry lookup (a shared lock) per request.
/// The cache is the handle alone, which knows its name. Safe because buckets are never
/// removed.
pub(crate) struct Buckets {
    store: MemoryStore,
    last: Option<MemoryBucket>,
}

impl Buckets {
    pub(crate) fn new(store: MemoryStore) -> Self {
        Self { store, last: None }
    }

    /// The registry.
    pub(crate) fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// [`Pipeline::subscribe`] on these buckets: a subscription to the bucket named
    /// `name`, if it exists.
    pub(crate) fn subscribe(
        &mut self,
        name: &[u8],
        buffer_bytes: usize,
    ) -> Result<Option<Subscription>, StoreError> {
        Ok(self.get(name).map(|b| b.topic().subscribe(buffer_bytes)))
    }

    /// [`Pipeline::subscribers`] on these buckets.
    pub(crate) fn subscribers(&mut self, name: &[u8]) -> Result<Option<usize>, StoreError> {
        Ok(self.get(name).map(|b| b.topic().subscribers()))
    }

    /// The bucket named `name`, if it exists; lent from the cache, not cloned (a clone is
    /// an atomic operation per request on the hot path).
    pub(crate) fn get(&mut self, name: &[u8]) -> Option<&MemoryBucket> {
        let cached = matches!(&self.last, Some(bucket) if bucket.name() == name);
        if !cached {
            self.last = Some(self.store.bucket_now(name)?);
        }
        self.last.as_ref()
    }
}

/// One shard: keys with their values, found by the bucket's hash of the key, and what a
/// running frozen view still needs from it.
type Shard = RwLock<ShardTable>;

/// What a shard's lock guards.
struct ShardTable {
    entries: HashTable<(Bytes, Bytes)>,
    frozen: ShardState,
}

/// One bucket: sharded tables; clones share it. One pointer wide, so a connection that
/// keeps the bucket it used last (as KV sessions do) pays 8 bytes for it while idle.
#[derive(Clone)]
pub(crate) struct MemoryBucket(Arc<Tables>);

/// What a bucket's handles share, in one allocation.
struct Tables {
    /// As given to `create`: a handle says which bucket it is.
    name: Bytes,
    /// Hashes keys, for both the shard choice and the shard's table.
    hasher: RandomState,
    /// The store's, which its entries count against.
    budget: Arc<Budget>,
    /// The store's: whether a frozen view needs values kept before they change.
    epochs: Arc<Epochs>,
    /// Who is subscribed to its changes.
    topic: Arc<Topic>,
    shards: [Shard; SHARDS],
}

impl MemoryBucket {
    fn hash(&self, key: &[u8]) -> u64 {
        self.0.hasher.hash_one(key)
    }

    /// The name it was created with.
    pub(crate) fn name(&self) -> &[u8] {
        &self.0.name
    }

    /// Who is subscribed to its changes.
    pub(crate) fn topic(&self) -> &Arc<Topic> {
        &self.0.topic
    }

    /// Publishes `event`, a change that has just taken effect, if anyone is subscribed
    /// (one relaxed load otherwise).
    pub(crate) fn publish(&self, event: Event<'_>) {
        if self.0.topic.has_subscribers() {
            self.0.topic.publish(&subscription::encode(event));
        }
    }

    /// The bucket's name, shared (no copy).
    pub(crate) fn name_bytes(&self) -> &Bytes {
        &self.0.name
    }

    /// The shard that holds `key`, chosen by bits of `hash` that the shard's table does
    /// not use (it takes the low bits for the slot and the top 7 as the tag), so the keys
    /// of one shard still spread over its whole table.
    fn shard(&self, hash: u64) -> &Shard {
        &self.0.shards[(hash >> 32) as usize % SHARDS]
    }

    /// An empty bucket named `name`, counting its entries against `budget`, created after
    /// every frozen view begun so far by `epochs`.
    fn new(name: Bytes, budget: Arc<Budget>, epochs: Arc<Epochs>) -> Self {
        let shards = std::array::from_fn(|_| {
            RwLock::new(ShardTable {
                entries: HashTable::new(),
                frozen: epochs.new_shard(),
            })
        });
        Self(Arc::new(Tables {
            name,
            hasher: RandomState::default(),
            budget,
            epochs,
            topic: Arc::default(),
            shards,
        }))
    }

    /// Synchronous `put`. Key and value are copied into their own allocations, so they
    /// never pin the connection's read buffer. What it adds to the data is counted under
    /// the shard's lock, so the check and the write are one step.
    pub(crate) fn put_now(&self, key: &[u8], value: &[u8], admit: Admit) -> Result<(), OverLimit> {
        let hash = self.hash(key);
        let mut shard = self
            .shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let ShardTable { entries, frozen } = &mut *shard;
        let entry = entries.entry(hash, |(k, _)| k[..] == *key, |(k, _)| self.hash(k));
        let now = match &entry {
            Entry::Occupied(slot) => Some(slot.get().1.len()),
            Entry::Vacant(_) => None,
        };
        let delta = put_delta(key.len(), now, value.len());
        match admit {
            Admit::WithinLimit => self.0.budget.try_adjust(delta)?,
            Admit::Decided => self.0.budget.adjust(delta),
        }
        let value = Bytes::copy_from_slice(value);
        match entry {
            Entry::Occupied(mut slot) => {
                let before = std::mem::replace(&mut slot.get_mut().1, value);
                frozen.before_change(&self.0.epochs, key, || Some(before));
            }
            Entry::Vacant(slot) => {
                slot.insert((Bytes::copy_from_slice(key), value));
                frozen.before_change(&self.0.epochs, key, || None);
            }
        }
        Ok(())
    }

    /// Runs `look` on `key`'s entry (or `None`) under its shard's read lock: the one
    /// lookup every read below shares. Generic, so each caller's closure is inlined.
    #[inline]
    fn peek<R>(&self, key: &[u8], look: impl FnOnce(Option<&(Bytes, Bytes)>) -> R) -> R {
        let hash = self.hash(key);
        let shard = self
            .shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        look(shard.entries.find(hash, |(k, _)| k[..] == *key))
    }

    /// The length of `key`'s value, if it has one: what a write to it is charged against
    /// ([`crate::budget::put_delta`]), for the durable committer's admission.
    pub(crate) fn value_len(&self, key: &[u8]) -> Option<usize> {
        self.peek(key, |entry| entry.map(|(_, value)| value.len()))
    }

    /// The value of `key`: a reference-count increment, no copy.
    #[cfg(test)]
    pub(crate) fn get_now(&self, key: &[u8]) -> Option<Bytes> {
        self.peek(key, |entry| entry.map(|(_, value)| value.clone()))
    }

    /// Answers a `GET` of `key` with the value lent from the shard, under its read lock:
    /// the sink copies it where it goes (a reply), and no reference count is touched, so
    /// readers on other cores do not contend on the value's counter.
    pub(crate) fn answer_get(&self, key: &[u8], answers: &mut impl Answers) {
        self.peek(key, |entry| {
            answers.answer(Answer::Value(entry.map(|(_, value)| &value[..])));
        });
    }

    /// Synchronous `delete`.
    pub(crate) fn delete_now(&self, key: &[u8]) {
        let hash = self.hash(key);
        let mut shard = self
            .shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let ShardTable { entries, frozen } = &mut *shard;
        if let Ok(slot) = entries.find_entry(hash, |(k, _)| k[..] == *key) {
            let ((key, value), _) = slot.remove();
            let delta = delete_delta(key.len(), Some(value.len()));
            self.0.budget.adjust(delta);
            frozen.before_change(&self.0.epochs, &key, || Some(value));
        }
    }

    /// Number of keys (takes every shard's lock in turn; for tests and stats).
    pub(crate) fn len(&self) -> usize {
        self.0
            .shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }
}

/// The in-memory engine gains nothing from holding requests back: each is carried out and
/// answered at once, so pipelined requests cost what single ones do.
pub struct MemoryPipeline {
    buckets: Buckets,
}

impl MemoryPipeline {
    /// Carries out `op` on the bucket named `name` and answers it.
    fn carry_out(&mut self, name: &[u8], op: Op<'_>, answers: &mut impl Answers) {
        let Some(bucket) = self.buckets.get(name) else {
            return match op {
                Op::Create => {
                    let created = self.buckets.store().create_now(name, Admit::WithinLimit);
                    answer_write(created, answers);
                }
                _ => answers.answer(Answer::NoBucket),
            };
        };
        match op {
            Op::Create => answers.answer(Answer::Done),
            Op::Put { key, value } => {
                let put = bucket.put_now(key, value, Admit::WithinLimit);
                if put.is_ok() {
                    bucket.publish(Event::Set { key, value });
                }
                answer_write(put, answers);
            }
            Op::Get { key } => bucket.answer_get(key, answers),
            Op::Delete { key } => {
                bucket.delete_now(key);
                bucket.publish(Event::Deleted { key });
                answers.answer(Answer::Done);
            }
        }
    }
}

/// `Done`, or the memory limit's refusal.
fn answer_write(written: Result<(), OverLimit>, answers: &mut impl Answers) {
    match written {
        Ok(()) => answers.answer(Answer::Done),
        Err(OverLimit) => answers.answer(Answer::Failed(&out_of_memory())),
    }
}

impl Pipeline for MemoryPipeline {
    async fn submit<A: Answers + Send>(&mut self, bucket: &[u8], op: Op<'_>, answers: &mut A) {
        self.carry_out(bucket, op, answers);
    }

    async fn flush<A: Answers + Send>(&mut self, _answers: &mut A) {}

    async fn subscribe(
        &mut self,
        bucket: &[u8],
        buffer_bytes: usize,
    ) -> Result<Option<Subscription>, StoreError> {
        self.buckets.subscribe(bucket, buffer_bytes)
    }

    async fn subscribers(&mut self, bucket: &[u8]) -> Result<Option<usize>, StoreError> {
        self.buckets.subscribers(bucket)
    }

    async fn backup(&mut self) -> Result<crate::Backup, StoreError> {
        crate::Backup::start(self.buckets.store())
    }

    fn report(&self) -> StoreReport {
        self.buckets.store().report()
    }
}

/// Reading a whole store, shard by shard: what a durable snapshot is made from.
impl MemoryStore {
    /// Every bucket with its name (a point-in-time list; buckets are never removed).
    pub(crate) fn buckets(&self) -> Vec<(Bytes, MemoryBucket)> {
        let buckets = self
            .0
            .buckets
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        buckets
            .iter()
            .map(|(name, bucket)| (name.clone(), bucket.clone()))
            .collect()
    }
}

impl MemoryBucket {
    /// Number of shards, for [`Self::visit_shard`].
    pub(crate) fn shard_count(&self) -> usize {
        self.0.shards.len()
    }

    /// Calls `visit` with every key and value of shard `index` (0..[`Self::shard_count`]),
    /// under that shard's read lock only, so writers to other shards never wait for it.
    pub(crate) fn visit_shard(&self, index: usize, mut visit: impl FnMut(&[u8], &[u8])) {
        let Some(shard) = self.0.shards.get(index) else {
            return;
        };
        let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in shard.entries.iter() {
            visit(key, value);
        }
    }
}

mod frozen;
#[cfg(test)]
mod tests;

pub use frozen::AlreadyRunning;
pub(crate) use frozen::FrozenView;
