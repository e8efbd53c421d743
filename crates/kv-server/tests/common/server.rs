//! A running `kv-server` process: its port, its log, signals, its exit; killed when
//! dropped, also when the test panics.

use std::io;
use std::net::SocketAddr;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::builder::ServerBuilder;
use super::logs::{log_level, LogBuffer};
use super::{Client, PATIENCE};

/// A running `kv-server`; killed when dropped.
/// Its fields are set by [`ServerBuilder`].
pub struct TestServer {
    pub(super) child: Child,
    /// From the server's own log line.
    pub(super) port: u16,
    /// stderr, line by line.
    pub(super) logs: Arc<LogBuffer>,
    /// stdout, line by line.
    pub(super) stdout: Arc<LogBuffer>,
    pub(super) stderr_reader: Option<thread::JoinHandle<()>>,
    pub(super) stdout_reader: Option<thread::JoinHandle<()>>,
    /// Ends the reader that follows a stderr file (the file has no EOF to end it).
    pub(super) stop_following: Arc<AtomicBool>,
    /// Whether stderr goes to a file: then dropping waits for its reader to close it.
    pub(super) stderr_in_file: bool,
    /// The exit status, once the process has been reaped.
    pub(super) exit: Option<ExitStatus>,
}

impl TestServer {
    /// A builder for `kv-server --port 0 <args>`.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    /// Starts `kv-server --port 0 <args>` and waits for its port line.
    pub fn start(args: &[&str]) -> TestServer {
        Self::builder().args(args).start()
    }

    /// Starts `kv-server --port 0 --mode echo <args>`.
    pub fn echo(args: &[&str]) -> TestServer {
        Self::builder().args(["--mode", "echo"]).args(args).start()
    }

    /// The port from the server's own log line.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Connects a new client (panics if the connection cannot be made).
    pub fn connect(&self) -> Client {
        Client::connect(self.addr()).unwrap_or_else(|e| {
            panic!(
                "cannot connect to {}: {e}; logs:\n{}",
                self.addr(),
                self.logs().join("\n")
            )
        })
    }

    /// Every stderr line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.snapshot()
    }

    /// Lines logged at `level` (`ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`).
    pub fn logs_at(&self, level: &str) -> Vec<String> {
        self.logs()
            .into_iter()
            .filter(|l| log_level(l) == Some(level))
            .collect()
    }

    /// Lines containing `needle`.
    pub fn logs_containing(&self, needle: &str) -> Vec<String> {
        self.logs()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    /// Waits for a line containing every one of `needles`; returns it, or panics with
    /// the logs after `timeout`.
    pub fn wait_for_log_with(&self, needles: &[&str], timeout: Duration) -> String {
        let matches = |l: &String| needles.iter().all(|n| l.contains(n));
        if self
            .logs
            .wait_until(timeout, |lines| lines.iter().any(matches))
        {
            return self.logs().into_iter().find(matches).unwrap();
        }
        panic!(
            "no log line containing {needles:?} within {timeout:?}; logs:\n{}",
            self.logs().join("\n")
        );
    }

    /// Waits for a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log_with(&[needle], timeout)
    }

    /// Waits until `count` lines contain `needle`.
    pub fn wait_for_log_count(&self, needle: &str, count: usize, timeout: Duration) {
        let enough =
            |lines: &[String]| lines.iter().filter(|l| l.contains(needle)).count() >= count;
        assert!(
            self.logs.wait_until(timeout, enough),
            "fewer than {count} log lines containing {needle:?} within {timeout:?}; logs:\n{}",
            self.logs().join("\n")
        );
    }

    /// Sends a signal (`libc::SIGTERM`, `libc::SIGINT`, ...) to the server.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a pid we spawned and have not reaped (Drop reaps it).
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            io::Error::last_os_error()
        );
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                self.stop_following.store(true, Ordering::SeqCst);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with SIGTERM and checks that it exits 0 (panics with the logs if
    /// it does not).
    pub fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = self.expect_exit(PATIENCE);
        assert!(
            status.success(),
            "SIGTERM must exit 0, got {status}; logs:\n{}",
            self.logs().join("\n")
        );
    }

    /// Waits for the process to exit, panicking with the logs after `timeout`.
    pub fn expect_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "server did not exit within {timeout:?}; logs:\n{}",
                self.logs().join("\n")
            )
        })
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.wait_exit(Duration::ZERO).is_none()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.stop_following.store(true, Ordering::SeqCst);
        // So that the file's disk can be unmounted once the server is dropped.
        if self.stderr_in_file {
            if let Some(reader) = self.stderr_reader.take() {
                let _ = reader.join();
            }
        }
    }
}
