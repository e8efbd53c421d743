//! The `kv-server` binary: flags → [`Config`], logging, signals, then [`serve`].

mod cli;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use kv_server::{echo::Echo, kv::Kv, limits, listener, serve, shutdown, Config, Mode};
use kv_store::MemoryStore;
use tokio_util::sync::CancellationToken;
use tracing::error;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = cli::Cli::parse().into_config();
    init_logging();
    if let Err(e) = config.validate() {
        eprintln!("kv-server: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    limits::raise_open_file_limit(config.max_connections);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kv-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
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
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = listener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let served = match config.mode {
        Mode::Echo => serve(listener, &config, Echo, shutdown).await,
        Mode::Kv => serve(listener, &config, Kv::new(MemoryStore::new()), shutdown).await,
    };
    served.map_err(|e| e.to_string())
}
