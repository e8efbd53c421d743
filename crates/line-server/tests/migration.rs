//! Connections move between event loops as the load needs (balance.rs, migration.rs): a
//! pool that connected while one loop sufficed is spread when another is activated and
//! gathered when it is deactivated; a connection that moves in the middle of a pipeline
//! keeps every reply, in order, over TCP and TLS; and a graceful shutdown racing the moves
//! still answers every line. The load is made by the protocol (lines that keep their loop
//! busy), so the tests count moves, never time them. A loop is activated only while a
//! core is idle for it, so these tests run one at a time ([`ONE_AT_A_TIME`]), and need
//! the machine to leave them a core now and then.

pub mod common;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::tls::{connect_tls, pki, tls_config};
use common::{eventually, start, PATIENCE};
use line_server::{Flow, Protocol, ServerConfig, Session};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Answers `VERB N ...` with `N LOOP`: the line's own number, and the name of the event
/// loop that served it. A `spin` line first holds its loop for [`SPIN`], as a CPU-heavy
/// request does.
#[derive(Clone, Copy)]
struct Spinner;

struct SpinnerSession;

/// Held by each test for its whole run: two tests spinning at once would leave no core
/// idle, and no loop would be activated.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a `spin` line keeps its loop busy.
const SPIN: Duration = Duration::from_millis(1);

impl Protocol for Spinner {
    type Session = SpinnerSession;

    fn open_session(&self, _peer: SocketAddr) -> SpinnerSession {
        SpinnerSession
    }
}

impl Session for SpinnerSession {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        let mut words = line.trim_ascii_end().split(|&b| b == b' ');
        if words.next() == Some(b"spin") {
            let start = Instant::now();
            while start.elapsed() < SPIN {
                std::hint::spin_loop();
            }
            // As a long command should on a cooperative runtime: the loop then turns
            // over, and publishes its busy time, every few dozen such lines rather than
            // once its connections run out of input (tokio's `event_interval`).
            tokio::task::yield_now().await;
        }
        out.extend_from_slice(words.next().unwrap_or(b"?"));
        out.extend_from_slice(b" ");
        let thread = std::thread::current();
        out.extend_from_slice(thread.name().unwrap_or("unnamed").as_bytes());
        out.extend_from_slice(b"\n");
        Flow::Continue
    }
}

/// Lines a client writes at a time, and how many such chunks it leaves unanswered.
const CHUNK: usize = 10;
const WINDOW: usize = 4;
/// Makes a line long enough that a chunk is written in two parts split inside a line.
const PAD: &str = "................................................................";

/// A client pipelining numbered lines — chunks of [`CHUNK`], at most [`WINDOW`] of them
/// unanswered, each written in two parts split inside a line, so that the server's reads
/// (and so its batches) can end on a partial line — while another task reads the replies,
/// asserting each one's number in order.
struct Pipeline<S> {
    /// Lines keep their loop busy (`spin`); else they are light, a chunk every 20 ms.
    heavy: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// The loop that answered each line so far.
    loops: Arc<Mutex<Vec<String>>>,
    writer: Option<JoinHandle<WriteHalf<S>>>,
    /// The writing half, once the writer has stopped: kept open until the end.
    written: Option<WriteHalf<S>>,
    reader: JoinHandle<BufReader<ReadHalf<S>>>,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Pipeline<S> {
    fn start(stream: S) -> Self {
        let (read, write) = tokio::io::split(stream);
        let heavy = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let loops = Arc::new(Mutex::new(Vec::new()));
        let window = Arc::new(Semaphore::new(WINDOW));
        let writer = tokio::spawn(write_chunks(
            write,
            Arc::clone(&heavy),
            Arc::clone(&stop),
            Arc::clone(&window),
        ));
        let reader = tokio::spawn(read_replies(read, Arc::clone(&loops), window));
        Self {
            heavy,
            stop,
            loops,
            writer: Some(writer),
            written: None,
            reader,
        }
    }

    fn loops(&self) -> Vec<String> {
        self.loops.lock().expect("not poisoned").clone()
    }

    fn lighten(&self) {
        self.heavy.store(false, Relaxed);
    }

    /// Stops writing, once the chunk being written and the line `end` are sent.
    async fn stop_writing(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(writer) = self.writer.take() {
            let written = timeout(PATIENCE, writer).await.expect("the writer stops");
            self.written = Some(written.expect("the writer does not panic"));
        }
    }

    /// Waits until every line has been answered, in order; returns the loop that answered
    /// each, and the reading half.
    async fn finish(mut self) -> (Vec<String>, BufReader<ReadHalf<S>>) {
        self.stop_writing().await;
        let read = timeout(PATIENCE, self.reader)
            .await
            .expect("every line answered")
            .expect("every reply in order");
        let loops = Arc::try_unwrap(self.loops).map_or_else(
            |shared| shared.lock().expect("not poisoned").clone(),
            |only| only.into_inner().expect("not poisoned"),
        );
        (loops, read)
    }
}

async fn write_chunks<S: AsyncWrite>(
    mut write: WriteHalf<S>,
    heavy: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    window: Arc<Semaphore>,
) -> WriteHalf<S> {
    let mut sent = 0;
    while !stop.load(Relaxed) {
        window.acquire().await.expect("never closed").forget();
        let verb = if heavy.load(Relaxed) { "spin" } else { "where" };
        let chunk: String = (sent..sent + CHUNK)
            .map(|n| format!("{verb} {n} {PAD}\n"))
            .collect();
        let (first, rest) = chunk.as_bytes().split_at(chunk.len() / 2 + 7);
        for part in [first, rest] {
            write.write_all(part).await.expect("send a chunk");
            write.flush().await.expect("send a chunk");
        }
        sent += CHUNK;
        if !heavy.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    write.write_all(b"where end\n").await.expect("send the end");
    write.flush().await.expect("send the end");
    write
}

async fn read_replies<S: AsyncRead>(
    read: ReadHalf<S>,
    loops: Arc<Mutex<Vec<String>>>,
    window: Arc<Semaphore>,
) -> BufReader<ReadHalf<S>> {
    let mut read = BufReader::new(read);
    let mut line = String::new();
    for expected in 0.. {
        line.clear();
        let got = timeout(PATIENCE, read.read_line(&mut line)).await;
        let got = got.expect("a reply in time").expect("a reply");
        assert!(got > 0, "closed before reply {expected}");
        let (number, on) = line.trim_end().split_once(' ').expect("N LOOP");
        if number == "end" {
            return read;
        }
        assert_eq!(number, expected.to_string(), "replies out of order");
        loops.lock().expect("not poisoned").push(on.to_string());
        if (expected + 1) % CHUNK == 0 {
            window.add_permits(1);
        }
    }
    unreachable!("the loop ends at the end line")
}

fn loops(n: usize) -> ServerConfig {
    ServerConfig {
        event_loops: NonZeroUsize::new(n),
        ..ServerConfig::default()
    }
}

/// How many times the loop answering a line changed from the line before.
fn changes(loops: &[String]) -> usize {
    loops.windows(2).filter(|w| w[0] != w[1]).count()
}

#[tokio::test]
async fn a_pool_connected_while_one_loop_sufficed_spreads_when_another_is_activated_and_gathers_again(
) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = start(Spinner, loops(2));
    let stats = server.stats().await;
    let mut pool = Vec::new();
    for _ in 0..8 {
        let stream = TcpStream::connect(server.addr()).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        pool.push(stream);
    }
    eventually("the pool is on the first loop", || {
        stats.connections_per_loop() == [8, 0]
    })
    .await;

    let pool: Vec<_> = pool.into_iter().map(Pipeline::start).collect();
    eventually("half the pool moves to the activated loop", || {
        stats.connections_per_loop() == [4, 4]
    })
    .await;
    assert_eq!(stats.snapshot().migrations, 4);

    for client in &pool {
        client.lighten();
    }
    eventually(
        "the second loop is deactivated and its clients move back",
        || stats.snapshot().active_event_loops == 1 && stats.connections_per_loop() == [8, 0],
    )
    .await;
    assert_eq!(stats.snapshot().migrations, 8);
    // Each moved out and back at most once (the move back may follow its last line).
    for client in pool {
        let (served_by, _) = client.finish().await;
        assert_eq!(served_by.first().map(String::as_str), Some("event-loop-0"));
        assert!(changes(&served_by) <= 2, "{served_by:?}");
    }
}

/// One connection pipelining `spin` lines on the first loop, beside an idle one that
/// makes it more than that loop's share once a second loop is activated: it moves in the
/// middle of its pipeline, and every reply comes, in order.
async fn a_connection_moves_mid_pipeline<S>(busy: S, stats: &line_server::ServerStats)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    eventually("both on the first loop", || {
        stats.connections_per_loop() == [2, 0]
    })
    .await;
    let pipeline = Pipeline::start(busy);
    eventually(
        "the busy connection moves, then goes on for a while",
        || {
            let served_by = pipeline.loops();
            let moved_at = served_by.iter().position(|l| l == "event-loop-1");
            moved_at.is_some_and(|at| served_by.len() > at + WINDOW * CHUNK)
        },
    )
    .await;
    let (served_by, _) = pipeline.finish().await;
    assert_eq!(served_by.first().map(String::as_str), Some("event-loop-0"));
    // It may move back once its load falls: the loop left is idle then.
    assert!(stats.snapshot().migrations >= 1);
}

#[tokio::test]
async fn a_connection_moved_mid_pipeline_keeps_every_reply_in_order() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = start(Spinner, loops(2));
    let stats = server.stats().await;
    let _idle = TcpStream::connect(server.addr()).await.expect("connect");
    let busy = TcpStream::connect(server.addr()).await.expect("connect");
    a_connection_moves_mid_pipeline(busy, &stats).await;
}

#[tokio::test]
async fn a_tls_connection_moved_mid_pipeline_keeps_every_reply_in_order() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let pki = pki();
    let config = ServerConfig {
        event_loops: NonZeroUsize::new(2),
        ..tls_config(&pki, false)
    };
    let server = start(Spinner, config);
    let stats = server.stats().await;
    let _idle = connect_tls(server.addr(), &pki, None).await.expect("TLS");
    let busy = connect_tls(server.addr(), &pki, None).await.expect("TLS");
    a_connection_moves_mid_pipeline(busy, &stats).await;
}

#[tokio::test]
async fn a_graceful_shutdown_racing_the_moves_answers_every_line_and_closes_every_connection() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = start(Spinner, loops(2));
    let stats = server.stats().await;
    let mut pool = Vec::new();
    for _ in 0..8 {
        let stream = TcpStream::connect(server.addr()).await.expect("connect");
        pool.push(Pipeline::start(stream));
    }
    eventually("connections begin to move", || {
        stats.snapshot().migrations > 0
    })
    .await;
    // Every line is sent before the shutdown begins, so every one is owed a reply; up to
    // a window of them each are still unanswered, and moves still under way.
    for client in &mut pool {
        client.stop_writing().await;
    }
    server.begin_shutdown();
    for client in pool {
        let (_, mut read) = client.finish().await;
        let mut rest = String::new();
        let got = timeout(PATIENCE, read.read_line(&mut rest)).await;
        assert_eq!(got.expect("closed in time").expect("closed, not reset"), 0);
    }
    server.returned().await.expect("serve returns Ok");
}
