//! How the endpoint sees the machinery's counters: `line_server::serve` makes them when it
//! starts and hands them to its protocol, so the binary's protocol goes through
//! [`Observed`], which keeps a handle where the endpoint reads it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use line_server::{Protocol, ServerStats, StatsSnapshot};
use tokio::sync::Notify;

/// The serving server's counters, once it serves (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct ServerCounters(Arc<OnceLock<Arc<ServerStats>>>, Arc<Notify>);

impl ServerCounters {
    /// The counters now; zeros until serving starts.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.0
            .get()
            .map(|stats| stats.snapshot())
            .unwrap_or_default()
    }

    /// Clients each event loop serves now, in loop order; empty until serving starts.
    pub fn connections_per_loop(&self) -> Vec<u64> {
        self.0
            .get()
            .map(|stats| stats.connections_per_loop())
            .unwrap_or_default()
    }

    /// Waits until serving has started: the listener is bound, the store open, and `serve`
    /// has logged its port line (its protocol's `on_start` runs just before that line and
    /// wakes the waiter, a task of the same runtime, which runs once `serve` first waits).
    /// For one waiter at a time.
    pub async fn serving(&self) {
        if self.0.get().is_none() {
            self.1.notified().await;
        }
    }

    fn started(&self, stats: &Arc<ServerStats>) {
        let _ = self.0.set(Arc::clone(stats));
        // `notify_one` keeps a permit when no one waits yet, so a waiter that comes later
        // does not miss it.
        self.1.notify_one();
    }
}

/// `P`, keeping the counters `serve` hands it in `counters`. Its sessions are `P`'s own, so
/// the only callbacks to forward are the protocol's.
pub struct Observed<P> {
    inner: P,
    counters: ServerCounters,
}

impl<P> Observed<P> {
    /// Wraps `inner`, to fill `counters` when serving starts.
    pub fn new(inner: P, counters: ServerCounters) -> Self {
        Self { inner, counters }
    }
}

impl<P: Protocol> Protocol for Observed<P> {
    type Session = P::Session;

    fn on_start(&mut self, stats: &Arc<ServerStats>) {
        self.inner.on_start(stats);
        self.counters.started(stats);
    }

    fn open_session(&self, peer: SocketAddr) -> P::Session {
        self.inner.open_session(peer)
    }

    fn acceptor_hook(&self) -> impl Future<Output = ()> + Send + '_ {
        self.inner.acceptor_hook()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use line_server::Echo;

    /// Fires its acceptor hook at once and notes that it started.
    struct Noted(Arc<OnceLock<()>>);

    impl Protocol for Noted {
        type Session = <Echo as Protocol>::Session;
        fn on_start(&mut self, _: &Arc<ServerStats>) {
            let _ = self.0.set(());
        }
        fn open_session(&self, peer: SocketAddr) -> Self::Session {
            Echo.open_session(peer)
        }
        async fn acceptor_hook(&self) {}
    }

    #[test]
    fn the_counters_appear_when_serving_starts_and_the_protocol_hears_everything() {
        let counters = ServerCounters::default();
        let started = Arc::new(OnceLock::new());
        let mut observed = Observed::new(Noted(Arc::clone(&started)), counters.clone());
        assert_eq!(counters.snapshot(), StatsSnapshot::default());
        let stats = ServerStats::new();
        observed.on_start(&stats);
        assert!(started.get().is_some(), "on_start forwarded");
        assert!(Arc::ptr_eq(counters.0.get().expect("set"), &stats));
        assert!(
            observed.acceptor_hook().now_or_never().is_some(),
            "hook forwarded"
        );
    }
}
