//! The store behind kv-server: named buckets, each a map from byte strings to byte strings.
//!
//! # Layout
//! - this file: [`Store`], the registry the protocol code is written against, what it
//!   reports, and [`StoreError`];
//! - [`pipeline`]: the seam — a connection's one ordered path into the store, with the
//!   [`Answers`] sink that hears what became of each request;
//! - [`client`]: [`StoreClient`], a pipeline of one, for tests and tools;
//! - `conformance` (feature `conformance`): what every engine does, checked the same way
//!   for each;
//! - [`subscription`]: a bucket's changes pushed to the connections subscribed to it;
//! - [`backup`]: the whole store at one moment, streamed while it serves; the backup file's
//!   format and its reader;
//! - [`budget`]: the memory limit — what the data holds, counted; growth past it refused;
//! - [`memory`]: the in-memory engine (the default);
//! - [`durable`]: the durable engine (`--data-dir`): a checksummed journal with group
//!   commit and background snapshots, read through an in-memory mirror.
//!
//! The cluster engine (`--redis-cluster`) implements this seam in a crate of its own,
//! `kv-cluster`, so that only builds that want it compile the redis client.
//!
//! Every request returns a future, so an engine may wait on I/O (a durable engine waits
//! for its disk, a distributed one for the network). The in-memory engine's futures are
//! ready at once and are statically dispatched, so the seam costs it nothing.

pub mod backup;
pub mod budget;
pub mod client;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod durable;
pub mod memory;
pub mod pipeline;
pub mod subscription;

use std::fmt;

pub use backup::Backup;
pub use client::StoreClient;
pub use durable::{
    DurableOptions, DurableStore, FsyncPolicy, OpenError, COMMIT_LATENCY_BOUNDS_MICROS,
    COMMIT_LATENCY_BUCKETS,
};
pub use memory::{MemoryPipeline, MemoryStore};
pub use pipeline::{Answer, Answers, Op, Outcome, Pipeline};
pub use subscription::{Ended, Subscription};

/// A registry of named buckets, shared by all connections (cheap to clone). Requests
/// reach it only through a connection's [`Pipeline`].
pub trait Store: Clone + Send + Sync + 'static {
    /// One connection's way in.
    type Pipeline: Pipeline;

    /// A new pipeline for one connection.
    fn pipeline(&self) -> Self::Pipeline;

    /// What the store holds and has done, for `INFO` and metrics. Takes every bucket's
    /// shard locks in turn (to count keys): for an operator's request, not a hot path.
    fn report(&self) -> StoreReport;
}

/// What [`Store::report`] says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Buckets.
    pub buckets: u64,
    /// Keys in all buckets.
    pub keys: u64,
    /// Bytes the data holds as counted ([`budget`]).
    pub used_memory: u64,
    /// The memory limit in bytes; 0: none.
    pub max_memory: u64,
    /// For a store that keeps its data on disk.
    pub persistence: Option<Persistence>,
    /// For a store that keeps its data in a Redis Cluster: its counters. Such a store
    /// cannot count buckets and keys cheaply, and reports 0 for both.
    pub cluster: Option<ClusterStats>,
}

/// What a cluster store reports: what it asked of the cluster, and how that went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Round trips to the cluster: each pipeline or single command sent (the redis
    /// client's own retries of one after a redirect or a lost connection not counted).
    pub round_trips: u64,
    /// Requests (`CREATE`, `PUT`, `GET`, `DELETE`) carried out in those round trips.
    pub requests: u64,
    /// Requests answered `ERROR` because the cluster refused or failed them.
    pub errors: u64,
    /// Requests answered `ERROR` because the cluster did not answer within the timeout.
    pub timeouts: u64,
    /// `--cluster-wait-replicas`: replicas that must have a write before its `OK`.
    pub wait_replicas: u32,
}

/// What a durable store reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persistence {
    /// `always` or `everysec`.
    pub fsync: &'static str,
    /// Journal frames appended: group commits.
    pub commits: u64,
    /// `fdatasync` calls that made commits durable.
    pub syncs: u64,
    /// Writes answered `ERROR` because the disk failed them.
    pub write_errors: u64,
    /// Commits by how long their append and sync took: per bucket of
    /// [`COMMIT_LATENCY_BOUNDS_MICROS`], then `+Inf` (not cumulative).
    pub commit_latency: [u64; COMMIT_LATENCY_BUCKETS],
    /// The sum of those times, in nanoseconds.
    pub commit_latency_sum_nanos: u64,
    /// Size of the journal being appended to, in bytes: it grows with every commit and
    /// starts again after a compaction (docs/DURABILITY.md, "Durable mode").
    pub journal_bytes: u64,
}

/// The store could not carry out an operation (a disk error, say). The protocol answers
/// the client `ERROR <message>`; never `OK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// An error whose message is safe to show a client (one line, no secrets).
    pub fn new(message: impl Into<String>) -> Self {
        let message: String = message.into();
        // It becomes a reply line: keep it on one line.
        let message = message.replace(['\r', '\n'], " ");
        Self { message }
    }

    /// The one-line reason.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}
