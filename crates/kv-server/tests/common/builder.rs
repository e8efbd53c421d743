//! How to start the real `kv-server` binary: [`ServerBuilder`] (arguments, environment,
//! a wrapper such as `prlimit`, where stderr goes), and [`Finished`], a run to its end.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::logs::{parse_port_line, Follow, LogBuffer};
use super::{TestServer, PATIENCE};

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_kv-server");

/// Environment variables the server reads; removed from the inherited environment so a
/// developer's shell cannot change what a test sees.
const SERVER_ENV: &[&str] = &["PORT", "RUST_LOG", "RUST_BACKTRACE"];
const SERVER_ENV_PREFIX: &str = "KV_";

/// Where the server's stderr goes.
#[derive(Debug, Clone)]
enum Stderr {
    /// A pipe the harness reads to the end.
    Captured,
    /// A pipe whose read end the harness closes once the port line is read.
    ClosedAfterPortLine,
    /// A file, appended to; the harness follows it.
    AppendedTo(PathBuf),
}

/// How to start the server: arguments, environment, an optional wrapper command (such as
/// `prlimit`), whether to add `--port 0`, where its stderr goes, and descriptors it
/// inherits from 3 on (socket activation).
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    port_zero: bool,
    stderr: Stderr,
    /// Descriptors the server inherits as 3, 4, ... (sd_listen_fds(3)'s numbering).
    passed: Vec<Arc<OwnedFd>>,
}

impl ServerBuilder {
    /// `kv-server --port 0`, stderr captured.
    pub(super) fn new() -> ServerBuilder {
        ServerBuilder {
            wrapper: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            port_zero: true,
            stderr: Stderr::Captured,
            passed: Vec::new(),
        }
    }

    /// Starts the server as a service manager does for socket activation: with `socket`
    /// as descriptor 3, `LISTEN_FDS=1`, and `LISTEN_PID` its own pid.
    pub fn socket_activated(self, socket: impl Into<OwnedFd>) -> Self {
        self.sockets_activated(vec![socket.into()])
    }

    /// The same with several sockets, as descriptors 3, 4, ...: `LISTEN_FDS` counts them,
    /// and a shell sets `LISTEN_PID` to its own pid, then execs the server (so the pid is
    /// the server's). The test's own copies close when the builder is dropped.
    pub fn sockets_activated(mut self, sockets: Vec<OwnedFd>) -> Self {
        let count = sockets.len().to_string();
        self.passed = sockets
            .iter()
            .map(|fd| Arc::new(above_targets(fd)))
            .collect();
        self.env("LISTEN_FDS", count)
            .wrapped_in(["sh", "-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
    }

    /// Adds arguments after `--port 0`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the server.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Does not pass `--port 0` (to test `PORT` or `--port N` themselves).
    pub fn without_port_flag(mut self) -> Self {
        self.port_zero = false;
        self
    }

    /// Runs the binary through `program args... <binary> ...`, e.g. `prlimit --nofile=64:64`.
    /// The wrapper must exec the binary, so the pid stays the server's.
    pub fn wrapped_in<I, S>(mut self, program_and_args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrapper = program_and_args
            .into_iter()
            .map(|a| a.as_ref().to_owned())
            .collect();
        self
    }

    /// Breaks the server's stderr as a reader that exits does (`kv-server | head -n 2`):
    /// [`start`](Self::start) closes the read end of the stderr pipe once it has read the
    /// port line, so every later write to stderr fails with `EPIPE`. No log line after the
    /// port line is seen.
    pub fn close_stderr_after_port_line(mut self) -> Self {
        self.stderr = Stderr::ClosedAfterPortLine;
        self
    }

    /// Sends the server's stderr to `path` (created if missing, appended to), as
    /// `2>>path` does; log lines are read from the file as it grows.
    pub fn stderr_to_file(mut self, path: &Path) -> Self {
        self.stderr = Stderr::AppendedTo(path.to_path_buf());
        self
    }

    fn command(&self) -> Command {
        let mut command = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BINARY);
                c
            }
            None => Command::new(BINARY),
        };
        if self.port_zero {
            command.args(["--port", "0"]);
        }
        command.args(&self.args);
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if SERVER_ENV.contains(&&*name) || name.starts_with(SERVER_ENV_PREFIX) {
                command.env_remove(&key);
            }
        }
        command.env("RUST_BACKTRACE", "0");
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.stdin(Stdio::null());
        if !self.passed.is_empty() {
            let fds = self.passed.iter().map(|fd| fd.as_raw_fd()).collect();
            inherit_from_fd_3(&mut command, fds);
        }
        command
    }

    /// Starts the server and waits (up to [`PATIENCE`]) for its
    /// `Accepting connections on port N` line. Panics, with the logs, if it never comes.
    pub fn start(&self) -> TestServer {
        let mut server = self.spawn();
        let found = server.logs.wait_until(PATIENCE, |lines| {
            lines.iter().any(|l| parse_port_line(l).is_some())
        });
        if !found {
            let status = server.child.try_wait().ok().flatten();
            panic!(
                "server did not log `Accepting connections on port N` within {PATIENCE:?} \
                 (exit status: {status:?}); logs:\n{}",
                server.logs.snapshot().join("\n")
            );
        }
        server.port = server
            .logs
            .snapshot()
            .iter()
            .find_map(|l| parse_port_line(l))
            .unwrap();
        if let Stderr::ClosedAfterPortLine = self.stderr {
            // The reader stops at the port line and drops the pipe: once joined, the
            // read end is closed.
            if let Some(reader) = server.stderr_reader.take() {
                reader.join().expect("stderr reader");
            }
        }
        server
    }

    /// Starts the process without waiting for anything (for runs expected to fail).
    pub fn spawn(&self) -> TestServer {
        let mut command = self.command();
        command.stdout(Stdio::piped());
        match &self.stderr {
            Stderr::Captured | Stderr::ClosedAfterPortLine => command.stderr(Stdio::piped()),
            Stderr::AppendedTo(path) => command.stderr(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display())),
            ),
        };
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
        let logs = Arc::new(LogBuffer::default());
        let stdout = Arc::new(LogBuffer::default());
        let stop_following = Arc::new(AtomicBool::new(false));
        let never = |_: &str| false;
        let stderr_reader = match &self.stderr {
            Stderr::Captured => logs.clone().capture(child.stderr.take().unwrap(), never),
            Stderr::ClosedAfterPortLine => {
                logs.clone().capture(child.stderr.take().unwrap(), |line| {
                    parse_port_line(line).is_some()
                })
            }
            Stderr::AppendedTo(path) => {
                let file = File::open(path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                let stop = stop_following.clone();
                logs.clone().capture(Follow { file, stop }, never)
            }
        };
        TestServer {
            port: 0,
            logs,
            stdout: stdout.clone(),
            stderr_reader: Some(stderr_reader),
            stdout_reader: Some(stdout.capture(child.stdout.take().unwrap(), never)),
            stop_following,
            stderr_in_file: matches!(self.stderr, Stderr::AppendedTo(_)),
            child,
            exit: None,
        }
    }

    /// Runs the process to completion (killing it and panicking after `timeout`).
    pub fn run_to_exit(&self, timeout: Duration) -> Finished {
        let mut process = self.spawn();
        let status = process.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "process did not exit within {timeout:?}; logs:\n{}",
                process.logs().join("\n")
            )
        });
        // stdout/stderr close when the process exits; let the readers drain them.
        for reader in [process.stderr_reader.take(), process.stdout_reader.take()]
            .into_iter()
            .flatten()
        {
            let _ = reader.join();
        }
        Finished {
            status,
            stdout: process.stdout.snapshot().join("\n"),
            stderr: process.logs().join("\n"),
        }
    }
}

/// A process that ran to completion.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Where passed descriptors wait in the parent: far above 3, 4, ..., so that moving one
/// into place in the child never overwrites another still to be moved.
const PASSED_FROM: RawFd = 64;

/// A duplicate of `fd` numbered [`PASSED_FROM`] or more, closed on exec.
fn above_targets(fd: &OwnedFd) -> OwnedFd {
    // SAFETY: fcntl(2) F_DUPFD_CLOEXEC on an open descriptor we borrow; no memory is passed.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, PASSED_FROM) };
    assert!(raw >= 0, "dup: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` was just made by fcntl, is open, and nothing else owns it.
    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
}

/// Makes `fds` (all numbered [`PASSED_FROM`] or more) the child's descriptors 3, 4, ...,
/// open across exec.
fn inherit_from_fd_3(command: &mut Command, fds: Vec<RawFd>) {
    let in_child = move || {
        for (target, &fd) in (3..).zip(&fds) {
            // The copy dup2 makes is open across exec (dup2(2)); `fd` is never `target`.
            // SAFETY: dup2(2) on descriptor numbers; no memory is passed.
            if unsafe { libc::dup2(fd, target) } == -1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: `pre_exec` runs the closure in the child between fork and exec, where only
    // async-signal-safe calls are sound (signal-safety(7)): it calls dup2, which is on
    // that list, allocates nothing (the vector was built before the fork) and takes no
    // lock (`last_os_error` reads errno). The descriptors stay open in the parent until
    // the spawn returns: the builder owns them.
    unsafe {
        command.pre_exec(in_child);
    }
}
