//! The `kv-server` binary: flags → [`Settings`], logging, signals, then [`serve`].

mod activation;
mod cli;
mod cluster;
mod lifecycle;
mod log_writer;
mod metrics;
mod notify;
mod reload;
mod settings;
mod signals;
mod tools;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kv_server::kv::Kv;
use kv_store::{DurableStore, MemoryStore, Store};
use line_server::{adopt, bind, serve, Auth, Echo, Faulty, Protocol, ServerConfig, SharedPassword};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use lifecycle::Lifecycle;
use log_writer::LossyWriter;
use metrics::Observed;
use notify::Notifier;
use reload::Reloader;
use settings::{LogFormat, Mode, PasswordSource, Settings, TlsFiles};

/// jemalloc rather than the system allocator: an idle connection costs about a third less
/// with it, and small allocations are faster (BENCHMARKS.md). The `jemalloc` feature (on
/// by default) chooses it; embedders of the library pick their own.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long an exit waits for queued log lines to reach stderr: ample for a stderr that
/// works, and a bound for one that does not drain (a reader that stopped reading).
const EXIT_LOG_FLUSH: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    // First of all: descriptors 3 and up can only be a service manager's until this process
    // opens one of its own (activation.rs).
    let passed = activation::take();
    if let Some(status) = tools::run_if_named() {
        return status;
    }
    let settings = cli::Cli::parse().into_settings();
    let logs = match init_logging(settings.log_format) {
        Ok(logs) => logs,
        Err(message) => {
            // No log writer to go through: straight to stderr, ignoring a failure there.
            let _ = writeln!(std::io::stderr(), "kv-server: {message}");
            return ExitCode::FAILURE;
        }
    };
    let status = match passed {
        Ok(passed) => serve_until_done(settings, passed, &logs),
        Err(message) => {
            fatal(&message);
            ExitCode::FAILURE
        }
    };
    logs.flush_within(EXIT_LOG_FLUSH);
    status
}

/// Everything after logging is set up, serving on `passed` (socket activation) if a
/// service manager passed a socket; the runtime is gone when this returns, so every line
/// it logged is queued by then.
fn serve_until_done(settings: Settings, passed: Option<OwnedFd>, logs: &LossyWriter) -> ExitCode {
    if let Err(e) = settings.server.validate() {
        fatal(&format!("invalid configuration: {e}"));
        return ExitCode::from(2);
    }
    line_server::raise_open_file_limit(settings.server.max_connections);
    // The acceptor, signals and storage's shutdown run here; connections run on the
    // machinery's event loops (`--workers`), so one thread is all this runtime needs.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            fatal(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings, passed, logs.clone())) {
        Ok(()) => {
            // The operator's sign that the graceful shutdown finished (SIGTERM's lines
            // say it began and how many connections it waits for).
            info!("shut down cleanly");
            ExitCode::SUCCESS
        }
        Err(message) => {
            fatal(&message);
            ExitCode::FAILURE
        }
    }
}

/// The message a failing process ends with: logged like any other line (so in the log
/// format asked for), through the log queue rather than `eprintln!` — after the lines
/// logged before it, and without panicking (which would turn the exit status into 101) or
/// blocking when stderr is broken.
fn fatal(message: &str) {
    error!("{message}");
}

/// Logs go to stderr through a [`LossyWriter`], so that a broken stderr loses log lines
/// and changes nothing else; `RUST_LOG` picks levels, `info` by default; `format` says
/// text or JSON lines.
fn init_logging(format: LogFormat) -> Result<LossyWriter, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = LossyWriter::spawn(std::io::stderr(), log_writer::QUEUE_LINES)
        .map_err(|e| format!("cannot start the log writer thread: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        // Its fallback for a failed write is `eprintln!`, which panics when stderr is
        // broken; the writer never fails, and this keeps formatting errors quiet too.
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        // Flattened: `message` and the fields at the top level, where log shippers
        // (Filebeat, Vector, Loki's promtail) look for them, not under `fields`.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(writer)
}

async fn run(
    mut settings: Settings,
    passed: Option<OwnedFd>,
    logs: LossyWriter,
) -> Result<(), String> {
    let shutdown = CancellationToken::new();
    signals::install(shutdown.clone(), move || {
        logs.flush_within(EXIT_LOG_FLUSH);
    })
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let hangups = signals::hangups().map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let notifier = Notifier::from_env();
    notifier.status("starting");
    let password = settings.password.read()?.map(SharedPassword::new);
    settings.server.tls = settings.tls.as_ref().map(TlsFiles::load).transpose()?;
    // Open storage before listening: a refused data dir must stop start-up before clients
    // are told the port is ready.
    let durable = open_durable(&settings, notifier)?;
    let cluster = cluster::connect(&settings).await?;
    let listener = listen(&settings, passed)?;
    let bound = listener
        .local_addr()
        .map_or(settings.bind, |addr| addr.ip());
    warn_if_exposed(
        bound,
        settings.protected_mode,
        password.is_some() || client_certificates(&settings),
    );
    let engine = match (settings.mode, durable, cluster) {
        (Mode::Echo, _, _) => Engine::Echo,
        #[cfg(feature = "cluster")]
        (Mode::Kv, None, Some(store)) => Engine::Cluster(store),
        (Mode::Kv, None, _) => Engine::Memory(MemoryStore::with_limit(settings.max_memory)),
        (Mode::Kv, Some(store), _) => Engine::Durable(store),
    };
    let lifecycle = Lifecycle {
        notifier,
        hangups,
        reloader: reloader(&settings, password.as_ref()),
        tls: settings.server.tls.is_some(),
    };
    let front = Front {
        settings: &settings,
        password,
        shutdown,
        lifecycle,
    };
    serve_engine(engine, listener, front).await
}

/// Serves `engine` until the shutdown is over, then closes its storage.
async fn serve_engine(
    engine: Engine,
    listener: TcpListener,
    front: Front<'_>,
) -> Result<(), String> {
    let served = match engine {
        Engine::Echo => serve_with(listener, front, Echo, None).await,
        Engine::Memory(store) => serve_kv(listener, front, store).await,
        #[cfg(feature = "cluster")]
        Engine::Cluster(store) => serve_kv(listener, front, store).await,
        Engine::Durable(store) => {
            let served = serve_kv(listener, front, store.clone()).await;
            // Storage last: every acknowledged write is already durable; this finishes a
            // running snapshot and releases the data directory.
            store.close().await;
            served
        }
    };
    served.map_err(|e| e.to_string())
}

/// The durable store of `--data-dir` in kv mode, recovered; `None` without one. Errors:
/// the directory is refused (its message says why).
fn open_durable(settings: &Settings, notifier: Notifier) -> Result<Option<DurableStore>, String> {
    let dir = match (&settings.data_dir, settings.mode) {
        (Some(dir), Mode::Kv) => dir,
        (Some(_), Mode::Echo) => {
            warn!("--data-dir is ignored in echo mode");
            return Ok(None);
        }
        (None, _) => return Ok(None),
    };
    notifier.status(&format!("recovering the data directory {}", dir.display()));
    let store = DurableStore::open_with(dir, settings.durable).map_err(|e| e.to_string())?;
    let (buckets, keys) = store.stats();
    info!(
        "durable mode: {} ({buckets} buckets, {keys} keys loaded)",
        dir.display()
    );
    let (used, limit) = store.memory();
    if limit > 0 && used > limit {
        warn!(
            "the data loaded holds {used} bytes, more than --maxmemory {limit}: writes that \
             grow it are refused until deletes bring it under the limit"
        );
    }
    Ok(Some(store))
}

/// The listening socket: the one a service manager passed (socket activation), or one
/// bound on `--bind` and `--port`. Errors: the passed socket is not a listening TCP socket,
/// or the address cannot be bound.
fn listen(settings: &Settings, passed: Option<OwnedFd>) -> Result<TcpListener, String> {
    let Some(socket) = passed else {
        let addr = SocketAddr::new(settings.bind, settings.port);
        return bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"));
    };
    let listener = adopt(socket).map_err(|e| {
        format!("cannot serve the socket the service manager passed (LISTEN_FDS): {e}")
    })?;
    if let Ok(addr) = listener.local_addr() {
        info!(
            "socket activation: serving {addr}, the socket the service manager passed \
             (--bind and --port are not used)"
        );
    }
    Ok(listener)
}

/// What SIGHUP re-reads: the TLS files, and the password file if the password came from
/// one (a password given on the command line or in the environment cannot change).
fn reloader(settings: &Settings, password: Option<&SharedPassword>) -> Reloader {
    Reloader {
        tls: settings.tls.clone().zip(settings.server.tls.clone()),
        password: match (&settings.password, password) {
            (PasswordSource::File(path), Some(shared)) => Some((path.clone(), shared.clone())),
            _ => None,
        },
    }
}

/// Whether every client must show a certificate our CA signed: such clients are
/// authenticated, so protected mode does not apply to them.
fn client_certificates(settings: &Settings) -> bool {
    (settings.server.tls.as_ref()).is_some_and(|tls| tls.requires_client_certificates())
}

/// What the server serves: echo, or KV mode over one of the stores.
enum Engine {
    Echo,
    Memory(MemoryStore),
    Durable(DurableStore),
    /// `--redis-cluster`: the data lives in a Redis Cluster.
    #[cfg(feature = "cluster")]
    Cluster(kv_cluster::ClusterStore),
}

/// Says so at start when the server listens beyond loopback with nothing to protect it.
fn warn_if_exposed(bound: IpAddr, protected_mode: bool, authenticated: bool) {
    if let Some(warning) = exposure_warning(bound, protected_mode, authenticated) {
        warn!("{warning}");
    }
}

/// The warning for listening on `bind`: without a password, protected mode refuses remote
/// clients (so say how to serve them); with it off, anyone who can reach the port has
/// every key. `None` on loopback or when clients must authenticate (a password, or client
/// certificates).
fn exposure_warning(bind: IpAddr, protected_mode: bool, authenticated: bool) -> Option<String> {
    if bind.is_loopback() || authenticated {
        return None;
    }
    Some(if protected_mode {
        format!(
            "listening on {bind} without a password: protected mode refuses every client not \
             on loopback (set --requirepass, or --protected-mode no to serve them anyway)"
        )
    } else {
        format!(
            "listening on {bind} with no password and protected mode off: anyone who can \
             reach this port can read and change every key"
        )
    })
}

/// What stands in front of every protocol: the settings (limits, TLS, protected mode,
/// metrics), the password, the shutdown signal, and what follows the server's life for a
/// service manager (readiness, reloads).
struct Front<'a> {
    settings: &'a Settings,
    password: Option<SharedPassword>,
    shutdown: CancellationToken,
    lifecycle: Lifecycle,
}

/// KV mode over `store`, whose report the metrics read.
async fn serve_kv<S: Store>(
    listener: TcpListener,
    front: Front<'_>,
    store: S,
) -> Result<(), String> {
    let reader = store.clone();
    let report: metrics::StoreReader = Box::new(move || reader.report());
    let kv = Kv::new(store).subscriber_buffer_bytes(front.settings.subscriber_buffer_bytes);
    serve_with(listener, front, kv, Some(report)).await
}

/// Serves `protocol` behind the password and protected mode, and wrapped with fault
/// injection if `--debug-commands` asks for it; with `--metrics-port`, the endpoint reads
/// the server's counters and the store's `report` (KV mode). The lifecycle task follows
/// the server from here (readiness, reloads, status).
async fn serve_with<P: Protocol>(
    listener: TcpListener,
    front: Front<'_>,
    protocol: P,
    report: Option<metrics::StoreReader>,
) -> Result<(), String> {
    let Front {
        settings,
        password,
        shutdown,
        lifecycle,
    } = front;
    let counters = metrics::ServerCounters::default();
    if let Some(addr) = settings.metrics {
        let sources = metrics::Sources {
            server: counters.clone(),
            store: report,
        };
        metrics::start(addr, sources, shutdown.clone()).await?;
    }
    tokio::spawn(lifecycle.run(counters.clone(), shutdown.clone()));
    let config: &ServerConfig = &settings.server;
    let protected = settings.protected_mode && !client_certificates(settings);
    let served = if settings.debug_commands {
        let protocol = Auth::new(Faulty::new(protocol), password, protected);
        serve(
            listener,
            config,
            Observed::new(protocol, counters),
            shutdown,
        )
        .await
    } else {
        let protocol = Auth::new(protocol, password, protected);
        serve(
            listener,
            config,
            Observed::new(protocol, counters),
            shutdown,
        )
        .await
    };
    served.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_beyond_loopback_with_nothing_to_protect_it_is_warned_about() {
        let any: IpAddr = "0.0.0.0".parse().expect("address");
        let protected = exposure_warning(any, true, false).expect("a warning");
        assert!(protected.contains("protected mode refuses"), "{protected}");
        let open = exposure_warning(any, false, false).expect("a warning");
        assert!(open.contains("protected mode off"), "{open}");
        assert_eq!(exposure_warning(any, true, true), None);
        assert_eq!(
            exposure_warning("::1".parse().expect("v6"), false, false),
            None
        );
        assert_eq!(
            exposure_warning("127.0.0.1".parse().expect("v4"), false, false),
            None
        );
    }
}
