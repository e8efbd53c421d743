//! Stopping the modes that run until interrupted (`--latency`, `--stat`): Ctrl-C (SIGINT)
//! or SIGTERM ends them with exit 0, after their last figures, as redis-cli's do.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT (Ctrl-C) or SIGTERM, watched from the moment this is made.
pub struct Stop {
    interrupt: Signal,
    terminate: Signal,
}

impl Stop {
    /// Starts watching. Errors: the signal handlers cannot be installed.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Completes at the next signal.
    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
