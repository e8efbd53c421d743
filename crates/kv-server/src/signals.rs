//! Turning SIGINT/SIGTERM into a graceful shutdown (a second signal exits at once), and
//! SIGHUP into reloads instead of its default, the end of the process.

use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::log_writer::log_regardless;

/// Exit status when a second signal cuts the graceful shutdown short (128 + SIGINT).
pub const FORCED_EXIT_STATUS: i32 = 130;

/// Installs the handlers now (so a signal arriving during start-up is not lost) and
/// returns a task that cancels `token` on the first signal and exits the process at once
/// on the second, after `before_exit` (which should be bounded in time: it is there to
/// flush logs).
pub fn install(
    token: CancellationToken,
    before_exit: impl FnOnce() + Send + 'static,
) -> io::Result<tokio::task::JoinHandle<()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        next_signal(&mut interrupt, &mut terminate).await;
        log_regardless(|| {
            info!("shutting down: no new connections; finishing requests in flight (signal again to exit at once)")
        });
        token.cancel();
        next_signal(&mut interrupt, &mut terminate).await;
        log_regardless(|| warn!("second signal: exiting at once"));
        before_exit();
        std::process::exit(FORCED_EXIT_STATUS);
    }))
}

async fn next_signal(interrupt: &mut Signal, terminate: &mut Signal) {
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// SIGHUP, from now on: each one is a reload (`lifecycle.rs`), never the end of the
/// process (signal(7): its default action terminates). Install it early: a SIGHUP before
/// this runs still ends the process.
pub fn hangups() -> io::Result<Signal> {
    signal(SignalKind::hangup())
}
