//! Ties the machinery together: the supervision tree and its shutdown order.
//!
//! ```text
//! serve ── supervisor (one_for_one) ── acceptor (:permanent, restarted with intensity)
//!                                        └─ spawns ─ connection tasks (:temporary, tracked)
//! ```
//! Shutdown runs in Thousand Island's order: the acceptor stops and the listening socket
//! closes first (new connects are refused), then connections finish what they received
//! within the shutdown timeout, then the caller flushes storage.

use std::fmt;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::acceptor::Acceptor;
use crate::config::Config;
use crate::connection::ConnectionSettings;
use crate::fault::FaultHooks;
use crate::protocol::Protocol;
use crate::supervisor::{supervise, Escalation, RestartIntensity};

/// Why [`serve`] stopped other than by a requested shutdown.
#[derive(Debug)]
pub enum ServeError {
    /// The listening socket is unusable.
    Io(io::Error),
    /// The acceptor failed more often than the restart intensity allows.
    Escalated(Escalation),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Io(e) => write!(f, "listener error: {e}"),
            ServeError::Escalated(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ServeError {}

/// Serves `protocol` on `listener` until `shutdown` is cancelled, then shuts down
/// gracefully. The caller binds (port 0 in tests) and owns the shutdown signal.
pub async fn serve<P: Protocol>(
    listener: TcpListener,
    config: &Config,
    protocol: P,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let port = listener.local_addr().map_err(ServeError::Io)?.port();
    let tracker = TaskTracker::new();
    let acceptor = Acceptor {
        listener: Arc::new(listener),
        protocol: Arc::new(protocol),
        connection_slots: Arc::new(Semaphore::new(config.max_connections)),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
        settings: Arc::new(ConnectionSettings {
            max_line_bytes: config.max_line_bytes,
            idle_timeout: config.idle_timeout,
            debug_commands: config.debug_commands,
            faults: FaultHooks::default(),
        }),
    };
    info!("Accepting connections on port {port}");

    let intensity = RestartIntensity::new(config.max_restarts, config.max_restart_window);
    // The closure owns the only handle to the listener: when `supervise` returns, the
    // socket closes and new connects are refused.
    let supervised = supervise("acceptor", intensity, move || acceptor.clone().run()).await;
    if let Err(escalation) = supervised {
        shutdown.cancel();
        return Err(ServeError::Escalated(escalation));
    }

    info!(
        "no longer accepting; waiting for {} connection(s) to finish",
        tracker.len()
    );
    tracker.close();
    if tokio::time::timeout(config.shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            "shutdown timeout ({} s) passed; cutting {} busy connection(s)",
            config.shutdown_timeout.as_secs_f64(),
            tracker.len()
        );
    }
    Ok(())
}
