//! KV mode: the bucket protocol of PROTOCOL.md, "KV mode" over any [`Store`].
//!
//! A line is parsed into a typed request before anything is looked up, the request is
//! applied to the store, and its reply is encoded. The grammar — parsing, the cross-protocol
//! classification, every reply's bytes — is `kv_protocol`'s, shared with the client and the
//! bench; the server's half is here: this file (the session that ties a connection to the
//! store), `apply.rs` (running each request against the store), `subscriber.rs` (a
//! subscribed connection), `backup.rs` (one sending a backup), `cross_protocol.rs` (closing on a line of HTTP, with a
//! warning), `counters.rs` (what is counted, per thread) and `info.rs` (`INFO`).

mod apply;
mod backup;
pub mod counters;
mod cross_protocol;
mod info;
mod subscriber;

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use kv_protocol::{Parsed, Reply, Request};
use kv_store::Store;

use line_server::{trim_terminator, Flow, Handoff, Protocol, ServerStats, Session};

/// The KV protocol over a store shared by every connection.
#[derive(Clone)]
pub struct Kv<S> {
    store: S,
    /// What every session shares.
    shared: Arc<Shared>,
}

/// What every session of a server shares (one pointer in each).
struct Shared {
    /// The machinery's counters, for `INFO`.
    server: Arc<ServerStats>,
    /// Most bytes of events a subscriber may have unsent (`--subscriber-buffer-bytes`).
    subscriber_buffer_bytes: usize,
}

impl<S: Store> Kv<S> {
    /// The default [`Kv::subscriber_buffer_bytes`]: 1 MiB (SPEC §14).
    pub const DEFAULT_SUBSCRIBER_BUFFER_BYTES: usize = 1 << 20;

    /// Serves `store`; `INFO` reports the counters of the server that serves it, which
    /// `line_server::serve` hands over when it starts.
    pub fn new(store: S) -> Self {
        let shared = Shared {
            server: ServerStats::new(),
            subscriber_buffer_bytes: Self::DEFAULT_SUBSCRIBER_BUFFER_BYTES,
        };
        Self {
            store,
            shared: Arc::new(shared),
        }
    }

    /// The same, disconnecting a subscriber whose unsent events pass `bytes`.
    pub fn subscriber_buffer_bytes(self, bytes: usize) -> Self {
        let shared = Shared {
            server: Arc::clone(&self.shared.server),
            subscriber_buffer_bytes: bytes,
        };
        Self {
            shared: Arc::new(shared),
            ..self
        }
    }
}

impl<S: Store> Protocol for Kv<S> {
    type Session = KvSession<S>;

    fn on_start(&mut self, stats: &Arc<ServerStats>) {
        let shared = Shared {
            server: Arc::clone(stats),
            subscriber_buffer_bytes: self.shared.subscriber_buffer_bytes,
        };
        self.shared = Arc::new(shared);
    }

    fn open_session(&self, peer: SocketAddr) -> KvSession<S> {
        KvSession {
            pipeline: self.store.pipeline(),
            shared: Arc::clone(&self.shared),
            pushing: None,
            peer,
            batch: Batch::new(),
        }
    }
}

/// One client's KV conversation.
pub struct KvSession<S: Store> {
    /// The connection's way into the store: every bucket request goes through it
    /// (`apply.rs`), and it keeps what it reuses (the bucket used last, its queues).
    pipeline: S::Pipeline,
    /// What every session shares: the server's counters, settings.
    shared: Arc<Shared>,
    /// What it pushes to the client beside replies, if anything: a subscription's events
    /// or a backup (boxed: most sessions never push, and what a session holds is paid by
    /// every idle client).
    pushing: Option<Box<Pushing>>,
    /// The client's address, for the cross-protocol warning (PROTOCOL.md, "KV mode"), which
    /// must name it.
    peer: SocketAddr,
    /// The batch of lines being handled, for the latency histogram.
    batch: Batch,
}

/// What a session pushes to its client beside replies.
enum Pushing {
    /// A subscription's events (`subscriber.rs`).
    Events(subscriber::Subscribed),
    /// A backup (`backup.rs`).
    Backup(backup::Sending),
}

/// When the batch being handled began and how many commands it has run: its latency is
/// recorded once, for all of them, at its end (`counters.rs`, on why per batch).
struct Batch {
    started: Instant,
    commands: u64,
}

impl Batch {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            commands: 0,
        }
    }

    /// A line of the batch is about to be handled; the first one starts the clock.
    fn line(&mut self) {
        if self.commands == 0 {
            self.started = Instant::now();
        }
        self.commands += 1;
    }

    /// The batch's replies are ready: records its time for each of its commands.
    fn end(&mut self) {
        if self.commands > 0 {
            counters::record_latency(self.started.elapsed(), self.commands);
            self.commands = 0;
        }
    }
}

impl<S: Store> Session for KvSession<S> {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        self.batch.line();
        match self.pushing.as_deref() {
            None => {}
            Some(Pushing::Events(_)) => {
                let (flow, ended) = subscriber::on_line(line, self.peer, out);
                if ended {
                    self.pushing = None;
                }
                return flow;
            }
            Some(Pushing::Backup(_)) => {
                self.pushing = None;
                return Flow::Close;
            }
        }
        match Request::parse(trim_terminator(line)) {
            Parsed::Request(request) => self.apply(request, out).await,
            Parsed::Unknown => {
                self.flush_into(out).await;
                counters::count_error(counters::ErrorKind::UnknownCommand);
                Reply::UnknownCommand.encode(out);
                Flow::Continue
            }
            Parsed::CrossProtocol => {
                // What came before the line of HTTP is answered; nothing after it runs.
                self.flush_into(out).await;
                cross_protocol::hang_up(self.peer)
            }
        }
    }

    async fn on_batch_end(&mut self, out: &mut BytesMut) {
        self.flush_into(out).await;
        self.batch.end();
    }

    /// A line of HTTP closes the connection also when a wrapper answers the line itself
    /// (before `AUTH`: PROTOCOL.md, "Security"), so a web page cannot make a browser guess
    /// passwords. Only such lines are parsed here, never the requests of a served client.
    fn screen(&mut self, line: &[u8]) -> Flow {
        if Request::parse(trim_terminator(line)) != Parsed::CrossProtocol {
            return Flow::Continue;
        }
        cross_protocol::hang_up(self.peer)
    }

    fn poll_push(&mut self, out: Option<&mut BytesMut>, cx: &mut Context<'_>) -> Poll<Flow> {
        let pushed = match self.pushing.as_deref_mut() {
            None => return Poll::Pending,
            Some(Pushing::Events(subscribed)) => subscribed.poll_push(out, self.peer, cx),
            Some(Pushing::Backup(sending)) => match sending.poll_push(out, cx) {
                Poll::Ready(Some(flow)) => Poll::Ready(flow),
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    // Sent whole: back to requests, which the read that follows waits for.
                    self.pushing = None;
                    return Poll::Pending;
                }
            },
        };
        if pushed == Poll::Ready(Flow::Close) {
            // Ended: no longer counted, even while the connection closes.
            self.pushing = None;
        }
        pushed
    }

    /// A backup requested in the batch just answered, to be written by a thread of its
    /// own (over plain TCP; over TLS it is pushed, `poll_push`).
    fn handoff(&mut self) -> Option<Handoff> {
        if !matches!(self.pushing.as_deref(), Some(Pushing::Backup(_))) {
            return None;
        }
        match self.pushing.take().map(|pushing| *pushing) {
            Some(Pushing::Backup(sending)) => Some(sending.into_handoff()),
            other => {
                self.pushing = other.map(Box::new);
                None
            }
        }
    }

    /// A subscriber waits for events, not requests: no idle timeout (SPEC §14); nor does
    /// a client receiving a backup.
    fn is_listening(&self) -> bool {
        self.pushing.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use kv_store::{MemoryStore, Outcome, StoreClient, StoreError};
    use proptest::prelude::*;

    fn session() -> KvSession<MemoryStore> {
        let store = MemoryStore::new();
        let created = StoreClient::new(&store).create(b"b").now_or_never();
        assert_eq!(
            created,
            Some(Outcome::Done),
            "memory store is ready at once"
        );
        Kv::new(store).open_session("127.0.0.1:1".parse().expect("address"))
    }

    /// Runs one line through the session; the in-memory store never waits.
    fn run(session: &mut KvSession<MemoryStore>, line: &[u8]) -> (Vec<u8>, Flow) {
        let mut out = BytesMut::new();
        let flow = session
            .on_line(line, &mut out)
            .now_or_never()
            .expect("memory store is ready at once");
        (out.to_vec(), flow)
    }

    /// A session lives in every connection's task for as long as the client stays, so
    /// what it holds is paid by every idle client (BENCHMARKS.md, "Idle connections"):
    /// with the machinery's part, 88 bytes keep the task in jemalloc's 640-byte class.
    #[test]
    fn an_in_memory_session_stays_small() {
        let size = std::mem::size_of::<KvSession<MemoryStore>>();
        assert!(size <= 88, "the KV session grew to {size} bytes");
    }

    /// Whether `bytes` is exactly one well-formed reply.
    fn is_one_reply(bytes: &[u8]) -> bool {
        match bytes {
            b"OK\r\n" | b"NOT FOUND\r\n" | b"UNKNOWN COMMAND\r\n" | b"PONG\r\n" => true,
            _ => match bytes.strip_suffix(b"\r\nOK\r\n") {
                Some(value) => !value.iter().any(|b| b" \t\r\n".contains(b)),
                None => false,
            },
        }
    }

    /// A non-empty byte string without spaces, tabs or line ends: any key or value.
    fn word() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            any::<u8>().prop_filter("no separators", |b| !b" \t\r\n".contains(b)),
            1..24,
        )
    }

    proptest! {
        /// Any line at all gets exactly one reply, or none and the connection is closed (a
        /// line of HTTP, PROTOCOL.md, "KV mode"); never a panic.
        #[test]
        fn any_line_gets_exactly_one_reply_or_a_silent_close(line in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b'\t'), Just(b'\r'), any::<u8>()], 0..48,
        ), verb in prop_oneof![Just(&b""[..]), Just(&b"PUT b "[..]), Just(&b"GET b "[..]), Just(&b"DELETE b "[..]), Just(&b"CREATE "[..]), Just(&b"POST "[..]), Just(&b"host: "[..])],
           version in prop_oneof![Just(&b""[..]), Just(&b" HTTP/1.1"[..])]) {
            let mut s = session();
            let line = [verb, &line, version, b"\n"].concat();
            let line = match line.iter().position(|b| *b == b'\n') {
                Some(end) => line[..=end].to_vec(),
                None => line,
            };
            let (reply, flow) = run(&mut s, &line);
            let cross_protocol = Request::parse(trim_terminator(&line)) == Parsed::CrossProtocol;
            prop_assert!(
                if cross_protocol { reply.is_empty() && flow == Flow::Close } else { is_one_reply(&reply) },
                "{:?} -> {:?}", String::from_utf8_lossy(&line), String::from_utf8_lossy(&reply)
            );
        }

        /// What PUT stores, GET returns, for arbitrary whitespace-free bytes.
        #[test]
        fn get_returns_what_put_stored(
            key in word(), value in word(),
        ) {
            let mut s = session();
            let (reply, _) = run(&mut s, &[&b"PUT b "[..], &key, b" ", &value, b"\r\n"].concat());
            prop_assert_eq!(reply, b"OK\r\n".to_vec());
            let (reply, _) = run(&mut s, &[&b"GET b "[..], &key, b"\r\n"].concat());
            prop_assert_eq!(reply, [&value[..], b"\r\nOK\r\n"].concat());
        }
    }

    #[test]
    fn quit_closes_after_its_ok() {
        let (reply, flow) = run(&mut session(), b"QUIT\r\n");
        assert_eq!((reply.as_slice(), flow), (&b"OK\r\n"[..], Flow::Close));
    }

    #[test]
    fn a_line_of_http_closes_without_a_reply() {
        let mut s = session();
        assert_eq!(
            run(&mut s, b"GET / HTTP/1.1\r\n"),
            (b"NOT FOUND\r\n".to_vec(), Flow::Continue)
        );
        assert_eq!(
            run(&mut s, b"Host: 127.0.0.1:4040\r\n"),
            (Vec::new(), Flow::Close)
        );
        assert_eq!(
            run(&mut session(), b"POST / HTTP/1.1\r\n"),
            (Vec::new(), Flow::Close)
        );
    }

    #[test]
    fn behind_a_password_a_line_of_http_closes_before_auth_and_nothing_after_it_runs() {
        use line_server::{Auth, Password};
        let store = MemoryStore::new();
        let auth = Auth::new(
            Kv::new(store.clone()),
            Some(Password::new(b"pw").into()),
            true,
        );
        let mut session = auth.open_session("127.0.0.1:1".parse().expect("address"));
        let mut out = BytesMut::new();
        let lines: [&[u8]; 4] = [
            b"PING\r\n",
            b"POST / HTTP/1.1\r\n",
            b"AUTH pw\r\n",
            b"CREATE pwned\r\n",
        ];
        let mut flows = Vec::new();
        for line in lines {
            let flow = session
                .on_line(line, &mut out)
                .now_or_never()
                .expect("ready");
            flows.push(flow);
            if flow == Flow::Close {
                break; // as the connection does: nothing after it runs
            }
        }
        assert_eq!(flows, [Flow::Continue, Flow::Close]);
        assert_eq!(&out[..], b"ERROR NOAUTH authentication required\r\n");
        let pwned = StoreClient::new(&store).get(b"pwned", b"k").now_or_never();
        assert_eq!(pwned, Some(Outcome::NoBucket), "the body ran");
    }

    #[test]
    fn a_store_error_is_answered_error_on_one_line() {
        let mut out = BytesMut::new();
        Reply::Error(StoreError::new("disk full\nreally").message().as_bytes()).encode(&mut out);
        assert_eq!(&out[..], b"ERROR disk full really\r\n");
    }

    #[test]
    fn the_machinerys_error_lines_are_kv_error_replies() {
        let encoded = |reply: Reply<'_>| {
            let mut out = BytesMut::new();
            reply.encode(&mut out);
            out
        };
        assert_eq!(
            encoded(Reply::TOO_MANY_CONNECTIONS),
            line_server::replies::TOO_MANY_CONNECTIONS
        );
        assert_eq!(
            encoded(Reply::LINE_TOO_LONG),
            line_server::replies::LINE_TOO_LONG
        );
    }

    #[test]
    fn a_cached_bucket_handle_still_sees_new_buckets_by_name() {
        let mut s = session();
        assert_eq!(run(&mut s, b"PUT b k 1\r\n").0, b"OK\r\n");
        assert_eq!(run(&mut s, b"PUT c k 2\r\n").0, b"NOT FOUND\r\n");
        assert_eq!(run(&mut s, b"CREATE c\r\n").0, b"OK\r\n");
        assert_eq!(run(&mut s, b"PUT c k 2\r\n").0, b"OK\r\n");
        assert_eq!(run(&mut s, b"GET b k\r\n").0, b"1\r\nOK\r\n");
        assert_eq!(run(&mut s, b"GET c k\r\n").0, b"2\r\nOK\r\n");
    }
}
