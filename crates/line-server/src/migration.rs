//! How a connection moves from one event loop to another, at a batch boundary, so that
//! clients that stay connected follow the load as new ones do (`balance`).
//!
//! The connection decides, on its own loop, once its batch's replies are written: nothing
//! is then owed to the client that a move could reorder, and what is left is state — the
//! session, unhandled input (a partial line; pipelined bytes still in the socket move with
//! the socket), TLS' state. It leaves its loop's reactor there (`Transport::detach`), and
//! travels as a closure through the other loop's queue, the one new clients come by; that
//! loop registers the socket with its own reactor and starts the connection's task again
//! (`connection/moving.rs`). Each move costs two `epoll_ctl` calls, a channel send and a
//! wake of the other loop: paid per move, never per request.
//!
//! Shutdown still sees a connection between loops: it holds a [`TaskTrackerToken`] until
//! its new task is started, so the tracker does not look empty while it travels, and it
//! stays enlisted in `stopping` throughout, so its new task sees the phase at its first
//! poll. A loop's queue closes once the acceptor is gone, and no move starts after that
//! (the queues are held weakly here): no connection is sent to a loop that stopped
//! listening for them.

use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedSender, WeakUnboundedSender};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use crate::balance::{Balance, LoadGuard};
use crate::event_loops::Arrival;
use crate::stats::Traffic;

/// What a loop gives a connection that arrives from another.
pub(crate) struct Landing<'a> {
    /// Where its task is tracked, for shutdown.
    pub(crate) tracker: &'a TaskTracker,
    /// The loop's byte counters.
    pub(crate) traffic: Arc<Traffic>,
    /// Counts it against the loop.
    pub(crate) load: LoadGuard,
}

/// Starts a moved connection's task on the loop it arrived at.
pub(crate) type Land = Box<dyn FnOnce(Landing<'_>) + Send>;

/// A connection on its way to another loop.
pub(crate) struct Migrant {
    pub(crate) land: Land,
    /// Counts it against the loop it goes to, from the moment it was claimed.
    pub(crate) load: LoadGuard,
    /// Keeps shutdown waiting for it while it travels; dropped once its task is started.
    pub(crate) tracked: TaskTrackerToken,
}

/// The ways out of every loop, as connections see them.
#[derive(Debug)]
pub(crate) struct Moves {
    /// Each loop's queue. Weak: the acceptor's handles are what keep a queue open, so a
    /// loop stops listening once the acceptor is gone, and then no move is begun.
    queues: Box<[WeakUnboundedSender<Arrival>]>,
    balance: Arc<Balance>,
    tracker: TaskTracker,
}

/// A claimed move: the loop to go to, counting the connection already.
pub(crate) struct Ticket {
    queue: UnboundedSender<Arrival>,
    load: LoadGuard,
    tracked: TaskTrackerToken,
}

impl Moves {
    pub(crate) fn new(
        queues: &[UnboundedSender<Arrival>],
        balance: Arc<Balance>,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            queues: queues.iter().map(UnboundedSender::downgrade).collect(),
            balance,
            tracker,
        }
    }

    /// A move for a connection counted by `load`, if its loop still has connections to
    /// shed and another loop is open to take it. Asked only when
    /// [`LoadGuard::should_shed`] says so.
    pub(crate) fn ticket(&self, load: &LoadGuard) -> Option<Ticket> {
        let (to, load) = self.balance.claim_move(load)?;
        let queue = self.queues[to].upgrade()?;
        Some(Ticket {
            queue,
            load,
            tracked: self.tracker.token(),
        })
    }
}

impl Ticket {
    /// Sends the connection that `land` starts to the loop this ticket names. `false` if
    /// that loop is gone (its thread ended): the connection is dropped, which closes it.
    pub(crate) fn send(self, land: Land) -> bool {
        let migrant = Migrant {
            land,
            load: self.load,
            tracked: self.tracked,
        };
        self.queue.send(Arrival::Moved(migrant)).is_ok()
    }
}
