//! Graceful shutdown in order (docs/OPERATIONS.md, "Behaviour under failure"), as `serve` does it once
//! its token is cancelled (the binary cancels it on SIGINT/SIGTERM): the listener closes
//! first, idle clients are closed at once, requests in flight are answered, then `serve`
//! returns. Busy connections cut at the deadline are in `deadline.rs`; lines racing the
//! shutdown in `shutdown_drain.rs`; the signals themselves are tested through the binary.

pub mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{start, Client, Gate, PATIENCE};
use line_server::{Echo, ServerConfig};

/// A shutdown timeout no test waits for: what happens, happens without it.
fn long_shutdown_timeout() -> ServerConfig {
    ServerConfig {
        shutdown_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    }
}

/// Waits until a connect to `addr` is refused (its listener closed), or panics.
async fn until_connects_are_refused(addr: SocketAddr) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Client::connect(addr).await {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            _ if Instant::now() >= deadline => {
                panic!("connects still accepted {PATIENCE:?} after the shutdown began")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test]
async fn with_no_client_serve_returns_at_once() {
    let server = start(Echo, long_shutdown_timeout());
    server.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn an_idle_client_is_closed_at_once_while_a_busy_one_finishes() {
    let gate = Gate::default();
    let server = start(gate.clone(), long_shutdown_timeout());
    let mut idle = server.connect().await;
    idle.echo(b"hello\r\n").await;
    let mut busy = server.connect().await;
    busy.send(b"wait\r\n").await;
    gate.until_waiting(1).await;

    server.begin_shutdown();
    // Not at the deadline, nor when the busy client is done: now.
    idle.expect_eof().await;
    assert!(server.is_serving(), "serve waits for the busy client");

    gate.open();
    busy.expect(b"done\r\n").await;
    busy.expect_eof().await;
    server.returned().await.expect("a clean shutdown");
}

#[tokio::test]
async fn new_connects_are_refused_at_once_and_a_request_in_flight_is_still_answered() {
    let gate = Gate::default();
    let server = start(gate.clone(), long_shutdown_timeout());
    // A busy client keeps `serve` running through the shutdown.
    let mut busy = server.connect().await;
    busy.echo(b"sync\r\n").await;
    busy.send(b"wait\r\n").await;
    gate.until_waiting(1).await;

    server.begin_shutdown();
    until_connects_are_refused(server.addr()).await;
    assert!(server.is_serving(), "the busy client is still being served");

    gate.open();
    busy.expect(b"done\r\n").await;
    busy.expect_eof().await;
    server.returned().await.expect("a clean shutdown");
}
