//! The `kv-server` binary: flags → [`Config`], logging, signals, then [`serve`].

mod cli;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use kv_server::{echo::Echo, kv::Kv, limits, listener, serve, shutdown, Config, Mode};
use kv_store::{DurableOptions, DurableStore, MemoryStore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// jemalloc rather than the system allocator: an idle connection costs about a third less
/// with it, and small allocations are faster (BENCHMARKS.md). The `jemalloc` feature (on
/// by default) chooses it; embedders of the library pick their own.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let config = cli::Cli::parse().into_config();
    init_logging();
    if let Err(e) = config.validate() {
        eprintln!("kv-server: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    limits::raise_open_file_limit(config.max_connections);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.workers {
        builder.worker_threads(workers);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kv-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kv-server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` picks levels, `info` by default.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

async fn run(config: Config) -> Result<(), String> {
    let shutdown = CancellationToken::new();
    shutdown::install(shutdown.clone())
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    // Open storage before binding: a refused data dir must stop start-up before clients
    // are told the port is ready.
    let durable = match (&config.data_dir, config.mode) {
        (Some(dir), Mode::Kv) => {
            let options = DurableOptions {
                fsync: config.fsync,
                compact_after_bytes: config.compact_after_bytes,
            };
            let store = DurableStore::open_with(dir, options).map_err(|e| e.to_string())?;
            let (buckets, keys) = store.stats();
            info!(
                "durable mode: {} ({buckets} buckets, {keys} keys loaded)",
                dir.display()
            );
            Some(store)
        }
        (Some(_), Mode::Echo) => {
            warn!("--data-dir is ignored in echo mode");
            None
        }
        (None, _) => None,
    };
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = listener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let served = match (config.mode, durable) {
        (Mode::Echo, _) => serve(listener, &config, Echo, shutdown).await,
        (Mode::Kv, None) => serve(listener, &config, Kv::new(MemoryStore::new()), shutdown).await,
        (Mode::Kv, Some(store)) => {
            let served = serve(listener, &config, Kv::new(store.clone()), shutdown).await;
            // Storage last: every acknowledged write is already durable; this finishes a
            // running snapshot and releases the data directory.
            store.close().await;
            served
        }
    };
    served.map_err(|e| e.to_string())
}
