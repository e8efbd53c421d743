//! The connection's reads and writes, as free functions over the fields they need (so the
//! loop can borrow the rest of the connection meanwhile): a read that waits holding no
//! buffers and sizes itself, a write bounded by the idle timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;

use super::transport::Transport;
use super::{MAX_READ_SIZE, MIN_READ_SIZE};
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
