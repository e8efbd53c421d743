//! `serve` keeps its own promises: it refuses a config that cannot work, and when it
//! returns after a shutdown no connection task is left, busy or not (Thousand Island's
//! connections are stopped at their `shutdown_timeout` the same way).

pub mod common;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{start, Client, PATIENCE};
use line_server::{Flow, Protocol, ServeError, ServerConfig, Session};

/// A protocol whose every line takes forever, and which counts its live sessions.
#[derive(Default)]
struct Stuck {
    live: Arc<AtomicUsize>,
}

struct StuckSession {
    live: Arc<AtomicUsize>,
}

impl Protocol for Stuck {
    type Session = StuckSession;

    fn open_session(&self, _peer: SocketAddr) -> StuckSession {
        self.live.fetch_add(1, Ordering::SeqCst);
        StuckSession {
            live: Arc::clone(&self.live),
        }
    }
}

impl Session for StuckSession {
    async fn on_line(&mut self, _line: &[u8], _out: &mut BytesMut) -> Flow {
        std::future::pending::<()>().await;
        Flow::Continue
    }
}

impl Drop for StuckSession {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn when_serve_returns_no_connection_is_left_even_a_busy_one() {
    let protocol = Stuck::default();
    let live = Arc::clone(&protocol.live);
    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let server = start(protocol, config);

    let mut busy = Vec::new();
    for _ in 0..3 {
        let mut client = server.connect().await;
        client.send(b"never answered\n").await;
        busy.push(client);
    }
    let all_live = async {
        while live.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(PATIENCE, all_live)
        .await
        .expect("three sessions open");
    let started = Instant::now();
    let served = server.stop().await;
    assert!(served.is_ok(), "{served:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(live.load(Ordering::SeqCst), 0, "every session was dropped");
    for mut client in busy {
        assert!(client.read_to_end().await.is_empty(), "closed, not reset");
    }
}

#[tokio::test]
async fn serve_refuses_a_config_that_cannot_work_before_serving() {
    let config = ServerConfig {
        max_connections: 0,
        ..ServerConfig::default()
    };
    let server = start(Stuck::default(), config);
    let addr = server.addr();
    let served = server.returned().await;
    assert!(matches!(served, Err(ServeError::Config(_))), "{served:?}");
    assert!(
        Client::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

/// However a connection waits — inside a request, mid-line, silent — and wherever it runs,
/// shutdown ends it by the deadline, even one accepted while shutdown began (it may be
/// told of the shutdown before it first runs).
async fn every_connection_ends_by_the_deadline(event_loops: Option<NonZeroUsize>, round: u64) {
    let protocol = Stuck::default();
    let live = Arc::clone(&protocol.live);
    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(100),
        event_loops,
        ..ServerConfig::default()
    };
    let server = start(protocol, config);
    let addr = server.addr();
    let mut waiting = Vec::new();
    for k in 0..24 {
        let mut client = server.connect().await;
        match k % 3 {
            0 => client.send(b"never answered\n").await,
            1 => client.send(b"half a line").await,
            _ => {}
        }
        waiting.push(client);
    }
    let racing = tokio::spawn(async move {
        let mut racers = Vec::new();
        for _ in 0..24 {
            if let Ok(mut client) = Client::connect(addr).await {
                client.send(b"never answered\n").await;
                racers.push(client);
            }
        }
        racers
    });
    // Shutdown starts at a different point of the racing connects each round.
    tokio::time::sleep(Duration::from_micros(150 * (round % 7))).await;
    let started = Instant::now();
    let served = tokio::time::timeout(PATIENCE, server.stop()).await;
    assert!(
        matches!(served, Ok(Ok(()))),
        "round {round}: {served:?} after {:?}",
        started.elapsed()
    );
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "round {round}: sessions left"
    );
    drop(racing.await);
    drop(waiting);
}

#[tokio::test]
async fn on_the_callers_runtime_every_connection_ends_by_the_deadline() {
    for round in 0..8 {
        every_connection_ends_by_the_deadline(None, round).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_thread_runtime_every_connection_ends_by_the_deadline() {
    for round in 0..8 {
        every_connection_ends_by_the_deadline(None, round).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_event_loops_every_connection_ends_by_the_deadline() {
    for round in 0..8 {
        every_connection_ends_by_the_deadline(NonZeroUsize::new(2), round).await;
    }
}
