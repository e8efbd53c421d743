//! Telling apart the machinery's two kinds of rejected client, which it counts together
//! (`rejected_connections`): over `--max-connections` (at the acceptor), and closed by
//! the protocol as soon as it connected — protected mode, the only wrapper that closes a
//! session in `on_open`. [`CountRefusals`] counts the second kind.
//!
//! A process-wide static rather than a shared handle: a session carrying an `Arc` would
//! cost every idle connection 8 bytes and two contended atomic operations per connection,
//! for an event that happens only to refused clients.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::BytesMut;
use line_server::{Flow, Protocol, Session};

/// Clients the protocol closed on connect.
static REFUSED_AT_CONNECT: AtomicU64 = AtomicU64::new(0);
/// The highest "over the limit" figure reported so far (see [`split`]).
static LIMIT_REPORTED: AtomicU64 = AtomicU64::new(0);

/// `P`, counting the sessions it closes on connect.
#[derive(Debug)]
pub struct CountRefusals<P>(pub P);

/// A session of `S`, counted if it closes on connect.
#[derive(Debug)]
pub struct CountedSession<S>(S);

impl<P: Protocol> Protocol for CountRefusals<P> {
    type Session = CountedSession<P::Session>;

    fn on_start(&mut self, stats: &std::sync::Arc<line_server::ServerStats>) {
        self.0.on_start(stats);
    }

    fn open_session(&self, peer: SocketAddr) -> Self::Session {
        CountedSession(self.0.open_session(peer))
    }

    fn acceptor_hook(&self) -> impl Future<Output = ()> + Send + '_ {
        self.0.acceptor_hook()
    }
}

impl<S: Session> Session for CountedSession<S> {
    fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> impl Future<Output = Flow> + Send {
        self.0.on_line(line, out)
    }

    fn on_open(&mut self, out: &mut BytesMut) -> Flow {
        let flow = self.0.on_open(out);
        if flow == Flow::Close {
            REFUSED_AT_CONNECT.fetch_add(1, Relaxed);
        }
        flow
    }

    fn on_batch_end(&mut self, out: &mut BytesMut) -> impl Future<Output = ()> + Send {
        self.0.on_batch_end(out)
    }

    fn screen(&mut self, line: &[u8]) -> Flow {
        self.0.screen(line)
    }

    fn on_unterminated_eof(&mut self, rest: &[u8], out: &mut BytesMut) {
        self.0.on_unterminated_eof(rest, out);
    }
}

/// The machinery's `rejected` total (read before calling this) split into
/// `(over the limit, protected mode)`. A refused session is counted here before the
/// machinery counts it, so reading `rejected` first can only make the difference too
/// small for a moment, never too big; keeping the highest figure reported keeps the
/// counter from going back when that moment passes.
pub fn split(rejected: u64) -> (u64, u64) {
    let protected = REFUSED_AT_CONNECT.load(Relaxed);
    let limit = rejected.saturating_sub(protected);
    let previous = LIMIT_REPORTED.fetch_max(limit, Relaxed);
    (limit.max(previous), protected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_figure_never_goes_back_while_a_refusal_is_half_counted() {
        // The only test of these statics in this binary.
        assert_eq!(split(5), (5, 0));
        // Two refusals counted here; the machinery has counted one of them so far.
        REFUSED_AT_CONNECT.fetch_add(2, Relaxed);
        assert_eq!(split(6), (5, 2));
        assert_eq!(split(7), (5, 2));
        assert_eq!(split(8), (6, 2), "one more over the limit");
    }
}
