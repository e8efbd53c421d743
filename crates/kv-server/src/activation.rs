//! Socket activation: the listening socket a service manager passes (sd_listen_fds(3):
//! systemd's `.socket` units, `systemd-socket-activate`), served instead of binding one.
//!
//! The protocol: `LISTEN_PID` is this process's pid and `LISTEN_FDS` counts the sockets
//! passed, as file descriptors 3, 4, ... sd-notify (the crate) reads the two variables
//! and marks the descriptors close-on-exec, as libsystemd's `sd_listen_fds` does.

use std::os::fd::{FromRawFd, OwnedFd};

/// The listening socket passed by a service manager, if any; `None` when `LISTEN_PID` is
/// unset or names another process (the variables were inherited, not meant for us).
///
/// Must be called first thing in `main`, once: only then are descriptors 3 and up the
/// manager's and no one else's (nothing in this process has opened a descriptor yet).
///
/// Errors: the variables are malformed, a descriptor they name is not open, or more than
/// one socket was passed (kv-server serves one port: one `ListenStream=`).
pub fn take() -> Result<Option<OwnedFd>, String> {
    let mut fds = sd_notify::listen_fds()
        .map_err(|e| format!("socket activation (LISTEN_PID, LISTEN_FDS): {e}"))?;
    let count = fds.len();
    match (fds.next(), count) {
        (None, _) => Ok(None),
        (Some(fd), 1) => {
            // SAFETY: `OwnedFd::from_raw_fd` needs an open descriptor that nothing else
            // owns or will close. `listen_fds` checked it is open (fcntl F_GETFD, when it
            // marked it close-on-exec); LISTEN_PID is this process's pid, so the manager
            // passed it to us across exec; and this runs once, before this process holds
            // a descriptor of its own beyond 0-2 (the allocator closes what it reads at
            // start-up), so no handle in it refers to this descriptor yet.
            Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
        }
        (Some(_), count) => Err(format!(
            "socket activation passed {count} sockets (LISTEN_FDS); kv-server serves one: \
             give its socket unit a single ListenStream="
        )),
    }
}
