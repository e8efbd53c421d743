//! What kv-cli's tests share: a real kv-server served in this process (line-server's
//! `serve` over KV mode and an in-memory store, behind `Auth` as the binary serves it) on a
//! loopback port, and the kv-cli binary run against it with a deadline.
//!
//! Every process a test starts is killed when its guard is dropped, and every server is
//! stopped when its [`TestServer`] is, also when the test panics.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kv_server::kv::Kv;
use kv_store::MemoryStore;
use line_server::{bind, serve, Auth, Password, ServerConfig, Tls};
use tokio_util::sync::CancellationToken;

/// Upper bound for anything that should happen "at once": generous, because a 2-core
/// machine running the suite in parallel can stall a process for seconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How a test server is set up.
#[derive(Default)]
pub struct Spec {
    /// `--requirepass`
    pub password: Option<&'static str>,
    /// `--tls-cert-file` and friends.
    pub tls: Option<Tls>,
    /// Limits (`max_line_bytes`...).
    pub config: ServerConfig,
}

/// A kv-server on its own thread and runtime, on a loopback port.
pub struct TestServer {
    pub port: u16,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A plain server, no password, on a free port.
    pub fn start() -> Self {
        Self::with(Spec::default())
    }

    /// A server as `spec` says, on a free port.
    /// A plain server behind `--requirepass password`.
    pub fn with_password(password: &'static str) -> Self {
        Self::with(Spec {
            password: Some(password),
            ..Spec::default()
        })
    }

    pub fn with(spec: Spec) -> Self {
        Self::at(([127, 0, 0, 1], 0).into(), spec)
    }

    /// A server as `spec` says, on `addr` (a port a stopped server used: a restart).
    pub fn at(addr: SocketAddr, spec: Spec) -> Self {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let (port_tx, port_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = bind(addr).expect("bind the port");
                let port = listener.local_addr().expect("the bound address").port();
                port_tx.send(port).expect("the test waits for the port");
                let password = spec.password.map(|p| Password::new(p.as_bytes()));
                let protocol =
                    Auth::new(Kv::new(MemoryStore::new()), password.map(Into::into), true);
                let config = ServerConfig {
                    tls: spec.tls,
                    ..spec.config
                };
                serve(listener, &config, protocol, token)
                    .await
                    .expect("serve stops cleanly");
            });
        });
        let port = port_rx.recv_timeout(PATIENCE).expect("the server started");
        Self {
            port,
            shutdown,
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Shuts it down and waits until it has.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// kv-cli pointed at `port`, with none of the caller's environment that would change what
/// it does: no `KV_PASSWORD`, no history file.
pub fn kv_cli(port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kv-cli"));
    command
        .args(["-p", &port.to_string()])
        .env_remove("KV_PASSWORD")
        .env_remove("XDG_STATE_HOME")
        .env("KV_CLI_HISTFILE", "");
    command
}

/// A child process killed and reaped when dropped.
pub struct Running(pub Child);

impl Running {
    /// Starts `command` with stdout and stderr captured and stdin piped.
    pub fn spawn(mut command: Command) -> Self {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kv-cli");
        Running(child)
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        let pid = libc::pid_t::try_from(self.0.id()).expect("a pid");
        // SAFETY: kill(2) with a valid signal number on our own child, which is not yet
        // reaped (we hold the Child), so the pid cannot have been reused.
        let sent = unsafe { libc::kill(pid, libc::SIGINT) };
        assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the exit, at most [`PATIENCE`] (then kills it and panics), reading
    /// stdout and stderr meanwhile (outputs larger than a pipe holds); then its output.
    pub fn finish(mut self) -> Output {
        let read = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let out = read(self.0.stdout.take().map(|p| Box::new(p) as _));
        let err = read(self.0.stderr.take().map(|p| Box::new(p) as _));
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            match self.0.try_wait().expect("wait for kv-cli") {
                Some(status) => break status,
                None if Instant::now() > deadline => {
                    let _ = self.0.kill();
                    panic!("kv-cli did not exit in time");
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        Output {
            status,
            stdout: out.join().expect("stdout read"),
            stderr: err.join().expect("stderr read"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` with `input` on its stdin, to the end, within [`PATIENCE`].
pub fn run(command: Command, input: &[u8]) -> Output {
    let mut running = Running::spawn(command);
    let mut stdin = running.0.stdin.take().expect("stdin piped");
    let input = input.to_vec();
    // Written from a thread: a big input fills the pipe while kv-cli's replies fill the
    // other one, and the test must read those at the same time.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = running.finish();
    let _ = writer.join();
    output
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code (panics on a death by signal, which no test expects).
pub fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {output:?}"))
}

/// Asserts that kv-cli exited 0 having printed `PONG` (stderr shown if not).
pub fn assert_pong(output: &Output) {
    assert_eq!(
        (code(output), stdout(output)),
        (0, "PONG\n".into()),
        "{}",
        stderr(output)
    );
}
