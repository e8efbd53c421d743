//! The connection's reads and writes, as free functions over the fields they need (so the
//! loop can borrow the rest of the connection meanwhile): a read that waits holding no
//! buffers and sizes itself, the session's pushes written while it waits (gathered for one
//! turn of the event loop, then sent without waiting), a write bounded by the idle timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::task::coop;
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;

use super::transport::Transport;
use super::{Waited, MAX_READ_SIZE, MIN_READ_SIZE};
use crate::protocol::{Flow, Session};
use crate::stats::Traffic;

/// Waits for input holding no buffers (unless a partial line is kept in `input`), then
/// reads into `input` with about `read_size` bytes of room, and adapts `read_size`.
/// Returns the bytes read, 0 at the end of input.
pub(super) fn poll_read(
    stream: &mut impl Transport,
    (input, output): (&mut BytesMut, &mut BytesMut),
    read_size: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    // Before waiting: the client may be waiting too, for what the last read made the
    // transport queue (a TLS alert), and would never send again.
    if let Poll::Ready(Err(e)) = stream.poll_send_queued(cx) {
        return Poll::Ready(Err(e));
    }
    let ready = stream.poll_read_ready(cx);
    if ready.is_pending() {
        release_while_waiting(input, output);
    }
    ready!(ready)?;
    if input.capacity() - input.len() < *read_size / 2 {
        input.reserve(*read_size);
    }
    let spare = input.capacity() - input.len();
    let Poll::Ready(read) = poll_read_buf(Pin::new(stream), cx, input) else {
        // The readiness was stale, or the bytes read carried no data (a TLS record of the
        // protocol's own, which may have queued an answer): the task sleeps now.
        release_while_waiting(input, output);
        if let Poll::Ready(Err(e)) = stream.poll_send_queued(cx) {
            return Poll::Ready(Err(e));
        }
        return Poll::Pending;
    };
    let n = read?;
    *read_size = adapted_read_size(*read_size, n, spare);
    if n > 0 && n < spare {
        stream.after_short_read();
    }
    Poll::Ready(Ok(n))
}

/// Pushes written by [`poll_push_or_read`] in one turn of the connection's task, at most.
///
/// Why a bound of our own: `send_now` is not a tokio resource, so it spends none of
/// tokio's cooperative budget (`tokio::task::coop`), and a subscription that always has
/// an event ready would keep the task — and so its event loop — writing for ever, never
/// looking at the client's input. Each push also spends a unit of that budget, so a task
/// whose budget other work used up yields sooner. 16, not tokio's 128: a push may be many
/// events (all that queued meanwhile), and other connections on the loop wait meanwhile.
pub(super) const PUSHES_PER_TURN: usize = 16;

/// Waits for input as [`poll_read`] does, the session's pushes first
/// ([`Session::poll_push`]): they are what a waiting client is waiting for.
///
/// The fast path: a push is written with a non-blocking send (once gathered: below), and
/// the session is polled again, with no future, timer or buffer of its own per push. Only if the socket
/// does not take a push whole (the rest is in `output`), the transport cannot send so
/// (TLS), or the session says [`Flow::Close`], is the push returned, for
/// `Connection::write_pushed` to finish with the idle timer and the session's bound on a
/// slow reader. Nothing is ever pending here between a request and its reply: this runs
/// only while the connection waits for input, with every reply written.
///
/// Gathering: a push the session has ready when the task is woken is not sent at once
/// but held in `output` while the event loop runs its other ready tasks and polls for
/// I/O, then sent with whatever the session added meanwhile (tokio's `yield_now` wakes a
/// task that yields only after the loop has run out of ready tasks and polled its driver:
/// its implementation, not a promise of its docs, so only how much is gathered rests on
/// it, never what is sent). So the events of every write the loop reads in one turn leave
/// for a subscriber in one send, as Redis writes each client's output once per turn of
/// its event loop (`beforeSleep`), however the writes were spread over the loop's reads
/// and tasks. At a writer's 8 writes in flight to 100 subscribers this made 1.6× the
/// events a second of Redis' with 0.64× its CPU per event, and at 1 in flight halved the
/// CPU per event (BENCHMARKS.md, "Subscriptions"): a send's cost is mostly per call.
/// What it costs a lone event: one poll of the loop's driver before it leaves.
///
/// After [`PUSHES_PER_TURN`] pushes, or once tokio's budget for this turn is spent, the
/// input is looked at, then the task yields (wakes itself, returns `Pending`): a busy
/// subscription cannot starve its own client's requests, nor the loop's other
/// connections. A session that yields between its pushes itself (a backup's pieces:
/// `Pending` after waking `cx`) works as before.
pub(super) fn poll_push_or_read(
    session: &mut impl Session,
    stream: &mut impl Transport,
    (input, output): (&mut BytesMut, &mut BytesMut),
    read_size: &mut usize,
    traffic: &Traffic,
    cx: &mut Context<'_>,
) -> Poll<Waited> {
    // Only a push held back by the last turn can be here: every reply is written before
    // a connection waits for input.
    let gathered = !output.is_empty();
    for _ in 0..PUSHES_PER_TURN {
        let Poll::Ready(budget) = coop::poll_proceed(cx) else {
            break;
        };
        match session.poll_push(Some(output), cx) {
            Poll::Ready(Flow::Continue) => budget.made_progress(),
            Poll::Ready(Flow::Close) => return Poll::Ready(Waited::Pushed(Flow::Close)),
            Poll::Pending if output.is_empty() => {
                return poll_read(stream, (input, output), read_size, cx).map(Waited::Read)
            }
            Poll::Pending => {}
        }
        if output.is_empty() {
            continue;
        }
        if !gathered {
            // Held until the loop has run its other ready tasks and polled for I/O.
            let mut later = std::pin::pin!(tokio::task::yield_now());
            let _ = later.as_mut().poll(cx);
            return Poll::Pending;
        }
        match stream.send_now(output) {
            Some(Ok(n)) => {
                traffic.sent(n);
                if n < output.len() {
                    output.advance(n);
                    return Poll::Ready(Waited::Pushed(Flow::Continue));
                }
                // Kept (not released) for the next push of this turn; `poll_read`
                // releases it before the task sleeps.
                output.clear();
            }
            Some(Err(e)) => return Poll::Ready(Waited::SendFailed(e)),
            None => return Poll::Ready(Waited::Pushed(Flow::Continue)),
        }
    }
    // The turn is used up: the client's input first, then the other tasks of the loop.
    let read = poll_read(stream, (input, output), read_size, cx);
    if read.is_pending() {
        cx.waker().wake_by_ref();
    }
    read.map(Waited::Read)
}

/// Frees what a waiting connection does not need: the reply buffer (all replies are
/// written before a read), and the input buffer unless it keeps a partial line.
fn release_while_waiting(input: &mut BytesMut, output: &mut BytesMut) {
    if input.is_empty() {
        *input = BytesMut::new();
    }
    if output.is_empty() {
        *output = BytesMut::new();
    }
}

/// Reads start small (most requests are short) and grow while reads fill the buffer
/// (pipelined bursts), so a thousand clients sending at once do not each pin a large
/// buffer.
fn adapted_read_size(read_size: usize, read: usize, spare: usize) -> usize {
    if read == spare {
        (read_size * 2).min(MAX_READ_SIZE)
    } else if read < read_size / 4 {
        (read_size / 2).max(MIN_READ_SIZE)
    } else {
        read_size
    }
}

/// Writes `output` in full and empties it. A client that stops reading while also
/// sending nothing is cut at the idle timeout, so it cannot pin a task forever.
pub(super) async fn write_out(
    stream: &mut impl Transport,
    output: &mut BytesMut,
    idle: &mut Option<Pin<Box<Sleep>>>,
    traffic: &Traffic,
) -> io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    traffic.sent(output.len());
    tokio::select! {
        biased;
        // TLS keeps what the socket did not take inside its own buffer until flushed.
        written = async { stream.write_all(output).await?; stream.flush().await } => written?,
        () = idle_expired(idle) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
    }
    output.clear();
    Ok(())
}

/// Resolves when the idle timer fires; never without one.
pub(super) fn idle_expired(idle: &mut Option<Pin<Box<Sleep>>>) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| match idle {
        Some(timer) => timer.as_mut().poll(cx),
        None => Poll::Pending,
    })
}
