//! The server's life as a service manager sees it (SPEC §15): `READY=1` once it serves, a
//! reload on each SIGHUP (`RELOADING=1` ... `READY=1`, systemd's `Type=notify-reload`),
//! `STATUS=` lines saying how many clients are connected, and `STOPPING=1` when a graceful
//! shutdown begins (sd_notify(3)). Reloads happen with or without a service manager.

use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::metrics::ServerCounters;
use crate::notify::Notifier;
use crate::reload::Reloader;

/// How often the status line is refreshed (sent only when it changed): often enough for
/// `systemctl status` to be current, rare enough to cost nothing.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// What the task that follows the server's life needs.
#[derive(Debug)]
pub struct Lifecycle {
    /// Where readiness and status go.
    pub notifier: Notifier,
    /// SIGHUP, installed at start so that one arriving during start-up (a long recovery)
    /// does not end the process.
    pub hangups: Signal,
    /// What a reload reads and where it puts it.
    pub reloader: Reloader,
    /// Whether the port speaks TLS, for the status line.
    pub tls: bool,
}

impl Lifecycle {
    /// Follows the server from the start of `serve` until `shutdown` is cancelled (by a
    /// signal, or by `serve` itself when its acceptor failed too often), then keeps SIGHUP
    /// harmless until the process exits. Spawn it before calling `serve`.
    pub async fn run(mut self, counters: ServerCounters, shutdown: CancellationToken) {
        tokio::select! {
            () = counters.serving() => {}
            () = shutdown.cancelled() => return self.stop(&counters).await,
        }
        let mut shown = self.status(&counters);
        self.notifier.ready(&shown);
        let mut ticks = tokio::time::interval(STATUS_INTERVAL);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(()) = self.hangups.recv() => self.reload(&counters).await,
                _ = ticks.tick(), if self.notifier.enabled() => {
                    let now = self.status(&counters);
                    if now != shown {
                        self.notifier.status(&now);
                        shown = now;
                    }
                }
            }
        }
        self.stop(&counters).await;
    }

    /// One reload, bracketed for the service manager; the files are read off the runtime
    /// (the acceptor runs here, and a file on a slow disk must not stall it).
    async fn reload(&self, counters: &ServerCounters) {
        self.notifier
            .reloading("reloading the TLS files and the password file (SIGHUP)");
        let reloader = self.reloader.clone();
        let summary = match tokio::task::spawn_blocking(move || reloader.reload()).await {
            Ok(summary) => summary,
            Err(e) => format!("reload failed: {e}"),
        };
        self.notifier.ready(&format!(
            "{}; last reload: {summary}",
            self.status(counters)
        ));
    }

    /// Says the shutdown began; then a SIGHUP is only logged: nothing is reloaded (a
    /// `READY=1` now would contradict `STOPPING=1`), and its handler stays installed so it
    /// cannot end the process before the drain does.
    async fn stop(mut self, counters: &ServerCounters) {
        let connected = counters.snapshot().connected_clients;
        self.notifier.stopping(&format!(
            "shutting down: finishing {connected} connection(s)"
        ));
        while self.hangups.recv().await.is_some() {
            info!("SIGHUP during shutdown: nothing reloaded");
        }
    }

    /// `Accepting connections on port N; C client(s) connected`.
    fn status(&self, counters: &ServerCounters) -> String {
        let now = counters.snapshot();
        let over = if self.tls { " (TLS)" } else { "" };
        format!(
            "Accepting connections on port {}{over}; {} client(s) connected",
            now.port, now.connected_clients
        )
    }
}
