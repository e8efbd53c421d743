//! SPEC §5: at shutdown every complete line that reached the server before the signal is
//! answered — including what still sits in a socket's receive buffer — on idle and busy
//! connections alike. In-process through `serve`, so a tight loop of shutdowns is cheap.

use std::time::Duration;

use line_server::{bind, serve, Echo, Faulty, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Rounds per test: the idle race was lost about once in 100 before it was fixed.
const ROUNDS: usize = 300;
const PATIENCE: Duration = Duration::from_secs(10);

/// An echo server with fault injection on a free loopback port, and the token that shuts
/// it down.
async fn start(
    config: ServerConfig,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let listener = bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        let protocol = Faulty::new(Echo);
        serve(listener, &config, protocol, token)
            .await
            .expect("serve");
    });
    (addr, shutdown, server)
}

/// Connects and proves the connection is being served.
async fn served_client(addr: std::net::SocketAddr) -> TcpStream {
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"hello\n").await.expect("write");
    let mut echoed = [0u8; 6];
    client.read_exact(&mut echoed).await.expect("read");
    assert_eq!(&echoed, b"hello\n");
    client
}

/// Everything the server sends until it closes.
async fn rest_of(mut client: TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .expect("read");
    rest
}

#[tokio::test(flavor = "current_thread")]
async fn a_line_that_reached_an_idle_connection_before_shutdown_is_always_answered() {
    for round in 0..ROUNDS {
        let (addr, shutdown, server) = start(ServerConfig::default()).await;
        let mut client = served_client(addr).await;
        // On loopback the line is in the server's receive buffer once the write returns;
        // the shutdown follows before the server's task has run again.
        client.write_all(b"last\n").await.expect("write");
        shutdown.cancel();
        assert_eq!(rest_of(client).await, b"last\n", "round {round}");
        server.await.expect("server task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_sent_at_the_instant_of_shutdown_is_answered_on_a_multi_threaded_runtime() {
    for round in 0..ROUNDS {
        let (addr, shutdown, server) = start(ServerConfig::default()).await;
        let mut client = served_client(addr).await;
        client.write_all(b"last\n").await.expect("write");
        shutdown.cancel();
        assert_eq!(rest_of(client).await, b"last\n", "round {round}");
        server.await.expect("server task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_queued_behind_a_busy_command_at_shutdown_is_answered() {
    let config = ServerConfig::default();
    for round in 0..5 {
        let (addr, shutdown, server) = start(config.clone()).await;
        let mut client = served_client(addr).await;
        client.write_all(b"DEBUG SLEEP 250\n").await.expect("write");
        // Let the server read the DEBUG line and start sleeping; the PING arrives alone.
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write_all(b"PING\n").await.expect("write");
        shutdown.cancel();
        assert_eq!(rest_of(client).await, b"OK\r\nPING\n", "round {round}");
        server.await.expect("server task");
    }
}
