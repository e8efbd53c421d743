//! The machinery counts what `INFO` and metrics report: connections received, connected
//! and rejected, acceptor restarts and client panics.

pub mod common;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::BytesMut;
use common::{start, PATIENCE};
use line_server::{
    Echo, Faulty, Flow, Protocol, ServerConfig, ServerStats, Session, StatsSnapshot,
};

/// Polls until `done` holds for the stats (the server counts on its own tasks).
async fn until(stats: &ServerStats, done: impl Fn(&StatsSnapshot) -> bool) -> StatsSnapshot {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = stats.snapshot();
        if done(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stats never got there: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn connections_are_counted_received_connected_and_rejected() {
    let config = ServerConfig {
        max_connections: 2,
        event_loops: NonZeroUsize::new(2),
        ..ServerConfig::default()
    };
    let server = start(Echo, config);
    let stats = server.stats().await;
    let mut a = server.connect().await;
    a.echo(b"a\n").await;
    let mut b = server.connect().await;
    b.echo(b"b\n").await;
    let mut refused = server.connect().await;
    refused.expect(b"ERROR too many connections\r\n").await;
    let now = until(&stats, |s| s.rejected_connections == 1).await;
    assert_eq!((now.rejected_over_limit, now.rejected_on_open), (1, 0));
    assert_eq!(now.connections_received, 3);
    assert_eq!(now.connected_clients, 2);
    assert_eq!(now.max_connections, 2);
    assert_eq!(now.port, server.addr().port());
    drop(a);
    until(&stats, |s| s.connected_clients == 1).await;
}

/// Turns every client away when it connects, as protected mode does a remote one.
struct Goodbye;

struct GoodbyeSession;

impl Protocol for Goodbye {
    type Session = GoodbyeSession;

    fn open_session(&self, _peer: SocketAddr) -> GoodbyeSession {
        GoodbyeSession
    }
}

impl Session for GoodbyeSession {
    fn on_open(&mut self, out: &mut BytesMut) -> Flow {
        out.extend_from_slice(b"goodbye\r\n");
        Flow::Close
    }

    async fn on_line(&mut self, _line: &[u8], _out: &mut BytesMut) -> Flow {
        Flow::Close
    }
}

#[tokio::test]
async fn a_client_turned_away_when_it_connects_is_a_rejection() {
    let server = start(Goodbye, ServerConfig::default());
    let stats = server.stats().await;
    let mut client = server.connect().await;
    client.expect(b"goodbye\r\n").await;
    client.expect_eof().await;
    let now = until(&stats, |s| s.rejected_connections == 1).await;
    assert_eq!(now.connections_received, 1);
    assert_eq!((now.rejected_on_open, now.rejected_over_limit), (1, 0));
}

#[tokio::test]
async fn panics_and_acceptor_restarts_are_counted() {
    let server = start(Faulty::new(Echo), ServerConfig::default());
    let stats = server.stats().await;
    let mut victim = server.connect().await;
    victim.send(b"DEBUG PANIC\n").await;
    victim.expect_closed().await;
    until(&stats, |s| s.client_panics == 1).await;
    let mut trigger = server.connect().await;
    trigger.send(b"DEBUG ACCEPTOR-PANIC\n").await;
    trigger.expect(b"OK\r\n").await;
    until(&stats, |s| s.acceptor_restarts == 1).await;
    server.connect().await.echo(b"still accepting\n").await;
}

/// Bytes in and out: every byte a client sent, every byte of the replies, on a loop or on
/// the caller's runtime.
#[tokio::test]
async fn bytes_received_and_sent_are_counted() {
    for event_loops in [None, NonZeroUsize::new(2)] {
        let config = ServerConfig {
            event_loops,
            ..ServerConfig::default()
        };
        let server = start(Echo, config);
        let stats = server.stats().await;
        let mut client = server.connect().await;
        client.echo(b"hello\n").await;
        client.echo(b"one\ntwo\n").await;
        let bytes = (b"hello\n".len() + b"one\ntwo\n".len()) as u64;
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.net_input_bytes, snapshot.net_output_bytes),
            (bytes, bytes),
            "{event_loops:?}"
        );
        server.stop().await.expect("a clean shutdown");
    }
}
