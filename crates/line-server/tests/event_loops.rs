//! One event loop per core (ServerConfig::event_loops): clients are spread over the loops,
//! each served for life by the loop that took it, and supervision and shutdown hold for
//! every loop.

pub mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

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

impl Session for WhereSession {
    async fn on_line(&mut self, _line: &[u8], out: &mut BytesMut) -> Flow {
        // The same loop, for the connection's whole life.
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

#[tokio::test]
async fn clients_are_spread_evenly_over_the_loops_and_stay_on_theirs() {
    let protocol = WhereServed::default();
    let server = start(protocol.clone(), loops(2));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut client = server.connect().await;
        client.send(b"where\n").await;
        client.expect(b"same\n").await;
        clients.push(client);
    }
    for client in &mut clients {
        client.send(b"still\n").await;
        client.expect(b"same\n").await;
    }
    let mut per_loop: HashMap<String, usize> = HashMap::new();
    for name in protocol.opened.lock().expect("lock").iter() {
        *per_loop.entry(name.clone()).or_default() += 1;
    }
    let expected: HashMap<String, usize> = [
        ("event-loop-0".to_string(), 4),
        ("event-loop-1".to_string(), 4),
    ]
    .into();
    assert_eq!(per_loop, expected);
}

#[tokio::test]
async fn a_new_client_goes_to_the_loop_with_the_fewest_connections() {
    let protocol = WhereServed::default();
    let server = start(protocol.clone(), loops(2));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = server.connect().await;
        client.echo_line_where().await;
        clients.push(client);
    }
    // Loop 0 serves two clients, loop 1 one; that one leaves.
    let mut leaving = clients.remove(1);
    leaving.shutdown_write().await;
    leaving.expect_eof().await;
    let mut ended = protocol.ended.subscribe();
    tokio::time::timeout(common::PATIENCE, ended.wait_for(|n| *n == 1))
        .await
        .expect("the session ends")
        .expect("the protocol is alive");
    // (Its loop's count drops in the same poll as the session, long before the next
    // accept.) Two more clients: both go to loop 1, the less loaded, where taking turns
    // would have given one to each.
    for _ in 0..2 {
        let mut client = server.connect().await;
        client.echo_line_where().await;
        clients.push(client);
    }
    let opened = protocol.opened.lock().expect("lock").clone();
    assert_eq!(
        opened,
        [
            "event-loop-0",
            "event-loop-1",
            "event-loop-0",
            "event-loop-1",
            "event-loop-1"
        ]
    );
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
