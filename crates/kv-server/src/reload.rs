//! What SIGHUP re-reads (SPEC §15): the TLS certificate, key and CA files and the password
//! file, each given to the running server if it can be used, kept as it was (with an
//! error logged) if not. New connections get what was read; open ones go on untouched.
//! The files are read here; the machinery only swaps what it is handed
//! ([`Tls::replace`], [`SharedPassword::replace`]).

use std::path::PathBuf;

use line_server::{SharedPassword, Tls};
use tracing::{error, info};

use crate::settings::{PasswordSource, TlsFiles};

/// The files a reload reads and where what it reads goes; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Reloader {
    /// The TLS files and the settings the server serves with.
    pub tls: Option<(TlsFiles, Tls)>,
    /// The password file and the password the server checks.
    pub password: Option<(PathBuf, SharedPassword)>,
}

impl Reloader {
    /// Re-reads every file and hands the server what can be used; logs each outcome and
    /// returns them in a few words for the service manager's status line (`TLS files
    /// reloaded; password file kept (unusable)`). Blocking file I/O: run it where blocking
    /// is allowed.
    pub fn reload(&self) -> String {
        let mut parts = Vec::new();
        if let Some((files, tls)) = &self.tls {
            parts.push(match reload_tls(files, tls) {
                true => "TLS files reloaded",
                false => "TLS files kept (unusable)",
            });
        }
        if let Some((path, password)) = &self.password {
            parts.push(match reload_password(path, password) {
                true => "password file reloaded",
                false => "password file kept (unusable)",
            });
        }
        if parts.is_empty() {
            info!("reload (SIGHUP): nothing to reload (no TLS files, no password file)");
            parts.push("nothing to reload");
        }
        parts.join("; ")
    }
}

/// Reads the TLS files and swaps them in; whether it could.
fn reload_tls(files: &TlsFiles, tls: &Tls) -> bool {
    let swapped = files.load().and_then(|fresh| {
        tls.replace(&fresh)
            .map_err(|e| format!("cannot use the TLS files: {e}"))
    });
    let names = files.names();
    match swapped {
        Ok(()) => {
            info!("reload (SIGHUP): TLS files {names} read; new connections use them");
            true
        }
        Err(e) => {
            error!("reload (SIGHUP): {e}; new connections keep using the TLS files read before");
            false
        }
    }
}

/// Reads the password file and swaps the password in; whether it could.
fn reload_password(path: &std::path::Path, password: &SharedPassword) -> bool {
    match PasswordSource::File(path.to_path_buf()).read() {
        Ok(Some(fresh)) => {
            password.replace(fresh);
            info!(
                "reload (SIGHUP): password file {} read; AUTH now checks its password \
                 (authenticated clients stay authenticated)",
                path.display()
            );
            true
        }
        // Not reached: a file source always yields a password or an error.
        Ok(None) => false,
        Err(e) => {
            error!("reload (SIGHUP): {e}; the password read before stays in use");
            false
        }
    }
}
