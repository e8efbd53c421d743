//! Where a connection runs: on the caller's runtime, or on one of N event loops — each a
//! single-threaded tokio runtime on its own thread — that a connection lives on until the
//! load moves it to another (`migration`).
//!
//! Why loops of their own: tokio's work-stealing scheduler wakes a sibling worker whenever
//! more than one task is ready, which with many busy connections is nearly every poll —
//! futex wakes and context switches on cores a load generator (or anything else) needs.
//! Seastar, Dragonfly, Garnet and KeyDB run one loop per core instead, a request running to
//! completion on the thread that read it, and tokio's maintainers point to one
//! `current_thread` runtime per core for the same thing. The acceptor stays one supervised
//! task; it hands each accepted socket to one of the active loops (`balance`: as few as
//! keep up with the load), the one with the fewest live connections, which registers it
//! with its own reactor. Nothing crosses loops per request; only the store is shared. A
//! connection moving from another loop comes by the same queue.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::thread::JoinHandle as ThreadHandle;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::balance::{self, Balance, CpuTime, LoadGuard};
use crate::connection::{Accounting, Connection, ConnectionSettings};
use crate::migration::{Landing, Migrant, Moves};
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
    /// Starts `stream`'s task on the current runtime.
    fn spawn(&self, stream: TcpStream, peer: SocketAddr, accounting: Accounting) {
        let session = self.protocol.open_session(peer);
        let stop = self.stopping.enlist();
        let settings = self.settings.clone();
        match &self.settings.tls {
            None => {
                let connection = Connection::new(stream, peer, session, settings, accounting);
                self.track(connection.run(stop));
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
                self.track(connection);
            }
        }
    }

    /// Runs a connection's future as a task of its own, tracked for shutdown. The seed's
    /// `Task.Supervisor.start_child`: a `:temporary` task; a panic ends this task only
    /// (`Connection::run` catches and logs it with the peer address).
    fn track(&self, run: impl Future<Output = ()> + Send + 'static) {
        drop(self.tracker.spawn(run));
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
    queues: Box<[mpsc::UnboundedSender<Arrival>]>,
    /// Their load, and which of them take new clients.
    pub(crate) balance: Arc<Balance>,
}

/// What comes by a loop's queue.
pub(crate) enum Arrival {
    /// A new client.
    Accepted(Accepted),
    /// A connection moving from another loop.
    Moved(Migrant),
}

/// A client on its way to its loop: a std socket, to be registered with the loop's reactor.
pub(crate) struct Accepted {
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
                    let accounting = Accounting {
                        slot,
                        traffic,
                        load: None,
                    };
                    connections.spawn(stream, peer, accounting)
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
        if self.queues[chosen]
            .send(Arrival::Accepted(accepted))
            .is_err()
        {
            debug!(peer = %peer, "event loop gone; client dropped");
        }
    }
}

/// Running event loops: what the acceptor hands clients to, and the threads to join.
pub(crate) struct Started {
    pub(crate) loops: Loops,
    pub(crate) threads: Vec<ThreadHandle<()>>,
}

/// Starts `count` loops serving clients with `connections`, at least `min_active` of them
/// active. Each runs until the acceptor is gone (its queue closes) and every connection
/// has ended.
pub(crate) fn start<P: Protocol>(
    (count, min_active): (NonZeroUsize, NonZeroUsize),
    connections: Arc<Connections<P>>,
) -> io::Result<Started> {
    let mut queues = Vec::with_capacity(count.get());
    let mut threads = Vec::with_capacity(count.get());
    let mut runtimes = Vec::with_capacity(count.get());
    for index in 0..count.get() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (queue, accepted) = mpsc::unbounded_channel();
        let connections = Arc::clone(&connections);
        // The thread's CPU time can only be opened by the thread itself.
        let (cpu_time, opened) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("event-loop-{index}"))
            .spawn(move || {
                let _ = cpu_time.send(CpuTime::of_this_thread());
                runtime.block_on(serve_loop(accepted, connections))
            })?;
        runtimes.push((handle, opened.recv().ok().flatten()));
        threads.push(thread);
        queues.push(queue);
    }
    let balance = Arc::new(Balance::new(runtimes, min_active.get()));
    let moves = Moves::new(&queues, Arc::clone(&balance), connections.tracker.clone());
    // Set once, before any client is accepted: the settings are made before the loops.
    let _ = connections.settings.moves.set(moves);
    let loops = Loops {
        queues: queues.into(),
        balance,
    };
    Ok(Started { loops, threads })
}

/// Looks at the loops' load every [`balance::LOOK_EVERY`] until `shutdown`
/// ([`balance::watch`]), on the caller's runtime; nothing to look at when every loop is
/// always active (one loop, or at least as many kept active as there are).
pub(crate) fn watch(loops: &Loops, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let balance = &loops.balance;
    (balance.count() > balance.min_active())
        .then(|| tokio::spawn(balance::watch(Arc::clone(balance), shutdown)))
}

/// One loop: registers each client it is given, or that moves to it, and runs its task;
/// then, once the acceptor is gone (no client comes, and no move begins), keeps running
/// until every connection has ended (shutdown closes the tracker).
async fn serve_loop<P: Protocol>(
    mut arrivals: mpsc::UnboundedReceiver<Arrival>,
    connections: Arc<Connections<P>>,
) {
    let traffic = connections.settings.stats.traffic();
    while let Some(arrival) = arrivals.recv().await {
        match arrival {
            Arrival::Accepted(accepted) => start_accepted(&connections, accepted, &traffic),
            Arrival::Moved(Migrant {
                land,
                load,
                tracked,
            }) => {
                let tracker = &connections.tracker;
                let traffic = Arc::clone(&traffic);
                land(Landing {
                    tracker,
                    traffic,
                    load,
                });
                // Its task is tracked now: shutdown waits for that.
                drop(tracked);
            }
        }
    }
    connections.tracker.wait().await;
}

/// Registers a new client with this loop's reactor and starts its task.
fn start_accepted<P: Protocol>(
    connections: &Connections<P>,
    Accepted {
        stream,
        peer,
        slot,
        load,
    }: Accepted,
    traffic: &Arc<Traffic>,
) {
    match TcpStream::from_std(stream) {
        Ok(stream) => {
            let accounting = Accounting {
                slot,
                traffic: Arc::clone(traffic),
                load: Some(load),
            };
            connections.spawn(stream, peer, accounting)
        }
        Err(e) => debug!(peer = %peer, "cannot register the client with its loop: {e}"),
    }
}
