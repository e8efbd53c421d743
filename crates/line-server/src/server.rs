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
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::acceptor::Acceptor;
use crate::config::{ConfigError, ServerConfig};
use crate::connection::ConnectionSettings;
use crate::protocol::Protocol;
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
/// signal.
///
/// Errors: [`ServeError::Config`] for a config that cannot work (checked first, before
/// anything is served); [`ServeError::Escalated`] when the acceptor failed more often than
/// the restart intensity allows (connections are shut down as above first: OTP's
/// escalation takes the whole tree down).
pub async fn serve<P: Protocol>(
    listener: TcpListener,
    config: &ServerConfig,
    protocol: P,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    config.validate().map_err(ServeError::Config)?;
    let port = listener.local_addr().map_err(ServeError::Io)?.port();
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let acceptor = Acceptor {
        listener: Arc::new(listener),
        protocol: Arc::new(protocol),
        connection_slots: Arc::new(Semaphore::new(config.max_connections)),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
        hard_stop: hard_stop.clone(),
        settings: Arc::new(ConnectionSettings {
            max_line_bytes: config.max_line_bytes,
            idle_timeout: config.idle_timeout,
        }),
    };
    info!("Accepting connections on port {port}");

    let intensity = RestartIntensity::new(config.max_restarts, config.max_restart_window);
    // The closure owns the only handle to the listener: when `supervise` returns, the
    // socket closes and new connects are refused.
    let supervised = supervise("acceptor", intensity, move || acceptor.clone().run()).await;
    shutdown.cancel();
    drain(&tracker, config.shutdown_timeout, &hard_stop).await;
    supervised.map_err(ServeError::Escalated)
}

/// Lets connections finish what they received, for at most `deadline`; then stops the
/// rest and waits until their tasks are gone (a stopped task ends at its next poll).
async fn drain(tracker: &TaskTracker, deadline: Duration, hard_stop: &CancellationToken) {
    info!(
        "no longer accepting; waiting for {} connection(s) to finish",
        tracker.len()
    );
    tracker.close();
    if tokio::time::timeout(deadline, tracker.wait()).await.is_ok() {
        return;
    }
    warn!(
        "shutdown timeout ({} s) passed; cutting {} busy connection(s)",
        deadline.as_secs_f64(),
        tracker.len()
    );
    hard_stop.cancel();
    tracker.wait().await;
}
