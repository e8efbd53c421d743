//! `serve` keeps its own promises: it refuses a config that cannot work, and when it
//! returns after a shutdown no connection task is left, busy or not (Thousand Island's
//! connections are stopped at their `shutdown_timeout` the same way).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use line_server::{bind, serve, Flow, Protocol, ServeError, ServerConfig, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

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
    let listener = bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let protocol = Stuck::default();
    let live = Arc::clone(&protocol.live);
    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let server = tokio::spawn(async move { serve(listener, &config, protocol, token).await });

    let mut busy = Vec::new();
    for _ in 0..3 {
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(b"never answered\n").await.expect("write");
        busy.push(client);
    }
    while live.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    shutdown.cancel();
    let served = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns after its deadline")
        .expect("the server task");
    assert!(served.is_ok(), "{served:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(live.load(Ordering::SeqCst), 0, "every session was dropped");
    for mut client in busy {
        let mut rest = Vec::new();
        client
            .read_to_end(&mut rest)
            .await
            .expect("closed, not reset");
        assert!(rest.is_empty());
    }
}

#[tokio::test]
async fn serve_refuses_a_config_that_cannot_work_before_serving() {
    let listener = bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = ServerConfig {
        max_connections: 0,
        ..ServerConfig::default()
    };
    let served = serve(
        listener,
        &config,
        Stuck::default(),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(served, Err(ServeError::Config(_))), "{served:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
