//! The metrics endpoint (`--metrics-port`, SPEC §11): `GET /metrics` in OpenMetrics or the
//! Prometheus text format 0.0.4, as the request's `Accept` header negotiates, `/livez`,
//! `/readyz`. It runs on the main runtime, beside the acceptor and the signal handler,
//! never on the event loops that serve clients.
//!
//! # Layout
//! - `collector.rs`: the figures and their names, read at each scrape.
//! - `process.rs`: the process's CPU, memory and descriptors from `/proc/self`.
//! - `observed.rs`: where the endpoint finds the machinery's counters once serving starts.
//! - `negotiate.rs`: which format `/metrics` answers in, from the `Accept` header.
//! - `routes.rs`: what each path answers.
//! - `http.rs`: hyper's server on the port, and the bounds that keep it harmless.

mod collector;
mod http;
mod negotiate;
mod observed;
mod process;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use collector::{Sources, StoreReader};
pub use observed::{Observed, ServerCounters};

/// Binds `addr` and serves the endpoint on a task of the current runtime until the process
/// ends (it stays up during a graceful shutdown, so `/readyz` can say 503). `shutdown` is
/// the server's shutdown token. Logs `Serving metrics on port N`.
pub async fn start(
    addr: SocketAddr,
    sources: Sources,
    shutdown: CancellationToken,
) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the metrics address: {e}"))?;
    let mut registry = Registry::with_prefix("kv");
    registry.register_collector(Box::new(collector::KvCollector(sources)));
    let routes = Arc::new(routes::Routes::new(registry, shutdown));
    tokio::spawn(http::serve(listener, routes));
    info!("Serving metrics on port {}", bound.port());
    Ok(bound)
}
