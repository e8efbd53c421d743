//! Supervision (docs/OPERATIONS.md, "Behaviour under failure"), with crashes injected by [`Faulty`]: a
//! panicking connection ends only itself; a panicking acceptor is restarted on the same
//! port while existing connections go on; past the restart intensity, `serve` gives up
//! (OTP's escalation). What the binary logs about it (a panic naming the peer, a restart,
//! giving up) and its exit status are tested through it, in
//! `crates/kv-server/tests/client_logs.rs` and `supervision.rs`.

pub mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{start, PATIENCE};
use line_server::{Echo, Faulty, Protocol, ServeError, ServerConfig};
use tokio::sync::watch;

/// `Faulty<Echo>` that counts how often an acceptor has started: once at the start, then
/// once per restart. It is how a test knows that a restart has happened.
struct CountingAcceptors {
    inner: Faulty<Echo>,
    starts: Arc<watch::Sender<usize>>,
}

impl CountingAcceptors {
    fn new() -> (CountingAcceptors, Starts) {
        let starts = Arc::new(watch::channel(0).0);
        let protocol = CountingAcceptors {
            inner: Faulty::new(Echo),
            starts: Arc::clone(&starts),
        };
        (protocol, Starts(starts))
    }
}

impl Protocol for CountingAcceptors {
    type Session = <Faulty<Echo> as Protocol>::Session;

    fn open_session(&self, peer: SocketAddr) -> Self::Session {
        self.inner.open_session(peer)
    }

    /// Each acceptor polls its hook as soon as it runs: that is when it counts as started.
    async fn acceptor_hook(&self) {
        self.starts.send_modify(|n| *n += 1);
        self.inner.acceptor_hook().await;
    }
}

/// How often the acceptor of a [`CountingAcceptors`] has started.
struct Starts(Arc<watch::Sender<usize>>);

impl Starts {
    /// Waits until an acceptor has started `n` times in all.
    async fn until(&self, n: usize) {
        let mut starts = self.0.subscribe();
        tokio::time::timeout(PATIENCE, starts.wait_for(|s| *s >= n))
            .await
            .unwrap_or_else(|_| panic!("the acceptor did not start {n} times"))
            .expect("the counter is alive");
    }

    fn now(&self) -> usize {
        *self.0.borrow()
    }
}

fn restarts(max_restarts: u32, window: Duration) -> ServerConfig {
    ServerConfig {
        max_restarts,
        max_restart_window: window,
        ..ServerConfig::default()
    }
}

// --- a crashing connection --------------------------------------------------------------

#[tokio::test]
async fn a_panicking_connection_closes_only_itself() {
    let server = start(Faulty::new(Echo), ServerConfig::default());
    let mut bystander = server.connect().await;
    bystander.echo(b"watching\r\n").await;

    let mut victim = server.connect().await;
    victim.echo(b"about to crash\r\n").await;
    victim.send(b"DEBUG PANIC\r\n").await;
    victim.expect_closed().await;

    bystander.echo(b"unharmed\r\n").await;
    server.connect().await.echo(b"newcomer served\r\n").await;
    server
        .stop()
        .await
        .expect("a panicking connection is no failure of the server");
}

#[tokio::test]
async fn many_panicking_connections_never_take_the_server_down() {
    let server = start(Faulty::new(Echo), ServerConfig::default());
    let mut bystander = server.connect().await;
    bystander.echo(b"watching\r\n").await;
    for i in 0..20 {
        let mut victim = server.connect().await;
        victim.echo(format!("victim {i}\r\n").as_bytes()).await;
        victim.send(b"debug panic\r\n").await;
        victim.expect_closed().await;
    }
    bystander.echo(b"still unharmed\r\n").await;
    server.connect().await.echo(b"still accepting\r\n").await;
    server.stop().await.expect("no escalation");
}

// --- a crashing acceptor ------------------------------------------------------------------

#[tokio::test]
async fn a_panicking_acceptor_is_restarted_on_the_same_port_and_existing_clients_keep_working() {
    let (protocol, starts) = CountingAcceptors::new();
    let server = start(protocol, ServerConfig::default());
    let mut existing = server.connect().await;
    existing.echo(b"connected before\r\n").await;
    assert_eq!(starts.now(), 1);

    let mut trigger = server.connect().await;
    trigger.send(b"DEBUG ACCEPTOR-PANIC\r\n").await;
    trigger.expect(b"OK\r\n").await;
    starts.until(2).await;

    existing.echo(b"untouched by the restart\r\n").await;
    trigger.echo(b"me too\r\n").await;
    // Same port: the restarted acceptor kept the listening socket.
    let mut newcomer = server.connect().await;
    newcomer.echo(b"accepted after the restart\r\n").await;
    server
        .stop()
        .await
        .expect("one restart is within the intensity");
}

#[tokio::test]
async fn the_default_restart_intensity_tolerates_three_acceptor_failures() {
    let (protocol, starts) = CountingAcceptors::new();
    let server = start(protocol, ServerConfig::default());
    let mut trigger = server.connect().await;
    for restart in 1..=3 {
        trigger.send(b"debug acceptor-panic\r\n").await;
        trigger.expect(b"OK\r\n").await;
        starts.until(1 + restart).await;
        server
            .connect()
            .await
            .echo(format!("accepted after restart {restart}\r\n").as_bytes())
            .await;
    }
    assert!(server.is_serving());
    server
        .stop()
        .await
        .expect("three restarts are within the intensity");
}

#[tokio::test]
async fn an_acceptor_failing_more_than_max_restarts_times_makes_serve_give_up() {
    let (protocol, starts) = CountingAcceptors::new();
    let server = start(protocol, restarts(2, Duration::from_secs(60)));
    let mut trigger = server.connect().await;
    for restart in 1..=2 {
        trigger.send(b"DEBUG ACCEPTOR-PANIC\r\n").await;
        trigger.expect(b"OK\r\n").await;
        starts.until(1 + restart).await;
        server.connect().await.echo(b"still accepting\r\n").await;
    }
    let addr = server.addr();
    trigger.send(b"DEBUG ACCEPTOR-PANIC\r\n").await;
    trigger.expect(b"OK\r\n").await;
    match server.returned().await {
        Err(ServeError::Escalated(escalation)) => {
            assert_eq!(escalation.child, "acceptor");
            assert_eq!(escalation.max_restarts, 2);
        }
        other => panic!("expected an escalation, got {other:?}"),
    }
    assert_eq!(starts.now(), 3, "no restart after the one too many");
    // The whole tree is down: connections closed, the port no longer listening.
    trigger.expect_eof().await;
    assert!(common::Client::connect(addr).await.is_err());
}
