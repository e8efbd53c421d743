//! One client's connection: read, frame, dispatch, write — with every limit enforced.
//!
//! This is the seed's `serve/1` loop grown up. Per round it handles *every* complete line
//! already buffered and sends all their replies in one write (pipelining costs one syscall
//! per batch, not per reply), then reads again. Because it only reads once its replies are
//! written, a client that never reads its replies stops being read from: the kernel's
//! buffers fill and TCP flow control pushes back, while our own buffers stay bounded.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tracing::{debug, error, info, warn};

use crate::balance::LoadGuard;
use crate::framing::{LineDecoder, LineTooLong};
use crate::migration::{Moves, Ticket};
use crate::stats::{ServerStats, Traffic};

mod closing;
mod handoff;
mod moving;
pub(crate) mod transport;
mod wire;

use crate::protocol::{replies, Flow, Session};
use crate::stopping::{Enlisted, Phase};
use crate::supervisor::panic_message;
use crate::tls::Tls;
use transport::Transport;
use wire::{idle_expired, poll_push_or_read, write_out};

/// Room offered to each read: it adapts between these bounds.
const MIN_READ_SIZE: usize = 1024;
pub(crate) const MAX_READ_SIZE: usize = 64 * 1024;
/// Replies beyond this are written out before more lines are handled, so a burst of
/// requests with large replies cannot grow the output buffer without bound.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;
/// Settings shared by every connection (one allocation, not one per client).
#[derive(Debug)]
pub(crate) struct ConnectionSettings {
    /// Longest accepted line, terminator included.
    pub(crate) max_line_bytes: usize,
    /// Close a client silent for this long.
    pub(crate) idle_timeout: Option<Duration>,
    /// Where panics and turned-away clients are counted.
    pub(crate) stats: Arc<ServerStats>,
    /// Speak TLS, not plain TCP.
    pub(crate) tls: Option<Tls>,
    /// The ways to the other event loops, once they run (unset without them).
    pub(crate) moves: OnceLock<Moves>,
}

/// Why the read side stopped waiting.
enum ReadOutcome {
    /// New bytes are buffered.
    Data,
    /// The client closed (or half-closed) its side.
    Eof,
    /// No byte arrived within the idle timeout.
    IdleTimeout,
    /// The server is shutting down and this connection has nothing in flight.
    Shutdown,
    /// The session pushed lines of its own into the output ([`Session::poll_push`]).
    Pushed(Flow),
}

/// What ended a wait for input, before it is told apart from the rest.
enum Waited {
    /// A read completed (0 bytes: end of input).
    Read(io::Result<usize>),
    /// The session pushed lines of its own, to be written by `write_pushed` (what is
    /// left of them: the fast path may have sent part).
    Pushed(Flow),
    /// The fast path's send of a push failed.
    SendFailed(io::Error),
}

/// What the connection does after acting on a read.
enum Next {
    /// Wait for more input.
    Read,
    /// The connection is over (closed, or being closed by the server).
    Stop,
    /// Move to another event loop, all replies written.
    Move(Ticket),
}

/// Where a connection's task takes it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A new client: the session is told it opened.
    Open,
    /// A connection that moved from another event loop, where it opened.
    Moved,
}

/// How serving a connection on this task ended, short of an error.
enum Served {
    /// The connection is over.
    Closed,
    /// It goes on on another event loop.
    Moving(Ticket),
}

/// What a connection is counted against while it lives.
pub(crate) struct Accounting {
    /// A slot of `max_connections`, held (never read) until the connection ends.
    #[allow(dead_code)]
    pub(crate) slot: OwnedSemaphorePermit,
    /// Its event loop's byte counters.
    pub(crate) traffic: Arc<Traffic>,
    /// Counts it against its event loop (none on the caller's runtime).
    pub(crate) load: Option<LoadGuard>,
}

/// The state of one served client.
pub(crate) struct Connection<S, T> {
    /// The client's stream: a TCP socket, or TLS over one.
    stream: T,
    /// For logs.
    peer: SocketAddr,
    /// The protocol's per-client state.
    session: S,
    /// Finds lines in `input`.
    decoder: LineDecoder,
    /// Received bytes not yet handled; released while the connection is idle.
    input: BytesMut,
    /// Replies not yet written; released while the connection is idle.
    output: BytesMut,
    /// Limits and hooks common to all connections.
    settings: Arc<ConnectionSettings>,
    /// Fires when the client has sent nothing for the idle timeout, if one is set;
    /// pushed back by every received byte. One timer for the connection's life, and no
    /// timer at all when the timeout is off.
    idle: Option<Pin<Box<Sleep>>>,
    /// What this client is counted against while it lives.
    accounting: Accounting,
    /// Room to offer the next read (see `adapt_read_size`).
    read_size: usize,
}

impl<S: Session, T: Transport> Connection<S, T> {
    /// Wraps an accepted stream.
    pub(crate) fn new(
        stream: T,
        peer: SocketAddr,
        session: S,
        settings: Arc<ConnectionSettings>,
        accounting: Accounting,
    ) -> Self {
        let idle = settings
            .idle_timeout
            .map(|t| Box::pin(tokio::time::sleep(t)));
        Self {
            stream,
            peer,
            session,
            decoder: LineDecoder::new(settings.max_line_bytes),
            input: BytesMut::new(),
            output: BytesMut::new(),
            settings,
            idle,
            accounting,
            read_size: MIN_READ_SIZE,
        }
    }

    /// Serves the client until it leaves, misbehaves, or the server shuts down (as
    /// `stop` tells); at the shutdown deadline it stops wherever it is (Thousand Island's
    /// connection does the same with its `shutdown_timeout`). A client vanishing is an
    /// ordinary event, logged at debug level only. A panic while serving ends this
    /// connection only and is logged with the peer address. The future must be a task's
    /// own (see [`Enlisted::attach`]).
    ///
    /// Not an `async fn`: that would keep a second copy of `self` in the future, and the
    /// future's size is most of what an idle connection costs. For the same reason the
    /// panic is caught here, where `self` (and so the peer address) is at hand, rather
    /// than by a wrapper around this future that would keep its own copy of the address.
    /// `stop` is not a field so that the work on a batch, which borrows the whole
    /// connection, can still be cut at the deadline without a clone per batch.
    pub(crate) fn run(self, stop: Enlisted) -> impl Future<Output = ()> + Send {
        self.serve_from(Start::Open, stop)
    }

    /// [`Self::run`], from `start`.
    #[allow(clippy::manual_async_fn)] // deliberate: see `run` (rust-lang/rust#62958)
    fn serve_from(mut self, start: Start, stop: Enlisted) -> impl Future<Output = ()> + Send {
        async move {
            stop.attach().await;
            match AssertUnwindSafe(self.serve(start, &stop))
                .catch_unwind()
                .await
            {
                Ok(Ok(Served::Closed)) => debug!(peer = %self.peer, "connection closed"),
                Ok(Ok(Served::Moving(ticket))) => self.depart(ticket, stop),
                Ok(Err(e)) if is_disconnect(&e) => {
                    debug!(peer = %self.peer, "client went away: {e}")
                }
                // Only TLS reads fail so: the client sent records that do not decrypt.
                Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    debug!(peer = %self.peer, "client sent invalid TLS data: {e}")
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    info!(peer = %self.peer, "closing idle connection (no input, replies not read)")
                }
                Ok(Err(e)) => warn!(peer = %self.peer, "connection error: {e}"),
                Err(panic) => {
                    self.settings.stats.client_panicked();
                    error!(
                        peer = %self.peer,
                        "connection task panicked: {}",
                        panic_message(&*panic)
                    );
                }
            }
        }
    }

    /// Waits for input, then acts on it, until the connection is over.
    ///
    /// Only the wait is part of this future, which is what an idle connection's task
    /// holds. The work on what arrived — running the protocol's commands (whose futures
    /// may be large, or wait on a disk), writing replies, closing — is a future of its own
    /// on the heap, freed before the next wait: a future is as large as the largest state
    /// it can wait in, so inlined here that work would be paid for by every idle client.
    /// One allocation per batch of requests is what it costs.
    async fn serve(&mut self, start: Start, stop: &Enlisted) -> io::Result<Served> {
        if start == Start::Open && self.session.on_open(&mut self.output) == Flow::Close {
            // Boxed like the work below: closing is larger than waiting for input.
            Box::pin(self.turn_away()).await?;
            return Ok(Served::Closed);
        }
        loop {
            let outcome = self.read_more(stop).await?;
            match Box::pin(self.act_on_unless_stopped(outcome, stop)).await? {
                Next::Read => {}
                Next::Stop => return Ok(Served::Closed),
                Next::Move(ticket) => return Ok(Served::Moving(ticket)),
            }
        }
    }

    /// The session refused the client on connect: sends what it said, then closes.
    async fn turn_away(&mut self) -> io::Result<()> {
        self.settings.stats.rejected_on_open();
        self.flush().await?;
        self.linger_close().await
    }

    /// [`Self::act_on`], unless the shutdown deadline passes first: then the connection
    /// stops wherever it is. Waiting for input needs no such check (shutdown ends that at
    /// once), so the check lives here, off the idle connection's future. The work is
    /// polled first, so a batch that completes at once never looks at the deadline.
    async fn act_on_unless_stopped(
        &mut self,
        outcome: ReadOutcome,
        stop: &Enlisted,
    ) -> io::Result<Next> {
        tokio::select! {
            biased;
            next = self.act_on(outcome, stop) => next,
            () = stop.reached(Phase::Cut) => {
                debug!(peer = %self.peer, "connection cut at the shutdown deadline");
                Ok(Next::Stop)
            }
        }
    }

    /// Answers the lines that arrived, or closes the connection, as `outcome` requires.
    async fn act_on(&mut self, outcome: ReadOutcome, stop: &Enlisted) -> io::Result<Next> {
        match outcome {
            ReadOutcome::Data => {
                let flow = self.handle_buffered_lines().await?;
                self.flush().await?;
                if flow == Flow::Close {
                    self.linger_close().await?;
                    return Ok(Next::Stop);
                }
                if let Some(job) = self.handoff_asked() {
                    // Boxed: a rare state, kept out of every batch's future.
                    return Box::pin(self.hand_off(job, stop)).await;
                }
                if stop.phase() >= Phase::Draining {
                    return self.finish_for_shutdown().await;
                }
                // A batch boundary: every reply is written, so a move reorders nothing.
                return Ok(self.move_ticket().map_or(Next::Read, Next::Move));
            }
            ReadOutcome::Pushed(flow) => return self.write_pushed(flow).await,
            ReadOutcome::Eof => self.answer_eof().await?,
            ReadOutcome::IdleTimeout => info!(peer = %self.peer, "closing idle connection"),
            ReadOutcome::Shutdown => return self.finish_for_shutdown().await,
        }
        // A push held back for gathering (`wire::poll_push_or_read`) goes before the FIN.
        self.flush().await?;
        self.close_write().await?;
        Ok(Next::Stop)
    }

    /// Writes what the session pushed, and what it pushes meanwhile, until all is written
    /// (then the connection waits for input again, or closes on [`Flow::Close`]). A client
    /// that stops reading cannot make this hold more than two pushes' worth: while one is
    /// written, one more is taken; and if the session says [`Flow::Close`] meanwhile (its
    /// own bound passed: a slow subscriber), the connection ends at once, unsent lines
    /// dropped, rather than wait on a client that does not read.
    async fn write_pushed(&mut self, mut flow: Flow) -> io::Result<Next> {
        let mut more = BytesMut::new();
        loop {
            let mut taken = None;
            let written = {
                let Self {
                    stream,
                    session,
                    output,
                    idle,
                    accounting,
                    ..
                } = &mut *self;
                // Polled beside the write, never cancelling it (a write cut short would
                // leave its bytes to be sent twice).
                let mut write =
                    std::pin::pin!(write_out(stream, output, idle, &accounting.traffic));
                poll_fn(|cx| {
                    if flow == Flow::Continue {
                        if taken.is_none() {
                            match session.poll_push(Some(&mut more), cx) {
                                Poll::Ready(Flow::Close) => return Poll::Ready(None),
                                Poll::Ready(Flow::Continue) => taken = Some(Flow::Continue),
                                Poll::Pending => {}
                            }
                        }
                        // One push taken: after it, only an end is looked for (and this
                        // poll leaves the session able to wake the task for one).
                        if taken.is_some() && session.poll_push(None, cx).is_ready() {
                            return Poll::Ready(None);
                        }
                    }
                    write.as_mut().poll(cx).map(Some)
                })
                .await
            };
            let Some(written) = written else {
                return Ok(Next::Stop);
            };
            written?;
            if flow == Flow::Close {
                self.linger_close().await?;
                return Ok(Next::Stop);
            }
            if more.is_empty() {
                return Ok(Next::Read);
            }
            std::mem::swap(&mut self.output, &mut more);
            flow = taken.unwrap_or(Flow::Continue);
        }
    }

    /// Handles every complete line in `input`, in order, appending replies to `output`;
    /// they arrived together, so the session hears when the last one has been handed over.
    async fn handle_buffered_lines(&mut self) -> io::Result<Flow> {
        let Self {
            stream,
            peer,
            session,
            decoder,
            input,
            output,
            idle,
            accounting,
            ..
        } = self;
        let mut consumed = 0;
        let flow = loop {
            let line_len = match decoder.next_line(&input[consumed..]) {
                Ok(Some(len)) => len,
                Ok(None) => {
                    if consumed > 0 {
                        session.on_batch_end(output).await;
                    }
                    break Flow::Continue;
                }
                Err(LineTooLong) => {
                    debug!(peer = %peer, "line too long; closing");
                    // The replies to the lines before it come first.
                    if consumed > 0 {
                        session.on_batch_end(output).await;
                    }
                    output.extend_from_slice(replies::LINE_TOO_LONG);
                    break Flow::Close;
                }
            };
            if consumed == 0 {
                // Room for the batch's replies at once, not by doubling from nothing (the
                // buffer is released between batches): replies are rarely more than twice
                // their requests. Only once a line is complete: a client waiting mid-line
                // is owed no reply buffer.
                output.reserve((input.len() * 2).min(OUTPUT_HIGH_WATER));
            }
            let line = &input[consumed..consumed + line_len];
            consumed += line_len;
            let flow = session.on_line(line, output).await;
            if flow == Flow::Close {
                break flow;
            }
            if output.len() >= OUTPUT_HIGH_WATER {
                write_out(stream, output, idle, &accounting.traffic).await?;
            }
        };
        input.advance(consumed);
        Ok(flow)
    }

    /// Writes all pending replies.
    async fn flush(&mut self) -> io::Result<()> {
        let traffic = &self.accounting.traffic;
        write_out(&mut self.stream, &mut self.output, &mut self.idle, traffic).await
    }

    /// Waits for and reads more input. While it waits with nothing buffered, the
    /// connection holds no buffers at all: an idle client costs only its task and socket.
    /// Buffers are kept while input keeps coming (pipelined bursts), not reallocated.
    async fn read_more(&mut self, stop: &Enlisted) -> io::Result<ReadOutcome> {
        let Self {
            stream,
            session,
            input,
            output,
            read_size,
            idle,
            accounting,
            ..
        } = self;
        // A listener (a subscriber) is silent on purpose: no idle timeout for it.
        let timed = !session.is_listening();
        let read = tokio::select! {
            biased;
            // The session's own lines first: they are what the client is waiting for.
            waited = poll_fn(|cx| {
                let buffers = (&mut *input, &mut *output);
                poll_push_or_read(session, stream, buffers, read_size, &accounting.traffic, cx)
            }) => waited,
            () = stop.reached(Phase::Draining) => return Ok(ReadOutcome::Shutdown),
            () = idle_expired(idle), if timed => return Ok(ReadOutcome::IdleTimeout),
        };
        let read = match read {
            Waited::Read(read) => read,
            Waited::Pushed(flow) => return Ok(ReadOutcome::Pushed(flow)),
            Waited::SendFailed(e) => return Err(e),
        };
        match read {
            Ok(0) => Ok(ReadOutcome::Eof),
            Ok(n) => {
                accounting.traffic.received(n);
                if let (Some(timer), Some(timeout)) = (idle, self.settings.idle_timeout) {
                    timer.as_mut().reset(Instant::now() + timeout);
                }
                Ok(ReadOutcome::Data)
            }
            // A TLS client that closed without `close_notify`: its end of input all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(ReadOutcome::Eof),
            Err(e) => Err(e),
        }
    }
}

/// Errors that only mean the client is gone.
fn is_disconnect(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::Echo;
    use crate::protocol::Protocol;
    use crate::stopping::Stopping;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Semaphore;

    /// An echo connection over loopback: the client's end, and the server's.
    async fn echo_connection() -> (
        TcpStream,
        Connection<<Echo as Protocol>::Session, TcpStream>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"));
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (stream, peer) = accepted.expect("accept");
        let settings = Arc::new(ConnectionSettings {
            max_line_bytes: 1024,
            idle_timeout: None,
            stats: ServerStats::new(),
            tls: None,
            moves: OnceLock::new(),
        });
        let slot = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a free slot");
        let session = Echo.open_session(peer);
        let accounting = Accounting {
            slot,
            traffic: settings.stats.traffic(),
            load: None,
        };
        let connection = Connection::new(stream, peer, session, settings, accounting);
        (client.expect("connect"), connection)
    }

    /// The idle-connection budget (`lib.rs`, "Budgets"): what an idle connection costs is
    /// mostly its task's future, so the per-batch work is kept out of it.
    #[tokio::test]
    async fn the_idle_task_future_stays_small() {
        let (_client, connection) = echo_connection().await;
        let size = std::mem::size_of_val(&connection.run(Stopping::new().enlist()));
        assert!(
            size <= 512,
            "the connection's task future grew to {size} bytes"
        );
    }

    /// A push held back for gathering when the wait for input ends (the shutdown, or the
    /// idle timeout, ready in the very poll that held it) is written, then the connection
    /// closes.
    #[tokio::test]
    async fn a_held_push_is_written_before_a_shutdown_or_idle_close() {
        use tokio::io::AsyncReadExt;
        for outcome in [ReadOutcome::Shutdown, ReadOutcome::IdleTimeout] {
            let (mut client, mut connection) = echo_connection().await;
            connection.output.extend_from_slice(b"held\n");
            let stop = Stopping::new().enlist();
            let finished = connection.act_on(outcome, &stop).await;
            assert!(matches!(finished, Ok(Next::Stop)));
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            assert_eq!(received, b"held\n");
        }
    }
}
