//! The seam between the server machinery and what it serves.
//!
//! The machinery (acceptor, supervisor, connection loop) frames lines, enforces limits and
//! writes replies; a [`Protocol`] only turns lines into reply bytes. Echo and KV both plug
//! in here, as a handler does in Thousand Island, so neither touches the machinery.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;

use crate::stats::ServerStats;

/// What the connection does after a line has been handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading lines.
    Continue,
    /// Send the replies written so far, then close the connection (e.g. `QUIT`).
    Close,
}

/// A protocol served by the whole server: makes one [`Session`] per accepted client.
///
/// # Wrappers
/// A protocol that wraps another (as [`crate::Auth`] and [`crate::Faulty`] do) forwards
/// every method of this trait and of [`Session`] to the one it wraps, the defaulted ones
/// included: a default compiles, so a forward that is missed is silent (the wrapped
/// protocol's guard, counters or deferred replies are lost). A wrapper that answers a line
/// itself first awaits the wrapped session's [`Session::on_batch_end`] (its deferred
/// replies come first) and asks its [`Session::screen`]. line-server's
/// `tests/wrappers.rs` holds every wrapper in this crate to it.
pub trait Protocol: Send + Sync + 'static {
    /// Per-connection state.
    type Session: Session;

    /// Called once by [`crate::serve`] before the first client is accepted, with the
    /// counters it keeps for this server (a protocol reports them, as KV's `INFO` does).
    /// Nothing by default.
    fn on_start(&mut self, stats: &Arc<ServerStats>) {
        let _ = stats;
    }

    /// Called once per accepted client, on the connection's own task.
    fn open_session(&self, peer: SocketAddr) -> Self::Session;

    /// A future each acceptor polls beside `accept`: if it panics, the acceptor has
    /// failed and its supervisor restarts it. Never resolves by default. It is how
    /// [`crate::Faulty`] crashes the acceptor on request without a test-only branch in
    /// the acceptor itself.
    fn acceptor_hook(&self) -> impl Future<Output = ()> + Send + '_ {
        std::future::pending()
    }
}

/// One client's conversation.
pub trait Session: Send + 'static {
    /// Handles one complete line (terminator included) by appending its reply to `out`.
    ///
    /// The future may wait (a durable store waits for its disk); an in-memory protocol
    /// returns a future that is ready at once, which costs nothing after inlining.
    fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> impl Future<Output = Flow> + Send;

    /// Called once when the connection opens, before anything is read: a session may greet
    /// the client or turn it away ([`Flow::Close`]: what it appended to `out` is sent, then
    /// the connection is closed). Nothing by default.
    fn on_open(&mut self, out: &mut BytesMut) -> Flow {
        let _ = out;
        Flow::Continue
    }

    /// Called once the lines that arrived together (the complete lines one read brought,
    /// at least one) have all been through [`on_line`](Self::on_line), before their
    /// replies are written; also before
    /// the machinery appends a line of its own (`ERROR line too long`). A session that
    /// defers work (writes queued to travel to the store together) finishes it here and
    /// appends its replies, so replies stay in request order. A session that returns
    /// [`Flow::Close`] from `on_line` must have finished its deferred work first.
    fn on_batch_end(&mut self, out: &mut BytesMut) -> impl Future<Output = ()> + Send {
        let _ = out;
        std::future::ready(())
    }

    /// Judges a line a wrapper is about to answer itself instead of handing it to
    /// [`on_line`](Self::on_line) (a password guard answering `NOAUTH` or `AUTH`):
    /// [`Flow::Close`] if the line shows the client is speaking another protocol
    /// altogether, and the connection must close at once, with no reply to this line and
    /// nothing after it run. The session does what it does about such a client (a warning,
    /// a count) before it returns. [`Flow::Continue`] (the default): the line is the
    /// wrapper's to answer.
    ///
    /// Why a method of its own: which lines betray another protocol is the protocol's
    /// grammar (KV closes on a line of HTTP, as Redis closes on `POST` and `Host:`), and
    /// the guard must hold on every line of a connection, before authentication too, or a
    /// web page could make a browser guess passwords. Wrappers forward it to the session
    /// they wrap.
    fn screen(&mut self, line: &[u8]) -> Flow {
        let _ = line;
        Flow::Continue
    }

    /// Lines of the session's own for the client, that no request of its asked for (a
    /// subscription's events): polled while the connection waits for input, and only then,
    /// so such a line never lands between a request and its reply. Appends what is ready
    /// to `out` and returns `Ready` (the connection writes it, then goes on waiting, or
    /// closes after it on [`Flow::Close`]); else `Pending`, having arranged for `cx` to be
    /// woken. Never ready by default (Thousand Island's `handle_info`, hyper's `poll_msg`).
    /// What a session has ready when its connection's task wakes is held for one turn of
    /// the event loop and sent with what it adds meanwhile (the session is polled again
    /// then, and may append more): events of writes read in the same turn leave in one
    /// send. Once the socket has taken a push whole, the session is polled again at once,
    /// in the same turn of the connection's task (a bounded number of times): a session that
    /// wants the event loop's other tasks to run between two pushes (a backup's pieces)
    /// returns `Pending` after waking `cx` itself.
    ///
    /// It is also polled while earlier pushed lines are still being written: with `out`,
    /// for one more push, then with `None` (nothing may be appended: the session keeps its
    /// lines). A session that bounds what it holds for a slow client returns
    /// [`Flow::Close`] once the bound is passed, and the connection then ends at once,
    /// unsent lines dropped, instead of waiting on a client that does not read.
    fn poll_push(&mut self, out: Option<&mut BytesMut>, cx: &mut Context<'_>) -> Poll<Flow> {
        let _ = (out, cx);
        Poll::Pending
    }

    /// A long stream of the session's to write from a thread of its own, straight into the
    /// socket (a backup), rather than push through the event loop: the loop's thread then
    /// copies none of it, and the kernel's work for it (loopback TCP delivers on the
    /// sender's core) falls to that thread, at that thread's priority — as a forked Redis
    /// child writes an RDB file into a replica's socket itself. `None` (the default):
    /// nothing to write so.
    ///
    /// Asked once a batch's replies are all written, over plain TCP only: a TLS stream's
    /// records can only be sealed by its connection, so over TLS this is never asked and
    /// the session sends the same stream through [`poll_push`](Self::poll_push) instead
    /// (it must be able to). The job runs on a new thread, which ends with it, given the
    /// socket as a blocking [`std::io::Write`]; it may change that thread's priority.
    /// Meanwhile the connection reads and writes nothing else. When the job returns `Ok`
    /// the connection is back to requests; on `Err` it closes. A byte from the client
    /// before the job ends (a request could only be answered inside the stream), a client
    /// that takes nothing for the idle timeout, or the shutdown deadline make the job's
    /// writes fail, and so end it.
    fn handoff(&mut self) -> Option<Handoff> {
        None
    }

    /// Whether the session is listening for pushed lines (a subscriber): such a connection
    /// is exempt from the idle timeout, its silence being expected. `false` by default.
    fn is_listening(&self) -> bool {
        false
    }

    /// The client closed its side leaving `rest`, a non-empty line with no terminator.
    /// Dropped unanswered unless the protocol says otherwise.
    fn on_unterminated_eof(&mut self, rest: &[u8], out: &mut BytesMut) {
        let _ = (rest, out);
    }
}

/// A job that writes a stream into a client's socket from a thread of its own
/// ([`Session::handoff`]): it returns once it has written all (`Ok`), or with the first
/// error of a write.
pub type Handoff = Box<dyn FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send>;

/// Lines the machinery itself sends, whatever the protocol.
pub mod replies {
    /// Sent to a client that arrives when `max_connections` are already served.
    pub const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR too many connections\r\n";
    /// Sent when a line passes `max_line_bytes`; the connection is closed after it.
    pub const LINE_TOO_LONG: &[u8] = b"ERROR line too long\r\n";
}
