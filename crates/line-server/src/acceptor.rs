//! The acceptor: takes clients off the listening socket and starts a task for each.
//!
//! It is the seed's `loop_acceptor/1`, run as a `:permanent` child of the supervisor.
//! Each client gets its own `:temporary` task (never restarted), tracked so shutdown can
//! wait for it. As in Thousand Island, accept errors are sorted: a client that vanished
//! is ordinary; running out of descriptors or memory backs off and retries; anything
//! else crashes the acceptor into its supervisor.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::AsyncWriteExt;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::event_loops::{Connections, Placement};
use crate::protocol::{replies, Protocol};
use crate::throttle::Throttle;

/// First pause after running out of descriptors; doubles up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one accept-error warning per this interval; the rest are counted.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// How long a refused client gets to receive its `ERROR too many connections`.
const REJECT_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything an acceptor needs; cheap to clone, so a restarted acceptor gets the same
/// listener (same port) and the same connection bookkeeping.
pub(crate) struct Acceptor<P> {
    /// The listening socket, shared across restarts. Accepted sockets come out of it as
    /// plain std sockets, registered only with the runtime that will serve them (an event
    /// loop's): registering them here first, only to move them, would cost two `epoll_ctl`
    /// calls per client and leave the acceptor's reactor holding state for each.
    pub(crate) listener: Arc<AsyncFd<std::net::TcpListener>>,
    /// One permit per allowed concurrent client (`max_connections`).
    pub(crate) connection_slots: Arc<Semaphore>,
    /// The protocol, limits, tokens and task tracker every connection is started with.
    pub(crate) connections: Arc<Connections<P>>,
    /// Where accepted clients are served: here, or on the event loops.
    pub(crate) placement: Arc<Placement<P>>,
}

impl<P> Clone for Acceptor<P> {
    fn clone(&self) -> Self {
        Self {
            listener: self.listener.clone(),
            connection_slots: self.connection_slots.clone(),
            connections: self.connections.clone(),
            placement: self.placement.clone(),
        }
    }
}

/// How an accept error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptError {
    /// Only this client is affected (it reset before we accepted it, ...): go on.
    ClientGone,
    /// Out of descriptors, buffers or memory: log, back off, retry.
    OutOfResources,
    /// Anything else: the acceptor is broken; let the supervisor restart it.
    Fatal,
}

fn classify(e: &io::Error) -> AcceptError {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            AcceptError::OutOfResources
        }
        // accept(2), "Error handling": these are pending network errors of the new
        // socket, to be treated like EAGAIN by retrying.
        Some(
            libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EPROTO
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ENETDOWN
            | libc::ETIMEDOUT
            | libc::EPERM
            | libc::EINTR
            | libc::EAGAIN,
        ) => AcceptError::ClientGone,
        _ => AcceptError::Fatal,
    }
}

impl<P: Protocol> Acceptor<P> {
    /// Accepts until shutdown (`Ok`) or a fatal accept error (`Err`). Fails too (by
    /// panicking, or with an error) when the protocol's [`Protocol::acceptor_hook`] does.
    pub(crate) async fn run(self) -> io::Result<()> {
        let mut backoff = MIN_BACKOFF;
        // Out of descriptors is logged at most once per interval, not once per attempt.
        let log = Throttle::new(ERROR_LOG_INTERVAL);
        let shutdown = &self.connections.shutdown;
        let hook = self.connections.protocol.acceptor_hook();
        tokio::pin!(hook);
        loop {
            let accepted = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                () = &mut hook => return Err(io::Error::other("the protocol's acceptor hook fired")),
                accepted = self.listener.async_io(Interest::READABLE, |l| l.accept()) => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = MIN_BACKOFF;
                    self.connections.settings.stats.received();
                    self.start_connection(stream, peer);
                }
                Err(e) => match classify(&e) {
                    AcceptError::ClientGone => debug!("client vanished before accept: {e}"),
                    AcceptError::OutOfResources => {
                        let descriptors =
                            matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                        self.connections.settings.stats.accept_failed(descriptors);
                        if let Some(not_logged) = log.allow() {
                            warn!(
                                "accept failed: {e}; backing off {} ms ({not_logged} similar \
                                 errors not logged)",
                                backoff.as_millis()
                            );
                        }
                        tokio::select! {
                            () = shutdown.cancelled() => return Ok(()),
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    AcceptError::Fatal => return Err(e),
                },
            }
        }
    }

    /// Starts the client's task, or turns the client away if all slots are taken.
    fn start_connection(&self, stream: std::net::TcpStream, peer: SocketAddr) {
        // Non-blocking, as every runtime needs; replies are written in batches already, so
        // Nagle would only add latency.
        let ready = stream
            .set_nonblocking(true)
            .and_then(|()| stream.set_nodelay(true));
        if let Err(e) = ready {
            debug!(peer = %peer, "client gone before it was served: {e}");
            return;
        }
        let Ok(slot) = self.connection_slots.clone().try_acquire_owned() else {
            debug!(peer = %peer, "refusing client: too many connections");
            self.connections.settings.stats.rejected_over_limit();
            // Over TLS the line could only be sent after a handshake, which a client over
            // the limit is not worth: it is closed without a reply (as Redis does).
            if self.connections.settings.tls.is_some() {
                return;
            }
            if let Ok(stream) = TcpStream::from_std(stream) {
                self.connections.tracker.spawn(refuse(stream));
            }
            return;
        };
        self.placement.place(stream, peer, slot);
    }
}

/// Tells a client over the limit why it is being closed (as Redis and memcached do).
async fn refuse(mut stream: TcpStream) {
    let write = async {
        stream.write_all(replies::TOO_MANY_CONNECTIONS).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(REJECT_WRITE_TIMEOUT, write).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_accept_errors_like_accept_2_says() {
        let err = |code| io::Error::from_raw_os_error(code);
        assert_eq!(classify(&err(libc::EMFILE)), AcceptError::OutOfResources);
        assert_eq!(classify(&err(libc::ENFILE)), AcceptError::OutOfResources);
        assert_eq!(classify(&err(libc::ECONNABORTED)), AcceptError::ClientGone);
        assert_eq!(classify(&err(libc::EPROTO)), AcceptError::ClientGone);
        assert_eq!(classify(&err(libc::EBADF)), AcceptError::Fatal);
        assert_eq!(classify(&err(libc::EINVAL)), AcceptError::Fatal);
    }
}
