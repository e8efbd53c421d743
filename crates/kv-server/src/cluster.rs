//! `--redis-cluster`: connecting the cluster engine at start (SPEC §12), or refusing the flag
//! in a build without it (the `cluster` feature, on by default).

#[cfg(feature = "cluster")]
use tracing::info;
use tracing::warn;

use crate::settings::{Mode, Settings};

/// The cluster store `--redis-cluster` asks for, connected before the port is bound (a
/// cluster that cannot be reached stops start-up, as a refused data dir does); `None`
/// without the flag, or in echo mode.
#[cfg(feature = "cluster")]
pub async fn connect(settings: &Settings) -> Result<Option<kv_cluster::ClusterStore>, String> {
    let Some(cluster) = &settings.cluster else {
        return Ok(None);
    };
    if settings.mode == Mode::Echo {
        warn!("--redis-cluster is ignored in echo mode");
        return Ok(None);
    }
    let options = kv_cluster::ClusterOptions {
        nodes: cluster.nodes.clone(),
        timeout: cluster.timeout,
        wait_replicas: cluster.wait_replicas,
    };
    let store = kv_cluster::ClusterStore::connect(options)
        .await
        .map_err(|e| e.to_string())?;
    if settings.max_memory > 0 {
        warn!(
            "--maxmemory does not apply with --redis-cluster: set maxmemory on the cluster's nodes"
        );
    }
    info!(
        "cluster mode: buckets in the Redis Cluster at {} (timeout {} ms, waiting for {} replica(s))",
        cluster.nodes.join(","),
        cluster.timeout.as_millis(),
        cluster.wait_replicas
    );
    Ok(Some(store))
}

/// Without the `cluster` feature the flag cannot be served: say so at start.
#[cfg(not(feature = "cluster"))]
pub async fn connect(settings: &Settings) -> Result<Option<std::convert::Infallible>, String> {
    match (&settings.cluster, settings.mode) {
        (Some(_), Mode::Kv) => Err("--redis-cluster: this kv-server was built without the \
                                    `cluster` feature"
            .into()),
        (Some(_), Mode::Echo) => {
            warn!("--redis-cluster is ignored in echo mode");
            Ok(None)
        }
        (None, _) => Ok(None),
    }
}
