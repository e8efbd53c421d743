//! kv-server's cluster engine: the buckets live in a Redis Cluster, behind kv-store's seam
//! ([`kv_store::Store`]), so that kv-server processes hold no data and any number of them
//! can serve the same buckets (SPEC §12, `--redis-cluster`).
//!
//! # Layout
//! - this file: [`ClusterStore`] (connecting, the report) and its options;
//! - [`layout`]: where a bucket lives (one Redis hash per bucket, under a key Redis hashes
//!   whole) and the commands and script that read and write it;
//! - `pipeline.rs`: [`ClusterPipeline`] — a connection's way in: the requests that
//!   arrived together, sent as one Redis pipeline per bucket, the buckets' pipelines
//!   concurrently, answered in request order;
//! - `failover.rs`: the redis client's connections, and replacing them when a master that
//!   stopped answering without dying was replaced by its replica (the client does not
//!   notice that by itself), with `topology.rs`: the layout the nodes report;
//! - `subscriptions.rs`: `SUBSCRIBE` over Redis' sharded pub/sub — this front-end's Redis
//!   subscriptions, fanned out to its subscribers, and ended as lost when a node's link breaks;
//! - `stats.rs`: the counters `INFO` shows in `# Cluster`.
//!
//! It is a crate of its own so that builds without the cluster (the `cluster` feature of
//! kv-server, on by default) do not compile the redis client.
//!
//! # What a reply means
//! Every reply means what it means in memory mode (`NOT FOUND` for a missing bucket, an
//! empty value for a missing key), except that a request the cluster cannot answer within
//! the timeout ([`ClusterOptions::timeout`]), or refuses, is answered `ERROR <reason>`.
//! Redirects (`MOVED`, `ASK`), `TRYAGAIN`, `CLUSTERDOWN` and lost connections are retried
//! by the redis client within that time. A master that stops answering without dying
//! (stopped, swapped out, cut off) is handled like a dead one: once its replica has taken
//! over, its buckets are served by the replica (see `failover.rs`); requests for other
//! masters' buckets never wait for it. An `ERROR` does not prove that a write was not
//! applied (it may have been, and its acknowledgement lost); a write retried after a lost
//! connection may be applied twice, which leaves the same value.
//!
//! Redis Cluster replicates asynchronously (Redis docs, "Scaling with Redis Cluster",
//! "Write safety"): a write acknowledged just before its master fails can be lost when a
//! replica takes over. With [`ClusterOptions::wait_replicas`] N > 0, each pipeline of
//! writes ends with `WAIT N timeout` and its writes are `OK` only if N replicas had them,
//! which makes that loss far less likely, not impossible.
//!
//! # Counting
//! The cluster holds the data, so this process cannot count buckets or keys without
//! scanning every node: [`kv_store::StoreReport`] says 0 for both (and `INFO` leaves out
//! `# Keyspace`), and `used_memory` is 0 (this process holds no data; `--maxmemory` does
//! not apply — Redis' own `maxmemory` does).

mod failover;
pub mod layout;
mod pipeline;
mod stats;
mod subscriptions;
mod topology;

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use kv_store::{Store, StoreReport};
use redis::cluster_async::ClusterConnection;
use redis::Script;

use failover::{Alarm, Links, Watched};

pub use pipeline::ClusterPipeline;
use stats::Counters;

/// How to reach the cluster and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Some of the cluster's nodes, as `HOST:PORT`: the client asks them for the whole
    /// cluster's layout (`CLUSTER SLOTS`), so one reachable node is enough.
    pub nodes: Vec<String>,
    /// The longest wait for the cluster per request, retries included; past it the request
    /// is answered `ERROR`. Also bounds connecting at start.
    pub timeout: Duration,
    /// Replicas that must acknowledge a write (`WAIT`) before it is `OK`; 0: none.
    pub wait_replicas: u32,
}

impl ClusterOptions {
    /// The default [`ClusterOptions::timeout`]: 2 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);

    /// Options for the cluster that `nodes` belong to, with the default timeout and no
    /// `WAIT`.
    pub fn new(nodes: Vec<String>) -> Self {
        Self {
            nodes,
            timeout: Self::DEFAULT_TIMEOUT,
            wait_replicas: 0,
        }
    }
}

/// Why [`ClusterStore::connect`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// No node was given.
    NoNodes,
    /// A node is not `HOST:PORT`.
    BadAddress(String),
    /// The redis client refused the configuration.
    Client(String),
    /// No node answered with the cluster's layout within the timeout.
    Unreachable {
        /// The nodes given.
        nodes: String,
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::NoNodes => write!(f, "--redis-cluster names no node"),
            ConnectError::BadAddress(node) => {
                write!(f, "--redis-cluster: {node:?} is not HOST:PORT")
            }
            ConnectError::Client(reason) => write!(f, "cannot set up the cluster client: {reason}"),
            ConnectError::Unreachable { nodes, reason } => {
                write!(f, "cannot reach the Redis Cluster at {nodes}: {reason}")
            }
        }
    }
}

impl std::error::Error for ConnectError {}

/// The buckets in a Redis Cluster; clones share one connection to the cluster (one
/// multiplexed connection per node, which every kv-server connection pipelines over).
#[derive(Clone)]
pub struct ClusterStore {
    shared: Arc<Shared>,
}

/// What every handle shares.
struct Shared {
    /// The redis client's connections to the cluster; replaced (rarely: after a failover
    /// behind a master that stopped answering) by `failover::watch`.
    links: RwLock<Links>,
    /// Rung when a request times out: `failover::watch` then checks the cluster's layout.
    alarm: Alarm,
    options: ClusterOptions,
    /// [`layout::WRITE_SCRIPT`], for its SHA-1 and for loading it into a node that lacks it.
    script: Script,
    stats: Counters,
    /// This front-end's subscriptions to buckets' changes.
    subscriptions: Arc<subscriptions::Hub>,
}

impl ClusterStore {
    /// Connects to the cluster `options.nodes` belong to and learns its layout, within
    /// `options.timeout`.
    ///
    /// The connections' background tasks, and the one that follows failovers the redis
    /// client does not notice (`failover.rs`), run on the calling tokio runtime, which must
    /// keep running while the store is used (from any runtime).
    pub async fn connect(options: ClusterOptions) -> Result<Self, ConnectError> {
        let urls = node_urls(&options.nodes)?;
        // A configuration the redis client refuses is not an unreachable cluster.
        failover::client(&urls, options.timeout).map_err(ConnectError::Client)?;
        let links = Links::open(&urls, &options, options.timeout)
            .await
            .map_err(|reason| ConnectError::Unreachable {
                nodes: options.nodes.join(","),
                reason,
            })?;
        let seeds: Vec<String> = options.nodes.iter().map(|n| n.trim().to_string()).collect();
        let hub = subscriptions::Hub::new(seeds.clone(), options.timeout);
        let watched = Watched::start(seeds, options.timeout).await;
        let (alarm, alarms) = failover::alarm();
        let shared = Arc::new(Shared {
            links: RwLock::new(links),
            alarm,
            script: Script::new(layout::WRITE_SCRIPT),
            stats: Counters::default(),
            subscriptions: Arc::clone(&hub),
            options,
        });
        tokio::spawn(failover::watch(Arc::downgrade(&shared), alarms, watched));
        tokio::spawn(subscriptions::sweep(Arc::downgrade(&hub)));
        Ok(Self { shared })
    }

    /// The options it was connected with.
    pub fn options(&self) -> &ClusterOptions {
        &self.shared.options
    }
}

impl Shared {
    /// The connection to send over: the one for pipelines that end in `WAIT` if `waits`
    /// (and there is one), else the main one.
    fn connection(&self, waits: bool) -> ClusterConnection {
        let links = self.links.read().unwrap_or_else(PoisonError::into_inner);
        match (&links.wait, waits) {
            (Some(connection), true) => connection.clone(),
            _ => links.main.clone(),
        }
    }
}

/// `redis://HOST:PORT` for each node, checking each is `HOST:PORT`.
fn node_urls(nodes: &[String]) -> Result<Vec<String>, ConnectError> {
    if nodes.is_empty() {
        return Err(ConnectError::NoNodes);
    }
    nodes
        .iter()
        .map(|node| {
            let node = node.trim();
            match node.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(format!("redis://{node}"))
                }
                _ => Err(ConnectError::BadAddress(node.to_string())),
            }
        })
        .collect()
}

impl Store for ClusterStore {
    type Pipeline = ClusterPipeline;

    fn pipeline(&self) -> ClusterPipeline {
        ClusterPipeline::new(Arc::clone(&self.shared))
    }

    fn report(&self) -> StoreReport {
        self.shared.report()
    }
}

impl Shared {
    /// [`Store::report`]: what the engine asked of the cluster.
    fn report(&self) -> StoreReport {
        StoreReport {
            cluster: Some(self.stats.report(self.options.wait_replicas)),
            ..StoreReport::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_must_be_host_and_port() {
        let nodes =
            |list: &[&str]| node_urls(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            nodes(&["127.0.0.1:7000", "[::1]:7001", "redis-a:6379"]),
            Ok(vec![
                "redis://127.0.0.1:7000".to_string(),
                "redis://[::1]:7001".to_string(),
                "redis://redis-a:6379".to_string()
            ])
        );
        assert_eq!(nodes(&[]), Err(ConnectError::NoNodes));
        for bad in ["127.0.0.1", ":7000", "host:port", "host:70000"] {
            assert_eq!(nodes(&[bad]), Err(ConnectError::BadAddress(bad.into())));
        }
    }
}
