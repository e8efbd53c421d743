//! A session's own lines (`Session::poll_push`): sent while the connection waits for input,
//! never between a request and its reply; a listening session outlives the idle timeout.

pub mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use common::client::show;
use common::tls::{connect_tls, pki, tls_config};
use common::{start, PATIENCE};
use line_server::{Flow, Protocol, ServerConfig, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Lines for the clients, put by the test; `BYE` closes the connection after it.
#[derive(Default)]
struct Mailbox {
    lines: Vec<Vec<u8>>,
    waker: Option<Waker>,
    /// For each push: whether it joined one the connection still held (unsent).
    joined: Vec<bool>,
}

/// Echoes each line as `re: line`; pushes what the test posts (one mailbox for all).
#[derive(Clone, Default)]
struct Courier(Arc<Mutex<Mailbox>>);

impl Courier {
    fn post(&self, line: &[u8]) {
        let mut mailbox = self.0.lock().expect("not poisoned");
        mailbox.lines.push(line.to_vec());
        if let Some(waker) = mailbox.waker.take() {
            waker.wake();
        }
    }
}

impl Protocol for Courier {
    type Session = Courier;

    fn open_session(&self, _: SocketAddr) -> Courier {
        self.clone()
    }
}

impl Session for Courier {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        if let Some(news) = line.strip_prefix(b"post ") {
            // A push ready while its request is answered: it must follow the reply.
            self.post(news);
        } else {
            // A slow request: a push that came meanwhile must wait for its reply.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        out.extend_from_slice(b"re: ");
        out.extend_from_slice(line);
        Flow::Continue
    }

    fn poll_push(&mut self, out: Option<&mut BytesMut>, cx: &mut Context<'_>) -> Poll<Flow> {
        let mut mailbox = self.0.lock().expect("not poisoned");
        let Some(out) = out.filter(|_| !mailbox.lines.is_empty()) else {
            mailbox.waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let mut flow = Flow::Continue;
        let joined = !out.is_empty();
        mailbox.joined.push(joined);
        for line in mailbox.lines.drain(..) {
            flow = if line == b"BYE\n" { Flow::Close } else { flow };
            out.extend_from_slice(&line);
        }
        Poll::Ready(flow)
    }

    fn is_listening(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_pushed_line_reaches_a_waiting_client_and_never_splits_a_reply() {
    let courier = Courier::default();
    let server = start(courier.clone(), ServerConfig::default());
    let mut client = server.connect().await;
    courier.post(b"news 1\n");
    client.expect(b"news 1\n").await;
    client.send(b"question\n").await;
    // Posted while the request is being answered: it follows the reply.
    tokio::time::sleep(Duration::from_millis(10)).await;
    courier.post(b"news 2\n");
    client.expect(b"re: question\nnews 2\n").await;
}

/// Gathering (`wire::poll_push_or_read`): lines posted apart, but within one turn of the
/// event loop, leave in one send. Connections run on the test's own runtime here, so the
/// turn is the test's to shape: a post, a yield (tokio runs the yielding task again only
/// after polling for I/O), a second post.
#[tokio::test]
async fn pushes_ready_within_one_turn_of_the_loop_leave_together() {
    let courier = Courier::default();
    let config = ServerConfig {
        event_loops: None,
        ..ServerConfig::default()
    };
    let server = start(courier.clone(), config);
    let mut client = server.connect().await;
    client.send(b"post hello\n").await;
    client.expect(b"re: post hello\nhello\n").await;
    courier.post(b"first\n");
    tokio::task::yield_now().await;
    courier.post(b"second\n");
    client.expect(b"first\nsecond\n").await;
    let joined = courier.0.lock().expect("not poisoned").joined.clone();
    assert_eq!(
        joined,
        [false, false, true],
        "each push: whether it joined a held one"
    );
}

#[tokio::test]
async fn a_push_that_says_close_is_sent_then_the_connection_closes() {
    let courier = Courier::default();
    let server = start(courier.clone(), ServerConfig::default());
    let mut client = server.connect().await;
    client.send(b"hi\n").await;
    client.expect(b"re: hi\n").await;
    courier.post(b"BYE\n");
    client.expect(b"BYE\n").await;
    client.expect_eof().await;
}

#[tokio::test]
async fn a_listening_session_is_not_closed_by_the_idle_timeout() {
    let courier = Courier::default();
    let config = ServerConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        ..ServerConfig::default()
    };
    let server = start(courier.clone(), config);
    let mut client = server.connect().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    courier.post(b"still here\n");
    client.expect(b"still here\n").await;
}

#[tokio::test]
async fn pushes_written_at_once_arrive_whole_in_order_and_after_the_replies() {
    let courier = Courier::default();
    let server = start(courier.clone(), ServerConfig::default());
    let mut client = server.connect().await;
    // One at a time, each taken whole by the socket: the fast path writes every one.
    let mut expected = Vec::new();
    for i in 0..200 {
        let line = format!("news {i}\n").into_bytes();
        courier.post(&line);
        expected.extend_from_slice(&line);
        if i % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    client.expect(&expected).await;
    // A push that is ready while its request is being answered comes after the reply.
    for i in 0..50 {
        client.send(format!("post flash {i}\n").as_bytes()).await;
        client
            .expect(format!("re: post flash {i}\nflash {i}\n").as_bytes())
            .await;
    }
}

#[tokio::test]
async fn pushes_posted_while_requests_are_answered_keep_their_order_and_split_no_reply() {
    let courier = Courier::default();
    let server = start(courier.clone(), ServerConfig::default());
    let mut client = server.connect().await;
    let poster = courier.clone();
    let posting = tokio::spawn(async move {
        for i in 0..2000 {
            poster.post(format!("news {i}\n").as_bytes());
            tokio::task::yield_now().await;
        }
    });
    for i in 0..20 {
        client.send(format!("post flash {i}\n").as_bytes()).await;
    }
    posting.await.expect("the poster ran");
    client.send(b"post end\n").await;
    // Read until the last push, then check every line whole and in its place.
    let mut lines = Vec::new();
    loop {
        let line = client.read_line().await;
        let last = line == b"end\n";
        lines.push(String::from_utf8(line).expect("ASCII lines"));
        if last {
            break;
        }
    }
    let mut next_news = 0;
    let mut next_reply = 0;
    let mut flashes_owed = Vec::new();
    for line in &lines {
        if let Some(n) = line.strip_prefix("news ") {
            assert_eq!(
                n,
                format!("{next_news}\n"),
                "news out of order in {lines:?}"
            );
            next_news += 1;
        } else if let Some(asked) = line.strip_prefix("re: post ") {
            let want = if next_reply < 20 {
                format!("flash {next_reply}\n")
            } else {
                "end\n".to_owned()
            };
            assert_eq!(asked, want, "replies out of order in {lines:?}");
            next_reply += 1;
            flashes_owed.push(want);
        } else {
            // A push a request posted: only after that request's reply.
            let owed = flashes_owed.iter().position(|f| f == line);
            let owed = owed.unwrap_or_else(|| panic!("{line:?} before its reply: {lines:?}"));
            flashes_owed.remove(owed);
        }
    }
    assert_eq!((next_news, next_reply), (2000, 21));
    assert!(flashes_owed.is_empty(), "pushes missing: {flashes_owed:?}");
}

#[tokio::test]
async fn pushes_over_tls_arrive_in_order_and_after_the_replies() {
    let pki = pki();
    let courier = Courier::default();
    let server = start(courier.clone(), tls_config(&pki, false));
    let mut client = connect_tls(server.addr(), &pki, None)
        .await
        .expect("handshake");
    let mut expected = Vec::new();
    for i in 0..100 {
        let line = format!("news {i}\n").into_bytes();
        courier.post(&line);
        expected.extend_from_slice(&line);
    }
    client.write_all(b"post flash\n").await.expect("send");
    expected.extend_from_slice(b"re: post flash\nflash\n");
    let mut got = vec![0; expected.len()];
    timeout(PATIENCE, client.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    // Every news was posted before the request was sent, and is polled before it is read.
    assert_eq!(show(&got), show(&expected));
}

/// Pushes what the test posts, holding at most `BOUND` unsent bytes for its one client:
/// past that, it says [`Flow::Close`], as a subscription does for a slow subscriber.
#[derive(Clone, Default)]
struct Station(Arc<Mutex<Unsent>>);

#[derive(Default)]
struct Unsent {
    bytes: BytesMut,
    overflowed: bool,
    waker: Option<Waker>,
}

impl Station {
    const BOUND: usize = 256 * 1024;

    fn post(&self, bytes: &[u8]) {
        let mut unsent = self.0.lock().expect("not poisoned");
        if unsent.bytes.len() + bytes.len() > Self::BOUND {
            unsent.overflowed = true;
        } else {
            unsent.bytes.extend_from_slice(bytes);
        }
        if let Some(waker) = unsent.waker.take() {
            waker.wake();
        }
    }

    fn overflowed(&self) -> bool {
        self.0.lock().expect("not poisoned").overflowed
    }
}

impl Protocol for Station {
    type Session = Station;

    fn open_session(&self, _: SocketAddr) -> Station {
        self.clone()
    }
}

impl Session for Station {
    async fn on_line(&mut self, _: &[u8], _: &mut BytesMut) -> Flow {
        Flow::Continue
    }

    fn poll_push(&mut self, out: Option<&mut BytesMut>, cx: &mut Context<'_>) -> Poll<Flow> {
        let mut unsent = self.0.lock().expect("not poisoned");
        if unsent.overflowed {
            return Poll::Ready(Flow::Close);
        }
        match out {
            Some(out) if !unsent.bytes.is_empty() => {
                out.extend_from_slice(&unsent.bytes.split());
                Poll::Ready(Flow::Continue)
            }
            _ => {
                unsent.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn is_listening(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_by_the_sessions_bound_and_got_a_prefix() {
    let station = Station::default();
    let server = start(station.clone(), ServerConfig::default());
    let mut client = server.connect().await;
    // The client reads nothing: once its socket is full, pushes wait in the session
    // until its bound passes.
    let mut posted = Vec::new();
    for i in 0.. {
        if station.overflowed() {
            break;
        }
        assert!(
            i < 20_000,
            "the bound never passed: the server took everything"
        );
        let chunk = format!("{i:015}\n").repeat(1024).into_bytes();
        station.post(&chunk);
        posted.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = client.read_to_end().await;
    assert!(
        got.len() < posted.len(),
        "{} bytes of {} arrived: nothing was dropped",
        got.len(),
        posted.len()
    );
    assert!(
        got == posted[..got.len()],
        "what arrived is not what was posted, in order"
    );
}

/// A session that, once told `listen`, always has one more line to push; any other line is
/// answered with how many it has pushed so far.
#[derive(Clone, Default)]
struct Hose {
    pushed: Arc<AtomicU64>,
    listening: bool,
}

impl Protocol for Hose {
    type Session = Hose;

    fn open_session(&self, _: SocketAddr) -> Hose {
        self.clone()
    }
}

impl Session for Hose {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        if line == b"listen\n" {
            self.listening = true;
            out.extend_from_slice(b"ok\n");
        } else {
            let pushed = self.pushed.load(Ordering::Relaxed);
            out.extend_from_slice(format!("{pushed}\n").as_bytes());
        }
        Flow::Continue
    }

    fn poll_push(&mut self, out: Option<&mut BytesMut>, _: &mut Context<'_>) -> Poll<Flow> {
        match out {
            Some(out) if self.listening => {
                out.extend_from_slice(b"x\n");
                self.pushed.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Flow::Continue)
            }
            // Never ready otherwise, so never woken.
            _ => Poll::Pending,
        }
    }

    fn is_listening(&self) -> bool {
        self.listening
    }
}

#[tokio::test]
async fn a_session_that_always_has_a_push_does_not_starve_its_event_loop() {
    let hose = Hose::default();
    let config = ServerConfig {
        // Both clients on one event loop.
        event_loops: NonZeroUsize::new(1),
        ..ServerConfig::default()
    };
    let server = start(hose.clone(), config);
    let mut listener = server.connect().await;
    listener.send(b"listen\n").await;
    listener.expect(b"ok\n").await;
    // Read as fast as the pushes come, so the socket never fills and never makes the
    // pushing connection wait by itself.
    let draining = tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        let mut total = 0u64;
        while let Ok(Ok(n @ 1..)) = timeout(PATIENCE, listener.stream().read(&mut buf)).await {
            total += n as u64;
        }
        total
    });
    let mut other = server.connect().await;
    let mut counts = Vec::new();
    for _ in 0..10 {
        other.send(b"count\n").await;
        let line = other.read_line().await;
        let count: u64 = String::from_utf8_lossy(&line)
            .trim()
            .parse()
            .expect("a count");
        counts.push(count);
    }
    // The other client was served ten times, and the pushes went on meanwhile.
    assert!(counts[9] > counts[0], "no pushes while served: {counts:?}");
    server.stop().await.expect("a clean shutdown");
    let read = draining.await.expect("the reader ran");
    assert!(read > 0, "the listener got no pushes");
}
