//! Fault injection: [`Faulty`] wraps any protocol with the `DEBUG` commands of the
//! protocol reference (`docs/PROTOCOL.md`, "Fault injection").
//!
//! They exist so that tests and operators can crash a connection or the acceptor on
//! demand and watch supervision hold, the way Ranch's and Thousand Island's test suites
//! crash their own handlers. A wrapper, not a branch in the connection loop: the wrapped
//! session sees every other line, and a server without the wrapper has no such code path.
//!
//! | line | effect |
//! |---|---|
//! | `DEBUG PANIC` | the task serving this connection panics |
//! | `DEBUG ACCEPTOR-PANIC` | replies `OK`; the acceptor then panics and is restarted |
//! | `DEBUG SLEEP ms` | this connection sleeps `ms` milliseconds, then replies `OK` |

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::Notify;
use tracing::warn;

use crate::framing::words;
use crate::protocol::{Flow, Handoff, Protocol, Session};
use crate::stats::ServerStats;

/// The reply to a `DEBUG` command that returns.
const OK: &[u8] = b"OK\r\n";

/// A fault a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `DEBUG PANIC`: the task serving this connection panics.
    PanicConnection,
    /// `DEBUG ACCEPTOR-PANIC`: reply `OK`, then the acceptor panics.
    PanicAcceptor,
    /// `DEBUG SLEEP ms`: sleep, then reply `OK`.
    Sleep(Duration),
}

impl Fault {
    /// Parses a line (terminator included); `None` if it is not a well-formed `DEBUG`
    /// command, in which case the line goes to the protocol like any other.
    fn parse(line: &[u8]) -> Option<Fault> {
        let mut words = words(line);
        if !words.next()?.eq_ignore_ascii_case(b"DEBUG") {
            return None;
        }
        let verb = words.next()?;
        let argument = words.next();
        let fault = if verb.eq_ignore_ascii_case(b"PANIC") && argument.is_none() {
            Fault::PanicConnection
        } else if verb.eq_ignore_ascii_case(b"ACCEPTOR-PANIC") && argument.is_none() {
            Fault::PanicAcceptor
        } else if verb.eq_ignore_ascii_case(b"SLEEP") {
            let ms: u64 = std::str::from_utf8(argument?).ok()?.parse().ok()?;
            Fault::Sleep(Duration::from_millis(ms))
        } else {
            return None;
        };
        words.next().is_none().then_some(fault)
    }
}

/// `P` with the `DEBUG` commands: they are carried out here, every other line goes to
/// `P`'s session. Works around any protocol, so faults behave the same in every mode.
#[derive(Debug, Default)]
pub struct Faulty<P> {
    inner: P,
    /// Rung by a connection's `DEBUG ACCEPTOR-PANIC`; the acceptor's hook listens.
    acceptor_panic: Arc<Notify>,
}

impl<P> Faulty<P> {
    /// Wraps `inner`.
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            acceptor_panic: Arc::new(Notify::new()),
        }
    }
}

/// A session of `S` that also obeys the `DEBUG` commands.
#[derive(Debug)]
pub struct FaultySession<S> {
    inner: S,
    peer: SocketAddr,
    acceptor_panic: Arc<Notify>,
}

impl<P: Protocol> Protocol for Faulty<P> {
    type Session = FaultySession<P::Session>;

    fn on_start(&mut self, stats: &Arc<ServerStats>) {
        self.inner.on_start(stats);
    }

    fn open_session(&self, peer: SocketAddr) -> Self::Session {
        FaultySession {
            inner: self.inner.open_session(peer),
            peer,
            acceptor_panic: Arc::clone(&self.acceptor_panic),
        }
    }

    /// Panics the acceptor once a connection asked for it (`Notify` keeps the request if
    /// no acceptor is listening at that instant, so it is never lost); fails it too when
    /// the wrapped protocol's hook does.
    async fn acceptor_hook(&self) {
        tokio::select! {
            () = self.inner.acceptor_hook() => {}
            () = self.acceptor_panic.notified() => panic!("DEBUG ACCEPTOR-PANIC"),
        }
    }
}

impl<S: Session> Session for FaultySession<S> {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        let Some(fault) = Fault::parse(line) else {
            return self.inner.on_line(line, out).await;
        };
        // The inner session's deferred replies come before this command's.
        self.inner.on_batch_end(out).await;
        match fault {
            Fault::PanicConnection => panic!("DEBUG PANIC requested by {}", self.peer),
            Fault::PanicAcceptor => {
                warn!(peer = %self.peer, "DEBUG ACCEPTOR-PANIC requested");
                self.acceptor_panic.notify_one();
            }
            Fault::Sleep(duration) => tokio::time::sleep(duration).await,
        }
        out.extend_from_slice(OK);
        Flow::Continue
    }

    fn on_open(&mut self, out: &mut BytesMut) -> Flow {
        self.inner.on_open(out)
    }

    async fn on_batch_end(&mut self, out: &mut BytesMut) {
        self.inner.on_batch_end(out).await;
    }

    fn screen(&mut self, line: &[u8]) -> Flow {
        self.inner.screen(line)
    }

    fn poll_push(&mut self, out: Option<&mut BytesMut>, cx: &mut Context<'_>) -> Poll<Flow> {
        self.inner.poll_push(out, cx)
    }

    fn handoff(&mut self) -> Option<Handoff> {
        self.inner.handoff()
    }

    fn is_listening(&self) -> bool {
        self.inner.is_listening()
    }

    fn on_unterminated_eof(&mut self, rest: &[u8], out: &mut BytesMut) {
        self.inner.on_unterminated_eof(rest, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_fault_case_insensitively() {
        assert_eq!(
            Fault::parse(b"DEBUG PANIC\r\n"),
            Some(Fault::PanicConnection)
        );
        assert_eq!(Fault::parse(b"debug panic\n"), Some(Fault::PanicConnection));
        assert_eq!(
            Fault::parse(b"Debug Acceptor-Panic\n"),
            Some(Fault::PanicAcceptor)
        );
        assert_eq!(
            Fault::parse(b"  DEBUG\tSLEEP  250 \r\n"),
            Some(Fault::Sleep(Duration::from_millis(250)))
        );
    }

    #[test]
    fn anything_else_is_not_a_fault() {
        for line in [
            &b"DEBUG\n"[..],
            b"DEBUG SLEEP\n",
            b"DEBUG SLEEP x\n",
            b"DEBUG SLEEP -1\n",
            b"DEBUG SLEEP 1 2\n",
            b"DEBUG PANIC now\n",
            b"DEBUGPANIC\n",
            b"GET a b\n",
            b"\n",
        ] {
            assert_eq!(
                Fault::parse(line),
                None,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
