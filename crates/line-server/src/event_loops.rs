//! Where a connection runs: on the caller's runtime, or on one of N event loops — each a
//! single-threaded tokio runtime on its own thread — that a connection lives on for life.
//!
//! Why loops of their own: tokio's work-stealing scheduler wakes a sibling worker whenever
//! more than one task is ready, which with many busy connections is nearly every poll —
//! futex wakes and context switches on cores a load generator (or anything else) needs.
//! Seastar, Dragonfly, Garnet and KeyDB run one loop per core instead, a request running to
//! completion on the thread that read it, and tokio's maintainers point to one
//! `current_thread` runtime per core for the same thing. The acceptor stays one supervised
//! task; it hands each accepted socket to one of the active loops (`balance`: as few as
//! keep up with the load), the one with the fewest live connections, which registers it
//! with its own reactor. Nothing crosses loops per request; only the store is shared.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::thread::JoinHandle;

use futures_util::FutureExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::balance::{Balance, LoadGuard};
use crate::connection::{Accounting, Connection, ConnectionSettings};
use crate::protocol::Protocol;
use crate::stats::Traffic;
use crate::stopping::{Phase, Stopping};

/// Everything needed to start serving an accepted client, wherever it runs.
pub(crate) struct Connections<P> {
    pub(crate) protocol: Arc<P>,
    pub(crate) settings: Arc<ConnectionSettings>,
    /// Cancelled when the server shuts down (the caller's): the acceptor stops at once.
    pub(crate) shutdown: CancellationToken,
    /// Tells connections when to finish and when to stop.
    pub(crate) stopping: Arc<Stopping>,
    /// Every connection task, on whichever runtime, so shutdown can wait for them all.
    pub(crate) tracker: TaskTracker,
}

impl<P: Protocol> Connections<P> {
    /// Starts `stream`'s task on the current runtime; `load` is told when it ends.
    fn spawn(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        accounting: Accounting,
        load: Option<LoadGuard>,
    ) {
        let session = self.protocol.open_session(peer);
        let stop = self.stopping.enlist();
        let settings = self.settings.clone();
        match &self.settings.tls {
            None => {
                let connection = Connection::new(stream, peer, session, settings, accounting);
                self.track(connection.run(stop), load);
            }
            Some(tls) => {
                let handshake = tls.handshake();
                let connection = async move {
                    stop.attach().await;
                    // On the connection's own task: a stalled handshake delays no one. A
                    // shutdown lets it finish (the client may have sent requests behind
                    // its last handshake message, which it takes as done); the deadline
                    // still cuts it.
                    let stream = tokio::select! {
                        stream = handshake.run(stream) => stream,
                        () = stop.reached(Phase::Cut) => return,
                    };
                    match stream {
                        Ok(stream) => {
                            Connection::new(stream, peer, session, settings, accounting)
                                .run(stop)
                                .await
                        }
                        Err(e) => crate::tls::handshake_failed(&settings.stats, peer, &e),
                    }
                };
                self.track(connection, load);
            }
        }
    }

    /// Runs a connection's future as a task of its own, tracked for shutdown. The seed's
    /// `Task.Supervisor.start_child`: a `:temporary` task; a panic ends this task only
    /// (`Connection::run` catches and logs it with the peer address).
    fn track(&self, run: impl Future<Output = ()> + Send + 'static, load: Option<LoadGuard>) {
        match load {
            None => drop(self.tracker.spawn(run)),
            // `map`, not an `async` block awaiting `run`: such a block would hold the
            // connection's future twice over (its captured copy and the awaited one), and
            // that future's size is most of what an idle connection costs.
            Some(load) => drop(self.tracker.spawn(run.map(move |()| drop(load)))),
        }
    }
}

/// Where accepted clients go.
pub(crate) enum Placement<P> {
    /// Tasks on the runtime that runs [`crate::serve`], counting their bytes in one place.
    Caller(Arc<Connections<P>>, Arc<Traffic>),
    /// One of these loops each.
    Loops(Loops),
}

/// The event loops, as the acceptor sees them.
pub(crate) struct Loops {
    /// Each loop's queue of clients, in loop order.
    queues: Box<[mpsc::UnboundedSender<Accepted>]>,
    /// Their load, and which of them take new clients.
    pub(crate) balance: Arc<Balance>,
}

/// A client on its way to its loop: a std socket, to be registered with the loop's reactor.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    load: LoadGuard,
}

impl<P: Protocol> Placement<P> {
    /// Serves `stream` (non-blocking, not yet registered with any runtime) where this
    /// placement says.
    pub(crate) fn place(
        &self,
        stream: std::net::TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
    ) {
        match self {
            Placement::Caller(connections, traffic) => match TcpStream::from_std(stream) {
                Ok(stream) => {
                    let traffic = Arc::clone(traffic);
                    connections.spawn(stream, peer, Accounting { slot, traffic }, None)
                }
                Err(e) => debug!(peer = %peer, "cannot register the client: {e}"),
            },
            Placement::Loops(loops) => loops.hand_over(stream, peer, slot),
        }
    }
}

impl Loops {
    /// Gives the client to the active loop with the fewest connections ([`Balance`]).
    fn hand_over(&self, stream: std::net::TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        let (chosen, load) = self.balance.place();
        let accepted = Accepted {
            stream,
            peer,
            slot,
            load,
        };
        // A loop stops only once the acceptor is gone, so this cannot fail while accepting.
        if self.queues[chosen].send(accepted).is_err() {
            debug!(peer = %peer, "event loop gone; client dropped");
        }
    }
}

/// Running event loops: what the acceptor hands clients to, and the threads to join.
pub(crate) struct Started {
    pub(crate) loops: Loops,
    pub(crate) threads: Vec<JoinHandle<()>>,
}

/// Starts `count` loops serving clients with `connections`. Each runs until the acceptor
/// is gone (its queue closes) and every connection has ended.
pub(crate) fn start<P: Protocol>(
    count: NonZeroUsize,
    connections: Arc<Connections<P>>,
) -> io::Result<Started> {
    let mut queues = Vec::with_capacity(count.get());
    let mut threads = Vec::with_capacity(count.get());
    let mut runtimes = Vec::with_capacity(count.get());
    for index in 0..count.get() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtimes.push(runtime.handle().clone());
        let (queue, accepted) = mpsc::unbounded_channel();
        let connections = Arc::clone(&connections);
        let thread = std::thread::Builder::new()
            .name(format!("event-loop-{index}"))
            .spawn(move || runtime.block_on(serve_loop(accepted, connections)))?;
        threads.push(thread);
        queues.push(queue);
    }
    let loops = Loops {
        queues: queues.into(),
        balance: Arc::new(Balance::new(runtimes)),
    };
    Ok(Started { loops, threads })
}

/// One loop: registers each client it is given and runs its task, then, once the acceptor
/// is gone, keeps running until every connection has ended (shutdown closes the tracker).
async fn serve_loop<P: Protocol>(
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
    connections: Arc<Connections<P>>,
) {
    let traffic = connections.settings.stats.traffic();
    while let Some(Accepted {
        stream,
        peer,
        slot,
        load,
    }) = accepted.recv().await
    {
        match TcpStream::from_std(stream) {
            Ok(stream) => {
                let traffic = Arc::clone(&traffic);
                connections.spawn(stream, peer, Accounting { slot, traffic }, Some(load))
            }
            Err(e) => debug!(peer = %peer, "cannot register the client with its loop: {e}"),
        }
    }
    connections.tracker.wait().await;
}
