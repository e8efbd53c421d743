//! A stream written into a connection's socket from a thread of its own
//! ([`Session::handoff`]): the connection lends the thread a duplicate of its socket and
//! waits, reading and writing nothing, until the thread is done with it.
//!
//! The thread writes through the duplicate, which shares the original's non-blocking
//! flag, so it waits for room with `poll(2)` itself. It asks for input in the same call: a
//! byte from the client ends the stream (PROTOCOL.md says to send nothing meanwhile), and
//! a client that takes nothing for the idle timeout is cut (each wait for room is bounded
//! by it: a client that reads, however slowly, is not cut, where `wire::write_out` counts
//! the timeout from the last input).
//! Should the connection stop waiting first (the shutdown deadline), it shuts the socket
//! down under the thread, whose next write then fails.

use std::future::Future;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::transport::Transport;
use super::{Connection, Next};
use crate::protocol::{Handoff, Session};
use crate::stats::Traffic;
use crate::stopping::{Enlisted, Phase};

impl<S: Session, T: Transport> Connection<S, T> {
    /// The session's hand-off, if it has one and this transport can lend its socket.
    /// Asked once per batch: for a session with nothing to hand off, a call that returns
    /// `None` (and nothing at all over TLS).
    #[inline]
    pub(super) fn handoff_asked(&mut self) -> Option<Handoff> {
        if !T::LENDS_SOCKET {
            return None;
        }
        self.session.handoff()
    }

    /// Runs `job` on a thread of its own with the socket lent to it, then goes on as after
    /// a batch: back to requests, or on to the shutdown's end if it began meanwhile.
    pub(super) async fn hand_off(&mut self, job: Handoff, stop: &Enlisted) -> io::Result<Next> {
        let socket = self.stream.lend_socket()?;
        let idle = self.settings.idle_timeout;
        let traffic = Arc::clone(&self.accounting.traffic);
        Lent::start(socket, job, idle, traffic)?.await?;
        // The client took all of it: it was not idle.
        if let (Some(timer), Some(timeout)) = (&mut self.idle, idle) {
            timer.as_mut().reset(Instant::now() + timeout);
        }
        if stop.phase() >= Phase::Draining {
            return self.finish_for_shutdown().await;
        }
        Ok(self.move_ticket().map_or(Next::Read, Next::Move))
    }
}

/// A socket lent to a hand-off's thread; resolves with the job's result.
struct Lent {
    done: oneshot::Receiver<io::Result<()>>,
    /// The thread's socket too, to shut down should the connection stop waiting.
    socket: Arc<TcpStream>,
    finished: bool,
}

impl Lent {
    /// Starts `job` on a new thread, writing into `socket`.
    fn start(
        socket: TcpStream,
        job: Handoff,
        idle: Option<Duration>,
        traffic: Arc<Traffic>,
    ) -> io::Result<Self> {
        let socket = Arc::new(socket);
        let mut writer = SocketWriter {
            socket: Arc::clone(&socket),
            idle,
            traffic,
        };
        let (tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("line-handoff".into())
            .spawn(move || {
                let _ = tx.send(job(&mut writer));
            })?;
        Ok(Self {
            done,
            socket,
            finished: false,
        })
    }
}

impl Future for Lent {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.done).poll(cx));
        self.finished = true;
        // The sender is dropped without a word only if the job panicked.
        Poll::Ready(result.unwrap_or_else(|_| Err(io::Error::other("the hand-off panicked"))))
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if !self.finished {
            // The connection is going (the shutdown deadline) and the thread would write
            // on through its own descriptor: `shutdown(2)` acts on the socket both share.
            let _ = self.socket.shutdown(Shutdown::Both);
        }
    }
}

/// The socket as the job sees it: writes that wait for room, and end on input.
struct SocketWriter {
    socket: Arc<TcpStream>,
    idle: Option<Duration>,
    traffic: Arc<Traffic>,
}

impl Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            wait_for_room(&self.socket, self.idle)?;
            match (&*self.socket).write(buf) {
                Ok(n) => {
                    self.traffic.sent(n);
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Waits until `socket` takes bytes, at most `idle` (`TimedOut` then). Input from the
/// client ends the wait with `ConnectionAborted`. A socket in error is reported ready:
/// the write that follows says what the error is.
fn wait_for_room(socket: &TcpStream, idle: Option<Duration>) -> io::Result<()> {
    let timeout_ms = idle.map_or(-1, |t| {
        libc::c_int::try_from(t.as_millis().max(1)).unwrap_or(libc::c_int::MAX)
    });
    let mut waited = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT | libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `waited` is a valid, initialised `pollfd` that lives across the call, and
        // the count (1) says poll(2) may read and write exactly that one; the descriptor is
        // open for as long as `socket` is borrowed (an unknown one would only be reported
        // as POLLNVAL, never misused).
        let ready = unsafe { libc::poll(&mut waited, 1, timeout_ms) };
        match ready {
            0 => return Err(io::Error::from(io::ErrorKind::TimedOut)),
            n if n > 0 => break,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    if waited.revents & libc::POLLIN != 0 {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the client sent bytes during a stream it was to receive",
        ));
    }
    Ok(())
}
