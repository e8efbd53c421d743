//! Up to one event loop per core (ServerConfig::event_loops): new clients go to the loops
//! the load needs — one while it is light, another once those are busy — each client
//! served by the loop that took it unless the load moves it (tests/migration.rs);
//! supervision and shutdown hold for every loop.

pub mod common;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{start, Gate};
use line_server::{Echo, Faulty, Flow, Protocol, ServerConfig, Session};

/// Echo that notes which thread opened each session and which served each line: a session
/// is opened on the loop that will serve it, so the names count connections per loop.
#[derive(Clone, Default)]
struct WhereServed {
    opened: Arc<Mutex<Vec<String>>>,
    /// Sessions ended so far.
    ended: Arc<tokio::sync::watch::Sender<usize>>,
}

struct WhereSession {
    opened_on: String,
    ended: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Drop for WhereSession {
    fn drop(&mut self) {
        self.ended.send_modify(|n| *n += 1);
    }
}

fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string()
}

impl Protocol for WhereServed {
    type Session = WhereSession;

    fn open_session(&self, _peer: SocketAddr) -> WhereSession {
        let opened_on = thread_name();
        self.opened.lock().expect("lock").push(opened_on.clone());
        WhereSession {
            opened_on,
            ended: Arc::clone(&self.ended),
        }
    }
}

/// Held by each test that keeps a loop busy: two at once would leave no core idle, and a
/// loop is activated only while one is (balance.rs).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a `spin` line keeps its loop busy.
const SPIN: Duration = Duration::from_millis(5);

impl Session for WhereSession {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        if line.starts_with(b"spin") {
            // Holds the loop, as a CPU-heavy request does.
            let start = Instant::now();
            while start.elapsed() < SPIN {
                std::hint::spin_loop();
            }
            // A busy connection may be moved to another loop: that is not asked here.
            out.extend_from_slice(b"spun\n");
            return Flow::Continue;
        }
        // The same loop as the one that opened the session.
        let same = thread_name() == self.opened_on;
        out.extend_from_slice(if same { b"same\n" } else { b"moved\n" });
        Flow::Continue
    }
}

fn loops(n: usize) -> ServerConfig {
    ServerConfig {
        event_loops: NonZeroUsize::new(n),
        ..ServerConfig::default()
    }
}

impl WhereServed {
    fn opened(&self) -> Vec<String> {
        self.opened.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn while_the_load_is_light_every_client_goes_to_the_first_loop_and_stays_there() {
    let protocol = WhereServed::default();
    let server = start(protocol.clone(), loops(2));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut client = server.connect().await;
        client.echo_line_where().await;
        clients.push(client);
    }
    for client in &mut clients {
        client.echo_line_where().await;
    }
    assert_eq!(protocol.opened(), vec!["event-loop-0"; 8]);
    let stats = server.stats().await;
    assert_eq!(stats.connections_per_loop(), [8, 0]);
    let now = stats.snapshot();
    assert_eq!((now.event_loops, now.active_event_loops), (2, 1));
}

#[tokio::test]
async fn with_every_loop_kept_active_clients_are_spread_evenly_however_light_the_load() {
    let protocol = WhereServed::default();
    let config = ServerConfig {
        min_active_event_loops: NonZeroUsize::new(2).expect("two"),
        ..loops(2)
    };
    let server = start(protocol.clone(), config);
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut client = server.connect().await;
        client.echo_line_where().await;
        clients.push(client);
    }
    let stats = server.stats().await;
    assert_eq!(stats.connections_per_loop(), [4, 4]);
    assert_eq!(stats.snapshot().active_event_loops, 2);
}

/// Keeps the loop serving `client` busy with `spin` lines until aborted.
fn keep_busy(mut client: common::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            client.send(b"spin\nspin\nspin\nspin\n").await;
            client.expect(b"spun\nspun\nspun\nspun\n").await;
        }
    })
}

/// Connects a client every few milliseconds until one is opened on `wanted`; returns them.
async fn connect_until_one_lands_on(
    server: &common::TestServer,
    protocol: &WhereServed,
    wanted: &str,
) -> Vec<common::Client> {
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    let mut clients = Vec::new();
    loop {
        let mut client = server.connect().await;
        client.echo_line_where().await;
        clients.push(client);
        if protocol.opened().last().is_some_and(|name| name == wanted) {
            return clients;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no client on {wanted}: {:?}",
            protocol.opened()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_busy_loop_activates_another_for_new_clients_until_the_load_stops() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let protocol = WhereServed::default();
    let server = start(protocol.clone(), loops(2));
    let stats = server.stats().await;
    let mut busy = server.connect().await;
    busy.echo_line_where().await;
    let load = keep_busy(busy);

    let _clients = connect_until_one_lands_on(&server, &protocol, "event-loop-1").await;
    assert!(protocol.opened().starts_with(&["event-loop-0".to_string()]));

    load.abort();
    common::eventually("the second loop is deactivated", || {
        stats.snapshot().active_event_loops == 1
    })
    .await;
    server.connect().await.echo_line_where().await;
    assert_eq!(
        protocol.opened().last().map(String::as_str),
        Some("event-loop-0")
    );
}

#[tokio::test]
async fn one_event_loop_never_activates_another() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let protocol = WhereServed::default();
    let server = start(protocol.clone(), loops(1));
    let stats = server.stats().await;
    let mut busy = server.connect().await;
    busy.echo_line_where().await;
    let load = keep_busy(busy);
    // Several measuring windows of load, a client connecting in each.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        server.connect().await.echo_line_where().await;
        assert_eq!(stats.snapshot().active_event_loops, 1);
    }
    load.abort();
    assert!(protocol.opened().iter().all(|name| name == "event-loop-0"));
}

/// A line that any `WhereServed` session answers, for a client that only needs to know it
/// is being served.
trait Served {
    async fn echo_line_where(&mut self);
}

impl Served for common::Client {
    async fn echo_line_where(&mut self) {
        self.send(b"where\n").await;
        self.expect(b"same\n").await;
    }
}

#[tokio::test]
async fn a_panic_on_one_loop_ends_that_connection_only_and_an_acceptor_restart_keeps_the_loops() {
    let server = start(Faulty::new(Echo), loops(2));
    let mut a = server.connect().await;
    a.echo(b"a\n").await;
    let mut b = server.connect().await;
    b.echo(b"b\n").await;
    b.send(b"DEBUG PANIC\n").await;
    b.expect_closed().await;
    a.echo(b"a still served\n").await;

    a.send(b"DEBUG ACCEPTOR-PANIC\n").await;
    a.expect(b"OK\r\n").await;
    // The restarted acceptor feeds the same loops; old and new clients are served.
    for _ in 0..4 {
        server.connect().await.echo(b"new client\n").await;
    }
    a.echo(b"a after the restart\n").await;
}

#[tokio::test]
async fn graceful_shutdown_answers_busy_connections_on_every_loop_then_returns() {
    let gate = Gate::default();
    let server = start(gate.clone(), loops(2));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = server.connect().await;
        client.send(b"wait\n").await;
        clients.push(client);
    }
    gate.until_waiting(4).await;
    server.begin_shutdown();
    gate.open();
    for client in &mut clients {
        client.expect(b"done\r\n").await;
        client.expect_eof().await;
    }
    server.returned().await.expect("serve returns Ok");
}
