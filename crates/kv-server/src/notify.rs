//! Telling a service manager what the server is doing: sd_notify(3) datagrams on the
//! socket named by `NOTIFY_SOCKET` (systemd's `Type=notify` and `Type=notify-reload`,
//! systemd.service(5)). Without `NOTIFY_SOCKET` every call does nothing.
//!
//! The messages are sd-notify's (the crate): `READY=1`, `STOPPING=1`, `RELOADING=1` with
//! `MONOTONIC_USEC=`, and `STATUS=` lines, which `systemctl status` shows.

use std::time::Duration;

use line_server::Throttle;
use sd_notify::NotifyState;
use tracing::warn;

/// A failure to notify is logged at most once a minute: a manager that stopped reading
/// must not flood the log with one line per status update.
static FAILURES_LOGGED: Throttle = Throttle::new(Duration::from_secs(60));

/// Sends sd_notify(3) messages when a service manager asked for them; cheap to clone.
#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    /// Whether `NOTIFY_SOCKET` was set at start.
    enabled: bool,
}

impl Notifier {
    /// Notifies the socket that `NOTIFY_SOCKET` names, if it is set.
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    /// Whether a service manager listens (`NOTIFY_SOCKET` is set).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// `STATUS=status`: what the server is doing, in a line for people.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `READY=1`: start-up (or a reload) is done and clients are being accepted.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the time now on `CLOCK_MONOTONIC`, in µs), in
    /// one message, as `Type=notify-reload` requires; [`ready`](Self::ready) ends the reload.
    pub fn reloading(&self, status: &str) {
        if !self.enabled {
            return;
        }
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now, NotifyState::Status(status)]),
            Err(e) => log_failure(&e),
        }
    }

    /// `STOPPING=1`: a graceful shutdown began.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// One datagram holding `states`. It is sent at once on a blocking socket: the manager
    /// reads these as they come, so the send does not wait in practice.
    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            log_failure(&e);
        }
    }
}

fn log_failure(e: &std::io::Error) {
    if let Some(held_back) = FAILURES_LOGGED.allow() {
        warn!(
            "cannot notify the service manager (NOTIFY_SOCKET): {e} ({held_back} other \
             failure(s) not logged in the last minute)"
        );
    }
}
