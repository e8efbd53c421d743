//! Server configuration: one struct holding every default, validated in one place.
//!
//! The binary maps its command line and environment onto [`Config`]; embedders build one
//! directly. Nothing here parses flags.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

pub use kv_store::{DurableOptions, FsyncPolicy};

/// Which protocol the server speaks on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every line comes back unchanged: the seed's server.
    Echo,
    /// Buckets of keys and values driven by `CREATE`/`PUT`/`GET`/`DELETE`.
    #[default]
    Kv,
}

/// Everything the server machinery needs to know; see `kv-server --help` for the meaning
/// of each field as a flag.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on. Loopback by default: the server has no authentication.
    pub bind: IpAddr,
    /// TCP port; 0 asks the OS for a free one.
    pub port: u16,
    /// Protocol served.
    pub mode: Mode,
    /// Concurrent clients; the next one is told `ERROR too many connections` and closed.
    pub max_connections: usize,
    /// Longest accepted line, counting its terminator.
    pub max_line_bytes: usize,
    /// Close a client that sent nothing for this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// How long a graceful shutdown waits for busy connections.
    pub shutdown_timeout: Duration,
    /// Supervisor restart intensity: at most this many acceptor restarts...
    pub max_restarts: u32,
    /// ...within this window, else the server gives up (OTP's escalation).
    pub max_restart_window: Duration,
    /// Enables the `DEBUG ...` fault-injection commands.
    pub debug_commands: bool,
    /// Where durable mode keeps its data; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// In durable mode, when an acknowledged write reaches the disk.
    pub fsync: FsyncPolicy,
    /// In durable mode, compact once the journal holds this many bytes and more than the
    /// last snapshot.
    pub compact_after_bytes: u64,
    /// Runtime worker threads; `None` is one per core. Fewer can win when the clients
    /// share the server's cores (BENCHMARKS.md).
    pub workers: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 4040,
            mode: Mode::Kv,
            max_connections: 10_000,
            max_line_bytes: 65_536,
            idle_timeout: None,
            shutdown_timeout: Duration::from_secs(10),
            // OTP's supervisor defaults: intensity 3 within a period of 5 seconds.
            max_restarts: 3,
            max_restart_window: Duration::from_secs(5),
            debug_commands: false,
            data_dir: None,
            fsync: FsyncPolicy::Always,
            compact_after_bytes: DurableOptions::default().compact_after_bytes,
            workers: None,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig(String);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidConfig {}

impl Config {
    /// Smallest line limit that still fits the shortest request with its `\r\n`.
    pub const MIN_LINE_BYTES: usize = 8;

    /// Checks the values that the types alone do not rule out.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.max_connections == 0 {
            return Err(InvalidConfig("max-connections must be at least 1".into()));
        }
        if self.max_line_bytes < Self::MIN_LINE_BYTES {
            return Err(InvalidConfig(format!(
                "max-line-bytes must be at least {}",
                Self::MIN_LINE_BYTES
            )));
        }
        if self.max_restart_window.is_zero() {
            return Err(InvalidConfig(
                "max-restart-window-secs must be at least 1".into(),
            ));
        }
        if self.workers == Some(0) {
            return Err(InvalidConfig("workers must be at least 1".into()));
        }
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(InvalidConfig(
                "idle timeout must be positive (use None to disable)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contracts_and_valid() {
        let c = Config::default();
        assert_eq!(c.port, 4040);
        assert_eq!(c.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.mode, Mode::Kv);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.max_line_bytes, 65_536);
        assert_eq!((c.max_restarts, c.max_restart_window.as_secs()), (3, 5));
        assert!(!c.debug_commands);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn rejects_values_that_cannot_work() {
        let bad = [
            Config {
                max_connections: 0,
                ..Config::default()
            },
            Config {
                max_line_bytes: 2,
                ..Config::default()
            },
            Config {
                max_restart_window: Duration::ZERO,
                ..Config::default()
            },
            Config {
                idle_timeout: Some(Duration::ZERO),
                ..Config::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
