//! [`Transport`]: what a connection needs from the stream it serves, beyond reading and
//! writing: plain TCP, and TLS over it (the settings and handshake are `crate::tls`).

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::MAX_READ_SIZE;

/// A client's byte stream. Reads go through [`AsyncRead`]; these add what the connection
/// loop does around them to keep an idle client cheap and a shutdown lossless.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    /// Resolves once a read may return bytes or the end of input. The connection waits
    /// here holding no buffers, and only reserves room to read once this is ready.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Sends what the transport itself has queued for the client (TLS: an alert refusing a
    /// renegotiation, a key update, session tickets), which no reply would carry out while
    /// the connection waits for input. Ready at once when nothing is queued; plain TCP
    /// queues nothing.
    fn poll_send_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }

    /// Called after a read that did not fill the room offered: the socket is drained, so
    /// the next read would fail with `EWOULDBLOCK`. A transport may forget its readiness
    /// now, so the next wait goes straight to the reactor (one `recvfrom` per request
    /// instead of two at ping-pong).
    fn after_short_read(&self) {}

    /// Appends to `buf` what the kernel holds for this stream now, asking the socket
    /// itself: tokio's readiness may not have caught up with bytes that just arrived.
    /// Returns the bytes appended (`Some(0)` at the end of input), or `None` if nothing is
    /// there. Used at shutdown, to answer every request already received.
    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<Option<usize>>;

    /// Writes what the socket takes of `buf` now, without waiting: the bytes taken (`0` if
    /// the socket is full), or `None` if this transport cannot write so (TLS: its records
    /// are sealed into rustls' own buffer, which only an `AsyncWrite` flush empties; it
    /// keeps the general path, `write_out`). The fast path for pushed lines
    /// (`wire::poll_push_or_read`): one `send(2)`, no future, no timer.
    fn send_now(&mut self, buf: &[u8]) -> Option<io::Result<usize>> {
        let _ = buf;
        None
    }

    /// Whether [`Transport::lend_socket`] can: the socket's bytes are the client's own
    /// (plain TCP), not records only the connection can seal (TLS).
    const LENDS_SOCKET: bool = false;

    /// A duplicate of the socket's descriptor, for a thread to write the client's bytes
    /// into directly (`handoff.rs`). Non-blocking, as the original is: the two share the
    /// flag.
    fn lend_socket(&self) -> io::Result<std::net::TcpStream> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// The stream as it travels to another event loop (`crate::migration`).
    type Detached: Send + 'static;

    /// Makes the stream ready to travel; called on the loop it leaves, with nothing of the
    /// connection's left to write. It leaves that loop's reactor here or, at the latest,
    /// in [`Transport::reattach`].
    fn detach(self) -> io::Result<Self::Detached>;

    /// Joins the reactor of the loop it arrived at (and leaves the old one, if it has not
    /// yet); called on the loop it arrived at.
    fn reattach(detached: Self::Detached) -> io::Result<Self>;
}

impl Transport for TcpStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    /// Safe with edge-triggered epoll: bytes that arrive after the read raise a new event,
    /// which sets readiness again (tokio only clears the readiness it had seen).
    fn after_short_read(&self) {
        let _ = self.try_io(Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }

    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        read_socket_now(self, buf)
    }

    /// Through tokio's readiness: a socket tokio last saw full is not asked again (no
    /// system call) until the reactor reports room, which `write_out` then waits for.
    fn send_now(&mut self, buf: &[u8]) -> Option<io::Result<usize>> {
        match self.try_write(buf) {
            Ok(n) => Some(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Ok(0)),
            Err(e) => Some(Err(e)),
        }
    }

    const LENDS_SOCKET: bool = true;

    fn lend_socket(&self) -> io::Result<std::net::TcpStream> {
        Ok(self.as_fd().try_clone_to_owned()?.into())
    }

    type Detached = std::net::TcpStream;

    /// Deregisters the socket (`epoll_ctl(EPOLL_CTL_DEL)`); what the client sent meanwhile
    /// waits in the socket's receive buffer.
    fn detach(self) -> io::Result<std::net::TcpStream> {
        self.into_std()
    }

    /// Registers the socket: epoll reports at once what is already waiting in it.
    fn reattach(detached: std::net::TcpStream) -> io::Result<Self> {
        TcpStream::from_std(detached)
    }
}

/// [`Transport::read_now`] for the socket under any transport: a direct non-blocking
/// `read(2)` of at most [`MAX_READ_SIZE`] bytes, appended to `buf`.
pub(crate) fn read_socket_now(socket: &TcpStream, buf: &mut BytesMut) -> io::Result<Option<usize>> {
    let mut reader = SocketReader(socket);
    let start = buf.len();
    buf.resize(start + MAX_READ_SIZE, 0);
    let read = reader.read(&mut buf[start..]);
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    match read {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// `std::io::Read` straight on a tokio socket, bypassing tokio's readiness cache. The
/// socket is non-blocking (tokio made it so), so a read never waits: it fails with
/// `WouldBlock` instead.
pub(crate) struct SocketReader<'a>(pub(crate) &'a TcpStream);

impl Read for SocketReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*socket2::SockRef::from(self.0)).read(buf)
    }
}

impl Transport for TlsStream<TcpStream> {
    /// rustls answers some records by itself (a TLS 1.2 renegotiation attempt with a
    /// `no_renegotiation` alert, a TLS 1.3 key update with one of its own) and keeps the
    /// answer until written: flushed here, or a client that waits for it hangs for ever.
    fn poll_send_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.get_ref().1.wants_write() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(self).poll_flush(cx)
    }

    /// Ready when rustls holds decrypted bytes (a record brought more than the last read
    /// took) or the peer closed; otherwise when the socket is.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (socket, session) = self.get_mut();
        let buffered = session
            .process_new_packets()
            // An error is for the read to report.
            .map_or(true, |state| {
                state.plaintext_bytes_to_read() > 0 || state.peer_has_closed()
            });
        if buffered {
            return Poll::Ready(Ok(()));
        }
        socket.poll_read_ready(cx)
    }

    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        let (socket, session) = self.get_mut();
        let mut ended = false;
        // rustls takes at most 4 KiB per `read_tls`: a larger record needs several.
        while session.wants_read() {
            match session.read_tls(&mut SocketReader(socket)) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
            session
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        let start = buf.len();
        buf.resize(start + MAX_READ_SIZE, 0);
        let read = session.reader().read(&mut buf[start..]);
        buf.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ended.then_some(0)),
            Err(e) => Err(e),
        }
    }

    /// The TLS stream travels whole, rustls' state in it (keys, sequence numbers, records
    /// read but not yet taken as plaintext); its socket is swapped on arrival.
    type Detached = Self;

    fn detach(self) -> io::Result<Self> {
        Ok(self)
    }

    /// tokio-rustls cannot rebuild a stream from its parts (`into_inner` has no inverse),
    /// so the socket inside is replaced by a twin registered here: a duplicate descriptor
    /// of the same open socket. Dropping the old one deregisters it from the loop it left
    /// and closes its descriptor; the socket stays open through the twin. Two system calls
    /// more than a plain socket's move (`dup`, `close`).
    fn reattach(mut detached: Self) -> io::Result<Self> {
        let twin = detached.get_ref().0.as_fd().try_clone_to_owned()?;
        let here = TcpStream::from_std(std::net::TcpStream::from(twin))?;
        drop(std::mem::replace(detached.get_mut().0, here));
        Ok(detached)
    }
}
