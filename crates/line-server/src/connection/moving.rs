//! A connection leaving its event loop at a batch boundary, and taken up again on another
//! (`crate::migration` says when and why).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tracing::debug;

use super::transport::Transport;
use super::{Accounting, Connection, ConnectionSettings, Start};
use crate::balance::LoadGuard;
use crate::framing::LineDecoder;
use crate::migration::{Landing, Ticket};
use crate::protocol::Session;
use crate::stopping::Enlisted;

/// A connection between two loops: all it was, its stream out of the reactor it left.
struct Moving<S, T: Transport> {
    stream: T::Detached,
    peer: SocketAddr,
    session: S,
    decoder: LineDecoder,
    /// Received bytes not yet handled (a partial line).
    input: BytesMut,
    settings: Arc<ConnectionSettings>,
    /// When the idle timer fires: timers belong to a loop, so it is made anew on arrival.
    idle_at: Option<Instant>,
    slot: OwnedSemaphorePermit,
    read_size: usize,
    /// Its place among the tasks shutdown wakes, kept across the move.
    stop: Enlisted,
}

impl<S: Session, T: Transport> Connection<S, T> {
    /// A move to another loop, if this connection's loop has more than its share. Asked
    /// once per batch, after its replies are written; what it costs then is one relaxed
    /// load ([`crate::balance::LoadGuard::should_shed`]).
    #[inline]
    pub(super) fn move_ticket(&self) -> Option<Ticket> {
        let load = self.accounting.load.as_ref()?;
        if !load.should_shed() {
            return None;
        }
        claim_move(&self.settings, load)
    }

    /// Leaves this loop for the one `ticket` names, where the connection goes on as it
    /// was. Should its socket fail to leave, or that loop be gone, the connection is
    /// closed: every reply it owed was written already.
    pub(super) fn depart(self, ticket: Ticket, stop: Enlisted) {
        let (peer, stats) = (self.peer, Arc::clone(&self.settings.stats));
        let moving = match self.detach(stop) {
            Ok(moving) => moving,
            Err(e) => return debug!(peer = %peer, "cannot move the connection: {e}"),
        };
        if ticket.send(Box::new(move |landing: Landing<'_>| moving.arrive(landing))) {
            stats.moved();
        } else {
            debug!(peer = %peer, "the event loop to move to is gone; connection closed");
        }
    }

    /// Takes the connection out of this loop: its load guard and byte counters stay.
    fn detach(self, stop: Enlisted) -> std::io::Result<Moving<S, T>> {
        let Connection {
            stream,
            peer,
            session,
            decoder,
            input,
            settings,
            idle,
            accounting,
            read_size,
            output: _,
        } = self;
        Ok(Moving {
            stream: stream.detach()?,
            peer,
            session,
            decoder,
            input,
            settings,
            idle_at: idle.map(|timer| timer.deadline()),
            slot: accounting.slot,
            read_size,
            stop,
        })
    }
}

/// The rest of [`Connection::move_ticket`], taken only while the loop sheds: out of line,
/// so that the per-batch path, where it is called, stays as small as it was (and the
/// protocol's code is inlined into it as before).
#[cold]
#[inline(never)]
fn claim_move(settings: &ConnectionSettings, load: &LoadGuard) -> Option<Ticket> {
    settings.moves.get()?.ticket(load)
}

impl<S: Session, T: Transport> Moving<S, T> {
    /// Registers the stream with this loop and starts the connection's task here.
    fn arrive(self, landing: Landing<'_>) {
        let stream = match T::reattach(self.stream) {
            Ok(stream) => stream,
            Err(e) => return debug!(peer = %self.peer, "cannot take up a moved connection: {e}"),
        };
        let idle: Option<Pin<Box<Sleep>>> = self
            .idle_at
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        let connection = Connection {
            stream,
            peer: self.peer,
            session: self.session,
            decoder: self.decoder,
            input: self.input,
            output: BytesMut::new(),
            settings: self.settings,
            idle,
            accounting: Accounting {
                slot: self.slot,
                traffic: landing.traffic,
                load: Some(landing.load),
            },
            read_size: self.read_size,
        };
        drop(
            landing
                .tracker
                .spawn(connection.serve_from(Start::Moved, self.stop)),
        );
    }
}
