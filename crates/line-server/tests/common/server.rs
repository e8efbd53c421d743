//! A server under test: `serve` on `127.0.0.1:0`, spawned on the test's runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use line_server::{bind, serve, Protocol, ServeError, ServerConfig, ServerStats};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Client, PATIENCE};

/// A running `serve`; shut down when dropped.
pub struct TestServer {
    /// Where it listens.
    addr: SocketAddr,
    /// Cancelled to shut it down gracefully.
    shutdown: CancellationToken,
    /// What `serve` returned, once it has.
    served: JoinHandle<Result<(), ServeError>>,
    /// The counters `serve` handed its protocol, once it has.
    stats: Arc<OnceLock<Arc<ServerStats>>>,
}

/// `P`, keeping the counters `serve` hands it where the test can read them.
struct Tap<P> {
    inner: P,
    stats: Arc<OnceLock<Arc<ServerStats>>>,
}

impl<P: Protocol> Protocol for Tap<P> {
    type Session = P::Session;

    fn on_start(&mut self, stats: &Arc<ServerStats>) {
        let _ = self.stats.set(Arc::clone(stats));
        self.inner.on_start(stats);
    }

    fn open_session(&self, peer: SocketAddr) -> P::Session {
        self.inner.open_session(peer)
    }

    fn acceptor_hook(&self) -> impl Future<Output = ()> + Send + '_ {
        self.inner.acceptor_hook()
    }
}

/// Serves `protocol` with `config` on a free loopback port. Call it on a tokio runtime.
pub fn start<P: Protocol>(protocol: P, config: ServerConfig) -> TestServer {
    let listener = bind(([127, 0, 0, 1], 0).into()).expect("bind a loopback port");
    start_on(listener, protocol, config)
}

/// Serves `protocol` with `config` on `listener`, made by the test.
pub fn start_on<P: Protocol>(
    listener: tokio::net::TcpListener,
    protocol: P,
    config: ServerConfig,
) -> TestServer {
    let addr = listener.local_addr().expect("the bound address");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let stats = Arc::new(OnceLock::new());
    let protocol = Tap {
        inner: protocol,
        stats: Arc::clone(&stats),
    };
    let served = tokio::spawn(async move { serve(listener, &config, protocol, token).await });
    TestServer {
        addr,
        shutdown,
        served,
        stats,
    }
}

impl TestServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters, once `serve` has started (panics if it has not within
    /// [`PATIENCE`]).
    pub async fn stats(&self) -> Arc<ServerStats> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(stats) = self.stats.get() {
                return Arc::clone(stats);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "serve did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Connects a new client (panics if the connection cannot be made).
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.addr))
    }

    /// Starts a graceful shutdown, as the binary does on SIGTERM, and returns at once.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Whether `serve` is still running.
    pub fn is_serving(&self) -> bool {
        !self.served.is_finished()
    }

    /// Shuts down gracefully and returns what `serve` returned.
    pub async fn stop(self) -> Result<(), ServeError> {
        self.begin_shutdown();
        self.returned().await
    }

    /// Waits for `serve` to return by itself (or after [`Self::begin_shutdown`]); panics
    /// if it has not within [`PATIENCE`], or if it panicked.
    pub async fn returned(mut self) -> Result<(), ServeError> {
        tokio::time::timeout(PATIENCE, &mut self.served)
            .await
            .unwrap_or_else(|_| panic!("serve did not return within {PATIENCE:?}"))
            .expect("serve panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
