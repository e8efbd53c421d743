//! A connection in two halves, for a stream of requests with many in flight: one task
//! writes requests while another reads the replies, in order ([`crate::Client::into_split`]).
//! The caller bounds how many are in flight (a window, as `redis-cli --pipe` keeps), so
//! memory does not grow with the length of the stream.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

use crate::response::{self, Expect, Received};
use crate::{Error, Outgoing, Stream};

/// Queued bytes past which [`Sender::queue`]'s caller should flush: a few TCP segments,
/// so one write carries many requests without holding them back long.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// The writing half: requests are queued into a buffer, then written by [`Sender::flush`].
pub struct Sender {
    stream: WriteHalf<Box<dyn Stream>>,
    /// Encoded requests not yet written.
    out: Vec<u8>,
}

/// The reading half: replies in the order the requests were queued.
pub struct Receiver {
    stream: ReadHalf<Box<dyn Stream>>,
    /// Bytes read and not yet consumed: the last reply returned, then what follows it.
    input: BytesMut,
    /// Length of the reply last returned, consumed at the next read.
    returned: usize,
}

impl Sender {
    pub(crate) fn new(stream: WriteHalf<Box<dyn Stream>>) -> Self {
        Self {
            stream,
            out: Vec::with_capacity(FLUSH_BYTES),
        }
    }

    /// Queues `outgoing` and says which reply it gets (hand that to [`Receiver::next`]).
    /// Errors, with nothing queued: a line the protocol cannot carry
    /// ([`Outgoing::encode`]).
    pub fn queue(&mut self, outgoing: &Outgoing<'_>) -> Result<Expect, Error> {
        let before = self.out.len();
        if let Err(e) = outgoing.encode(&mut self.out) {
            self.out.truncate(before);
            return Err(e);
        }
        Ok(outgoing.expect())
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Writes what is queued. Errors: the connection failed.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        // Over TLS, the tail may wait in rustls' buffer until flushed.
        self.stream.flush().await?;
        Ok(())
    }
}

impl Receiver {
    pub(crate) fn new(stream: ReadHalf<Box<dyn Stream>>, input: BytesMut) -> Self {
        Self {
            stream,
            input,
            returned: 0,
        }
    }

    /// The next reply, which must be one to `expect` (what [`Sender::queue`] returned for
    /// the oldest request not yet answered). Borrowed until the next call.
    ///
    /// Errors: the connection failed or closed ([`Error::Closed`]), or the bytes are no
    /// such reply ([`Error::UnexpectedReply`]); the connection is unusable after either.
    pub async fn next(&mut self, expect: Expect) -> Result<Received<'_>, Error> {
        self.input.advance(std::mem::take(&mut self.returned));
        let len = response::fill_reply(&mut self.stream, &mut self.input, expect).await?;
        self.returned = len;
        Ok(response::received(&self.input, len, expect))
    }
}
