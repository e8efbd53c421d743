//! [`ServerConfig`]: every setting of the machinery, its default, and `validate()`.
//!
//! Only what [`crate::serve`] uses: where to listen is the caller's (it binds), and what
//! to serve is the protocol's. [`crate::serve`] refuses a config that cannot work.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::tls::Tls;

/// Limits, timeouts and restart intensity of one server. `Default` gives the documented
/// defaults; an embedder changes what it needs with struct update syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Concurrent clients; the next one is sent `ERROR too many connections` and closed
    /// (as Redis and memcached do). Default 10,000.
    pub max_connections: usize,
    /// Longest accepted line in bytes, counting its `\r\n` or `\n`; a longer one is answered
    /// `ERROR line too long` and the connection closed. Default 65,536.
    pub max_line_bytes: usize,
    /// Close a client that sent nothing for this long; `None` (the default) never does.
    pub idle_timeout: Option<Duration>,
    /// How long a graceful shutdown waits for busy connections before it stops them.
    /// Default 10 s.
    pub shutdown_timeout: Duration,
    /// Acceptor restarts allowed within `max_restart_window` before [`crate::serve`] gives
    /// up (OTP's supervisor `intensity`; default 3).
    pub max_restarts: u32,
    /// The window of `max_restarts` (OTP's `period`; default 5 s).
    pub max_restart_window: Duration,
    /// Most event loops connections run on: each a single-threaded runtime on a thread of
    /// its own. Only as many are active as the load needs: one at first, another when all
    /// those are busy, one fewer when the load falls; connections move to even the active
    /// loops' shares when that number changes (see `balance`). Default: one per core
    /// (`std::thread::available_parallelism`). `None` runs connections as tasks of the
    /// runtime that calls [`crate::serve`] instead.
    pub event_loops: Option<NonZeroUsize>,
    /// Fewest active event loops, however light the load (default 1). Equal to
    /// `event_loops`, the number of loops is fixed: every loop serves an even share of the
    /// connections, as suits a server whose cores are its own (a loop that sleeps between
    /// requests then wakes no one else's core). At most `event_loops`.
    pub min_active_event_loops: NonZeroUsize,
    /// Speak TLS only on the port ([`Tls`]); `None` (the default): plain TCP.
    pub tls: Option<Tls>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_line_bytes: 65_536,
            idle_timeout: None,
            shutdown_timeout: Duration::from_secs(10),
            // OTP's supervisor defaults: intensity 3 within a period of 5 seconds.
            max_restarts: 3,
            max_restart_window: Duration::from_secs(5),
            event_loops: Some(std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)),
            min_active_event_loops: NonZeroUsize::MIN,
            tls: None,
        }
    }
}

/// A configuration value that cannot work; says which and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ServerConfig {
    /// Smallest line limit that still fits a short request (`PING\r\n`) and the error line
    /// logic.
    pub const MIN_LINE_BYTES: usize = 8;
    /// Most concurrent clients: what the limit's semaphore can count (tokio's
    /// `Semaphore::MAX_PERMITS`), far beyond any descriptor limit.
    pub const MAX_CONNECTIONS: usize = tokio::sync::Semaphore::MAX_PERMITS;
    /// Longest timeout or window accepted (about 100 years): a longer one would overflow the
    /// clock arithmetic of the timers that enforce it.
    pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

    /// Checks the values that the types alone do not rule out.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError(message));
        if self.max_connections == 0 || self.max_connections > Self::MAX_CONNECTIONS {
            return fail(format!(
                "max-connections must be between 1 and {}",
                Self::MAX_CONNECTIONS
            ));
        }
        let durations = [
            Some(self.shutdown_timeout),
            self.idle_timeout,
            Some(self.max_restart_window),
        ];
        if durations
            .into_iter()
            .flatten()
            .any(|d| d > Self::MAX_DURATION)
        {
            return fail("timeouts and windows must be at most 100 years".into());
        }
        if self.max_line_bytes < Self::MIN_LINE_BYTES {
            return fail(format!(
                "max-line-bytes must be at least {}",
                Self::MIN_LINE_BYTES
            ));
        }
        if self.max_restart_window.is_zero() {
            return fail("max-restart-window must be positive".into());
        }
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return fail("idle timeout must be positive (None disables it)".into());
        }
        if self
            .event_loops
            .is_some_and(|most| self.min_active_event_loops > most)
        {
            return fail("min-active-event-loops must be at most event-loops".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones_and_valid() {
        let c = ServerConfig::default();
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.max_line_bytes, 65_536);
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert_eq!((c.max_restarts, c.max_restart_window.as_secs()), (3, 5));
        assert_eq!(c.min_active_event_loops.get(), 1);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn values_that_cannot_work_are_refused() {
        let bad = [
            ServerConfig {
                max_connections: 0,
                ..ServerConfig::default()
            },
            ServerConfig {
                max_line_bytes: 2,
                ..ServerConfig::default()
            },
            ServerConfig {
                max_restart_window: Duration::ZERO,
                ..ServerConfig::default()
            },
            ServerConfig {
                idle_timeout: Some(Duration::ZERO),
                ..ServerConfig::default()
            },
            ServerConfig {
                idle_timeout: Some(Duration::from_secs(u64::MAX)),
                ..ServerConfig::default()
            },
            ServerConfig {
                shutdown_timeout: Duration::MAX,
                ..ServerConfig::default()
            },
            ServerConfig {
                max_connections: usize::MAX,
                ..ServerConfig::default()
            },
            ServerConfig {
                event_loops: NonZeroUsize::new(2),
                min_active_event_loops: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
                ..ServerConfig::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
