//! The cluster engine's counters, for `INFO`'s `# Cluster` section: relaxed atomics, bumped
//! once per round trip or failed request (a round trip costs far more than the bump).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use kv_store::{ClusterStats, StoreError};
use tracing::debug;

/// What the engine asked of the cluster, and how that went.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    round_trips: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
}

impl Counters {
    /// A pipeline or command went to the cluster.
    pub(crate) fn round_trip(&self) {
        self.round_trips.fetch_add(1, Relaxed);
    }

    /// `requests` client requests are on their way.
    pub(crate) fn sent(&self, requests: usize) {
        self.requests.fetch_add(requests as u64, Relaxed);
    }

    /// `requests` requests failed with `message`, returned as their error.
    pub(crate) fn failed(&self, requests: usize, message: String) -> StoreError {
        self.errors.fetch_add(requests as u64, Relaxed);
        debug!("cluster request failed: {message}");
        StoreError::new(message)
    }

    /// `requests` requests got no answer in time.
    pub(crate) fn timed_out(&self, requests: usize) {
        self.timeouts.fetch_add(requests as u64, Relaxed);
    }

    /// The counters now.
    pub(crate) fn report(&self, wait_replicas: u32) -> ClusterStats {
        ClusterStats {
            round_trips: self.round_trips.load(Relaxed),
            requests: self.requests.load(Relaxed),
            errors: self.errors.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            wait_replicas,
        }
    }
}
