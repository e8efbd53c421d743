//! Ties the machinery together: the supervision tree and its shutdown order.
//!
//! ```text
//! serve ── supervisor (one_for_one) ── acceptor (:permanent, restarted with intensity)
//!                                        └─ spawns ─ connection tasks (:temporary, tracked)
//! ```
//! Shutdown runs in Thousand Island's order: the acceptor stops and the listening socket
//! closes first (new connects are refused), then connections finish what they received
//! within the shutdown timeout, then those still busy are stopped; the caller flushes
//! storage after `serve` returns.

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::acceptor::Acceptor;
use crate::config::{ConfigError, ServerConfig};
use crate::connection::ConnectionSettings;
use crate::event_loops::{self, Connections, Placement};
use crate::protocol::Protocol;
use crate::stats::ServerStats;
use crate::stopping::{Phase, Stopping};
use crate::supervisor::{supervise, Escalation, RestartIntensity};

/// Why [`serve`] stopped other than by a requested shutdown.
#[derive(Debug)]
pub enum ServeError {
    /// The configuration cannot work; nothing was served.
    Config(ConfigError),
    /// The listening socket is unusable.
    Io(io::Error),
    /// The acceptor failed more often than the restart intensity allows.
    Escalated(Escalation),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config(e) => write!(f, "invalid configuration: {e}"),
            ServeError::Io(e) => write!(f, "listener error: {e}"),
            ServeError::Escalated(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ServeError {}

/// Serves `protocol` on `listener` until `shutdown` is cancelled, then shuts down
/// gracefully: the listener closes, every connection answers what it received, and
/// connections still busy at `config.shutdown_timeout` are stopped. When this returns, no
/// connection task is left. The caller binds (port 0 in tests) and owns the shutdown
/// signal. What happens (connections, rejections, restarts, accept errors, panics) is
/// counted in one [`ServerStats`], handed to `protocol` before the first client
/// ([`Protocol::on_start`]).
///
/// Errors: [`ServeError::Config`] for a config that cannot work (checked first, before
/// anything is served); [`ServeError::Escalated`] when the acceptor failed more often than
/// the restart intensity allows (connections are shut down as above first: OTP's
/// escalation takes the whole tree down).
pub async fn serve<P: Protocol>(
    listener: TcpListener,
    config: &ServerConfig,
    mut protocol: P,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    config.validate().map_err(ServeError::Config)?;
    let port = listener.local_addr().map_err(ServeError::Io)?.port();
    let stats = ServerStats::new();
    protocol.on_start(&stats);
    let tracker = TaskTracker::new();
    let stopping = Stopping::new();
    let connections = Arc::new(Connections {
        protocol: Arc::new(protocol),
        settings: Arc::new(ConnectionSettings {
            max_line_bytes: config.max_line_bytes,
            idle_timeout: config.idle_timeout,
            stats: Arc::clone(&stats),
            tls: config.tls.clone(),
            moves: OnceLock::new(),
        }),
        shutdown: shutdown.clone(),
        stopping: Arc::clone(&stopping),
        tracker: tracker.clone(),
    });
    let (placement, loop_threads, watcher) = match config.event_loops {
        None => {
            let caller = Placement::Caller(Arc::clone(&connections), stats.traffic());
            (caller, Vec::new(), None)
        }
        Some(count) => {
            let counts = (count, config.min_active_event_loops);
            let started =
                event_loops::start(counts, Arc::clone(&connections)).map_err(ServeError::Io)?;
            stats.balancing(Arc::clone(&started.loops.balance));
            let watcher = event_loops::watch(&started.loops, shutdown.clone());
            (Placement::Loops(started.loops), started.threads, watcher)
        }
    };
    let listener = accepting(listener).map_err(ServeError::Io)?;
    let slots = Arc::new(Semaphore::new(config.max_connections));
    stats.serving(port, config.max_connections, Arc::clone(&slots));
    let acceptor = Acceptor {
        listener: Arc::new(listener),
        connection_slots: slots,
        connections,
        placement: Arc::new(placement),
    };
    if let Some(loops) = config.event_loops {
        info!("up to {loops} event loop(s) serve the connections, as many as the load needs");
    }
    let over = if config.tls.is_some() { " (TLS)" } else { "" };
    info!("Accepting connections on port {port}{over}");

    let intensity = RestartIntensity::new(config.max_restarts, config.max_restart_window);
    // The closure owns the only handles to the listener and the loops' queues: when
    // `supervise` returns, the socket closes (new connects are refused) and the loops
    // learn that no more clients will come.
    let restarts = Arc::clone(&stats);
    let supervised = supervise(
        "acceptor",
        intensity,
        move || acceptor.clone().run(),
        move || restarts.acceptor_restarted(),
    )
    .await;
    shutdown.cancel();
    drain(&tracker, loop_threads, config.shutdown_timeout, &stopping).await;
    if let Some(watcher) = watcher {
        // Ends once `shutdown` is cancelled.
        let _ = watcher.await;
    }
    supervised.map_err(ServeError::Escalated)
}

/// The listener as the acceptor uses it: a std listener registered for readability, so
/// that accepted sockets come out unregistered (see `Acceptor::listener`).
fn accepting(listener: TcpListener) -> io::Result<AsyncFd<std::net::TcpListener>> {
    let listener = listener.into_std()?;
    // SAFETY: `register_with_interest` needs the fd to stay open and be the same file
    // description for the AsyncFd's whole life. The AsyncFd owns the `std::net::TcpListener`,
    // which owns its fd, closes it only when dropped (with the AsyncFd) and always returns
    // that same fd from `as_raw_fd`; nothing here takes the listener back out of it.
    let registered =
        unsafe { AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE) };
    registered.map_err(|e| e.into_parts().1)
}

/// Waits for the event loops' threads, which end once their connections have.
async fn join(threads: Vec<std::thread::JoinHandle<()>>) {
    if threads.is_empty() {
        return;
    }
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    });
    let _ = joined.await;
}

/// Lets connections finish what they received, for at most `deadline`; then stops the
/// rest and waits until their tasks are gone (a stopped task ends at its next poll).
/// The deadline covers the loops too: a client accepted just before the listener closed
/// may still be on its way to a loop when the tracker first looks empty.
async fn drain(
    tracker: &TaskTracker,
    loop_threads: Vec<std::thread::JoinHandle<()>>,
    deadline: Duration,
    stopping: &Stopping,
) {
    info!(
        "no longer accepting; waiting for {} connection(s) to finish",
        tracker.len()
    );
    stopping.advance(Phase::Draining);
    tracker.close();
    let finished = async {
        tracker.wait().await;
        join(loop_threads).await;
    };
    tokio::pin!(finished);
    if tokio::time::timeout(deadline, &mut finished).await.is_ok() {
        return;
    }
    warn!(
        "shutdown timeout ({} s) passed; cutting {} busy connection(s)",
        deadline.as_secs_f64(),
        tracker.len()
    );
    stopping.advance(Phase::Cut);
    finished.await;
}
