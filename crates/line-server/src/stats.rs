//! What the machinery has done, for `INFO` and metrics: connection and supervision events,
//! counted where they happen. Every counter here moves at the rate of connects, restarts or
//! errors, never per request, so plain atomics cost nothing measurable; connected clients
//! are read off the connection limit's semaphore rather than counted at all.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::balance::Balance;

/// A server's counters: made by [`crate::serve`] and handed to its protocol
/// ([`crate::Protocol::on_start`]), readable at any time with [`ServerStats::snapshot`].
#[derive(Debug)]
pub struct ServerStats {
    started: Instant,
    /// Set when serving starts: the port, the connection limit and its semaphore.
    serving: OnceLock<Serving>,
    connections_received: AtomicU64,
    rejected_over_limit: AtomicU64,
    rejected_on_open: AtomicU64,
    acceptor_restarts: AtomicU64,
    accept_errors: AtomicU64,
    accept_errors_descriptors: AtomicU64,
    client_panics: AtomicU64,
    tls_handshake_failures: AtomicU64,
    migrations: AtomicU64,
    /// One per event loop (and one for connections on the caller's runtime).
    traffic: Mutex<Vec<Arc<Traffic>>>,
    /// The event loops' load, when connections run on event loops.
    balance: OnceLock<Arc<Balance>>,
}

/// Bytes the connections of one event loop received and sent, on a cache line of its own:
/// counting is an atomic add on a line that loop's thread writes (no line bounces between
/// cores; a connection's hand-off thread, `connection/handoff.rs`, also adds to it while
/// the connection waits), once per read and once per write — per batch of requests, not
/// per request.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Traffic {
    received: AtomicU64,
    sent: AtomicU64,
}

impl Traffic {
    pub(crate) fn received(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Relaxed);
    }
}

#[derive(Debug)]
struct Serving {
    port: u16,
    max_connections: usize,
    slots: Arc<Semaphore>,
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Seconds since the stats were made (about when the server started).
    pub uptime_secs: u64,
    /// The port served (0 before serving starts).
    pub port: u16,
    /// Clients connected now.
    pub connected_clients: u64,
    /// The connection limit.
    pub max_connections: u64,
    /// Clients accepted since the start, refused ones included.
    pub connections_received: u64,
    /// Clients turned away: over the connection limit, or refused by the protocol when
    /// they connected (protected mode); the sum of the next two.
    pub rejected_connections: u64,
    /// Those turned away over the connection limit.
    pub rejected_over_limit: u64,
    /// Those the protocol refused as they connected (protected mode).
    pub rejected_on_open: u64,
    /// Times the acceptor failed and was restarted.
    pub acceptor_restarts: u64,
    /// `accept(2)` failures for lack of resources (descriptors, memory).
    pub accept_errors: u64,
    /// Those of them for lack of file descriptors (`EMFILE`, `ENFILE`); the rest were for
    /// lack of memory or buffers (`ENOMEM`, `ENOBUFS`).
    pub accept_errors_descriptors: u64,
    /// Connection tasks that panicked.
    pub client_panics: u64,
    /// TLS handshakes that failed, were refused or took too long.
    pub tls_handshake_failures: u64,
    /// Bytes received from clients (over TLS: decrypted).
    pub net_input_bytes: u64,
    /// Bytes of replies sent to clients (over TLS: before encryption).
    pub net_output_bytes: u64,
    /// Event loops that exist (0 when connections run on the caller's runtime).
    pub event_loops: u64,
    /// Those of them that take new clients now: as many as the load needs
    /// ([`crate::ServerConfig::event_loops`]).
    pub active_event_loops: u64,
    /// Connections moved from one event loop to another, as the active loops changed.
    pub migrations: u64,
}

impl Default for ServerStats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            serving: OnceLock::new(),
            connections_received: AtomicU64::new(0),
            rejected_over_limit: AtomicU64::new(0),
            rejected_on_open: AtomicU64::new(0),
            acceptor_restarts: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            accept_errors_descriptors: AtomicU64::new(0),
            client_panics: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            migrations: AtomicU64::new(0),
            traffic: Mutex::new(Vec::new()),
            balance: OnceLock::new(),
        }
    }
}

impl ServerStats {
    /// Counters at zero, the uptime starting now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let serving = self.serving.get();
        let (port, max, connected) = serving.map_or((0, 0, 0), |s| {
            let free = s.slots.available_permits();
            (
                s.port,
                s.max_connections,
                s.max_connections.saturating_sub(free),
            )
        });
        let (net_input_bytes, net_output_bytes) = self.traffic_totals();
        let rejected_over_limit = self.rejected_over_limit.load(Relaxed);
        let rejected_on_open = self.rejected_on_open.load(Relaxed);
        let (event_loops, active_event_loops) = self
            .balance
            .get()
            .map_or((0, 0), |b| (b.count() as u64, b.active() as u64));
        StatsSnapshot {
            event_loops,
            active_event_loops,
            net_input_bytes,
            net_output_bytes,
            uptime_secs: self.started.elapsed().as_secs(),
            port,
            connected_clients: connected as u64,
            max_connections: max as u64,
            connections_received: self.connections_received.load(Relaxed),
            rejected_connections: rejected_over_limit + rejected_on_open,
            rejected_over_limit,
            rejected_on_open,
            acceptor_restarts: self.acceptor_restarts.load(Relaxed),
            accept_errors: self.accept_errors.load(Relaxed),
            accept_errors_descriptors: self.accept_errors_descriptors.load(Relaxed),
            client_panics: self.client_panics.load(Relaxed),
            tls_handshake_failures: self.tls_handshake_failures.load(Relaxed),
            migrations: self.migrations.load(Relaxed),
        }
    }

    pub(crate) fn serving(&self, port: u16, max_connections: usize, slots: Arc<Semaphore>) {
        let _ = self.serving.set(Serving {
            port,
            max_connections,
            slots,
        });
    }

    /// Connections run on event loops, balanced by `balance`.
    pub(crate) fn balancing(&self, balance: Arc<Balance>) {
        let _ = self.balance.set(balance);
    }

    /// Clients each event loop serves now, in loop order (empty when connections run on
    /// the caller's runtime).
    pub fn connections_per_loop(&self) -> Vec<u64> {
        self.balance
            .get()
            .map_or_else(Vec::new, |b| b.connections())
    }

    pub(crate) fn received(&self) {
        self.connections_received.fetch_add(1, Relaxed);
    }

    /// A client turned away over the connection limit.
    pub(crate) fn rejected_over_limit(&self) {
        self.rejected_over_limit.fetch_add(1, Relaxed);
    }

    /// A client the protocol refused as it connected.
    pub(crate) fn rejected_on_open(&self) {
        self.rejected_on_open.fetch_add(1, Relaxed);
    }

    pub(crate) fn acceptor_restarted(&self) {
        self.acceptor_restarts.fetch_add(1, Relaxed);
    }

    /// `descriptors`: out of file descriptors (`EMFILE`, `ENFILE`); otherwise out of
    /// memory or buffers (`ENOMEM`, `ENOBUFS`).
    pub(crate) fn accept_failed(&self, descriptors: bool) {
        self.accept_errors.fetch_add(1, Relaxed);
        if descriptors {
            self.accept_errors_descriptors.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn client_panicked(&self) {
        self.client_panics.fetch_add(1, Relaxed);
    }

    /// Counters for one more event loop (or the caller's runtime), counted from now on.
    pub(crate) fn traffic(&self) -> Arc<Traffic> {
        let traffic = Arc::new(Traffic::default());
        self.traffic_list().push(Arc::clone(&traffic));
        traffic
    }

    fn traffic_totals(&self) -> (u64, u64) {
        self.traffic_list()
            .iter()
            .fold((0, 0), |(received, sent), t| {
                (
                    received + t.received.load(Relaxed),
                    sent + t.sent.load(Relaxed),
                )
            })
    }

    /// The counters stay right if a thread panicked holding the lock: poisoning is ignored.
    fn traffic_list(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Traffic>>> {
        self.traffic.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection moved to another event loop.
    pub(crate) fn moved(&self) {
        self.migrations.fetch_add(1, Relaxed);
    }

    pub(crate) fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Relaxed);
    }
}
