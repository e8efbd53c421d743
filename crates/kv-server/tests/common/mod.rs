//! The end-to-end harness: runs the real `kv-server` binary on `--port 0` and talks to it
//! over real loopback sockets with plain blocking std I/O.
//!
//! Everything is bounded in time: a client socket has read and write timeouts, waiting for
//! a log line or an exit has an explicit deadline, and every process a test starts is
//! killed when its [`TestServer`] is dropped (also when the test panics).
//!
//! Each test file includes this module, so not every helper is used by every file.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_kv-server");

/// Upper bound for anything that should happen "at once": generous, because a noisy
/// 2-core machine running the suite in parallel can stall a process for seconds. Never
/// used to assert that something was fast.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Environment variables the server reads; removed from the inherited environment so a
/// developer's shell cannot change what a test sees.
const SERVER_ENV: &[&str] = &["PORT", "RUST_LOG", "RUST_BACKTRACE"];
const SERVER_ENV_PREFIX: &str = "KV_";

/// Log lines, appended by a background thread as the process writes them to stderr.
#[derive(Default)]
struct LogBuffer {
    lines: Mutex<Vec<String>>,
    /// Notified on every new line and when stderr closes.
    changed: Condvar,
}

impl LogBuffer {
    /// Reads `source` line by line until EOF (non-UTF-8 bytes are replaced, never fatal),
    /// or until a line for which `last` holds: then `source` is dropped at once.
    fn capture(
        self: Arc<Self>,
        source: impl Read + Send + 'static,
        last: fn(&str) -> bool,
    ) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let mut reader = BufReader::new(source);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim_end_matches(['\r', '\n']).to_owned();
                        let stop = last(&text);
                        self.lines.lock().unwrap().push(text);
                        self.changed.notify_all();
                        if stop {
                            break;
                        }
                    }
                }
            }
            drop(reader);
            self.changed.notify_all();
        })
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until `done(lines)` holds; returns whether it did before `timeout`.
    fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if done(&lines) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Woken by new lines; the short cap also re-checks if the writer is gone.
            let wait = (deadline - now).min(Duration::from_millis(200));
            lines = self.changed.wait_timeout(lines, wait).unwrap().0;
        }
    }
}

/// Reads a file that another process appends to, as `tail -f` does: at its end it waits
/// for more until `stop` is set, then reads what is left and ends.
struct Follow {
    file: File,
    stop: Arc<AtomicBool>,
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Checked before reading, so the last read comes after the stop.
            let stopping = self.stop.load(Ordering::SeqCst);
            let n = self.file.read(buf)?;
            if n > 0 || stopping {
                return Ok(n);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

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
/// `prlimit`), whether to add `--port 0`, and where its stderr goes.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    port_zero: bool,
    stderr: Stderr,
}

impl ServerBuilder {
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

/// The `N` of an `Accepting connections on port N` log line.
fn parse_port_line(line: &str) -> Option<u16> {
    let rest = line.split("Accepting connections on port ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A running `kv-server`; killed when dropped.
pub struct TestServer {
    child: Child,
    port: u16,
    logs: Arc<LogBuffer>,
    stdout: Arc<LogBuffer>,
    stderr_reader: Option<thread::JoinHandle<()>>,
    stdout_reader: Option<thread::JoinHandle<()>>,
    /// Ends the reader that follows a stderr file (the file has no EOF to end it).
    stop_following: Arc<AtomicBool>,
    /// Whether stderr goes to a file: then dropping waits for its reader to close it.
    stderr_in_file: bool,
    exit: Option<ExitStatus>,
}

impl TestServer {
    /// A builder for `kv-server --port 0 <args>`.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            wrapper: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            port_zero: true,
            stderr: Stderr::Captured,
        }
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

    /// The server's resident memory, from `/proc/<pid>/status`, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    /// How many file descriptors the server has open, from `/proc/<pid>/fd`.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("list /proc/<pid>/fd")
            .count()
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

/// The level column of a log line (`2024-01-01T00:00:00Z  WARN target: message`).
pub fn log_level(line: &str) -> Option<&str> {
    let level = line.split_whitespace().nth(1)?;
    ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
        .contains(&level)
        .then_some(level)
}

/// A blocking client with read and write timeouts, so a test never hangs on a socket.
pub struct Client {
    stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, PATIENCE)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_write_timeout(Some(PATIENCE))?;
        Ok(Client { stream })
    }

    /// The client's own address: the `peer` the server logs.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// A second handle on the same socket (for a reader and a writer thread).
    pub fn try_clone(&self) -> Client {
        Client {
            stream: self.stream.try_clone().unwrap(),
        }
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    pub fn set_write_timeout(&self, timeout: Duration) {
        self.stream.set_write_timeout(Some(timeout)).unwrap();
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send {:?}: {e}", show(bytes)));
    }

    /// Reads exactly `n` bytes.
    pub fn read_exactly(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let mut got = 0;
        while got < n {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => panic!("EOF after {got} of {n} bytes; got {:?}", show(&buf[..got])),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "reading {n} bytes: {e} after {got} bytes {:?}",
                    show(&buf[..got])
                ),
            }
        }
        buf
    }

    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exactly(expected.len());
        assert_eq!(show(&got), show(expected), "unexpected reply bytes");
    }

    /// Sends `line` and expects it back byte for byte.
    pub fn echo(&mut self, line: &[u8]) {
        self.send(line);
        self.expect(line);
    }

    /// Reads up to and including the next `\n`.
    pub fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => panic!("EOF in the middle of a line: {:?}", show(&line)),
                Ok(_) => {
                    line.push(byte[0]);
                    if byte[0] == b'\n' {
                        return line;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("reading a line: {e} after {:?}", show(&line)),
            }
        }
    }

    /// Expects a clean end of stream (FIN) with no further bytes.
    pub fn expect_eof(&mut self) {
        let mut buf = [0u8; 256];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("expected EOF, got {:?}", show(&buf[..n])),
            Err(e) => panic!("expected EOF, got error: {e}"),
        }
    }

    /// Expects the server to have closed the connection: EOF, or a reset when the server
    /// had to discard bytes this client was still sending. No further bytes.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 256];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!("expected the connection closed, got {:?}", show(&buf[..n])),
            Err(e) => panic!("expected the connection closed, got error: {e}"),
        }
    }

    /// Asserts that nothing arrives within `wait` (a negative check: with a correct server
    /// it cannot fail however slow the machine is).
    pub fn expect_nothing_for(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 256];
        let got = self.stream.peek(&mut buf);
        self.stream.set_read_timeout(Some(PATIENCE)).unwrap();
        match got {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Ok(0) => panic!("expected nothing, got EOF"),
            Ok(n) => panic!("expected nothing, got {:?}", show(&buf[..n])),
            Err(e) => panic!("expected nothing, got error: {e}"),
        }
    }

    /// Whether bytes (or EOF) are waiting to be read right now, without blocking.
    pub fn has_pending_input(&self) -> bool {
        self.stream.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1];
        let got = self.stream.peek(&mut buf);
        self.stream.set_nonblocking(false).unwrap();
        match got {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("peek: {e}"),
        }
    }

    /// Half-closes: no more bytes from this client, replies can still arrive.
    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// Closes abruptly: `SO_LINGER` 0 makes the close send an RST instead of a FIN.
    pub fn reset(self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a descriptor we own, with a correctly sized `linger`.
        let rc = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
        drop(self);
    }
}

/// Bytes shown as an escaped string in assertion messages.
pub fn show(bytes: &[u8]) -> String {
    let shown: String = bytes.escape_ascii().to_string();
    if shown.len() > 300 {
        format!("{}... ({} bytes)", &shown[..300], bytes.len())
    } else {
        shown
    }
}

/// A port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `f` on `threads` threads at once and returns their errors (empty: all passed).
/// Each thread starts only when all are spawned, so the work really overlaps.
pub fn run_at_once<F>(threads: usize, f: F) -> Vec<String>
where
    F: Fn(usize) -> Result<(), String> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let f = f.clone();
            let gate = gate.clone();
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let (open, cvar) = &*gate;
                    let guard = open.lock().unwrap();
                    // Bounded: if the gate never opens, run anyway.
                    drop(
                        cvar.wait_timeout_while(guard, PATIENCE, |open| !*open)
                            .unwrap(),
                    );
                    f(i)
                })
                .expect("spawn thread")
        })
        .collect();
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    handles
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| match h.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("thread {i}: {e}")),
            Err(_) => Some(format!("thread {i} panicked")),
        })
        .collect()
}

/// The fallible twin of `Client::echo` for worker threads: connect, echo each line, and
/// report what went wrong instead of panicking.
pub fn try_echo_lines(client: &mut TcpStream, lines: &[Vec<u8>]) -> Result<(), String> {
    for line in lines {
        client
            .write_all(line)
            .map_err(|e| format!("send {:?}: {e}", show(line)))?;
        let mut got = vec![0; line.len()];
        client
            .read_exact(&mut got)
            .map_err(|e| format!("echo of {:?}: {e}", show(line)))?;
        if &got != line {
            return Err(format!("sent {:?}, got {:?}", show(line), show(&got)));
        }
    }
    Ok(())
}

/// A plain std connection with the harness's timeouts, for worker threads.
pub fn try_connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream =
        TcpStream::connect_timeout(&addr, PATIENCE).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    Ok(stream)
}

/// Sends one request and expects its exact reply.
pub fn ask(client: &mut Client, request: &[u8], reply: &[u8]) {
    client.send(request);
    client.expect(reply);
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "kv-test-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Mounts a small tmpfs at `dir` (needs root); unmounted when dropped.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    pub fn mount(dir: &Path, size: &str) -> SmallDisk {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test simulates a full disk with a small tmpfs and needs root to mount it"
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
