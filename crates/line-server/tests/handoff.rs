//! A stream written from a thread of its own (`Session::handoff`): over plain TCP the
//! session's job writes into the socket itself, off the event loop, and the connection is
//! back to requests after it; a byte from the client, a client that stops reading (idle
//! timeout) or the shutdown deadline end the job; over TLS the same stream is pushed.

pub mod common;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use common::tls::{connect_tls, pki, tls_config};
use common::{eventually, start, PATIENCE};
use line_server::{Flow, Handoff, Protocol, ServerConfig, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// What the jobs did: the thread each ran on, and how each ended.
#[derive(Default)]
struct Record {
    threads: Vec<String>,
    ended: Vec<io::Result<()>>,
    handoffs_asked_with_a_stream: usize,
}

/// `stream N` is answered with N bytes of [`pattern`], written by a hand-off (plain TCP)
/// or pushed (TLS); any other line is echoed as `re: line`.
#[derive(Clone, Default)]
struct Streamer {
    record: Arc<Mutex<Record>>,
    /// The stream asked for and not yet begun.
    owed: Option<usize>,
}

impl Streamer {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().expect("not poisoned")
    }

    /// How the jobs ended so far, as error kinds.
    fn endings(&self) -> Vec<Option<io::ErrorKind>> {
        let record = self.record();
        record
            .ended
            .iter()
            .map(|r| r.as_ref().err().map(io::Error::kind))
            .collect()
    }
}

/// The first `len` bytes of every stream (byte `i` is `i % 251`): a client can tell a
/// byte out of place.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Writes [`pattern`]`(len)` into `out` a block at a time (a block is whole cycles of the
/// pattern, so blocks follow one another seamlessly).
fn write_pattern(out: &mut dyn Write, len: usize) -> io::Result<()> {
    let block = pattern(251 * 256);
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        out.write_all(&block[..n])?;
        left -= n;
    }
    Ok(())
}

impl Protocol for Streamer {
    type Session = Streamer;

    fn open_session(&self, _: SocketAddr) -> Streamer {
        self.clone()
    }
}

impl Session for Streamer {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        let asked = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.strip_prefix("stream "));
        match asked.and_then(|n| n.trim().parse().ok()) {
            Some(len) => self.owed = Some(len),
            None => {
                out.extend_from_slice(b"re: ");
                out.extend_from_slice(line);
            }
        }
        Flow::Continue
    }

    fn handoff(&mut self) -> Option<Handoff> {
        let len = self.owed.take()?;
        self.record().handoffs_asked_with_a_stream += 1;
        let record = Arc::clone(&self.record);
        Some(Box::new(move |out: &mut dyn Write| {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            let written = write_pattern(out, len);
            let mut record = record.lock().expect("not poisoned");
            record.threads.push(name);
            let ended = written
                .as_ref()
                .map_err(|e| io::Error::new(e.kind(), e.to_string()));
            record.ended.push(ended.map(|_| ()));
            written
        }))
    }

    fn poll_push(&mut self, out: Option<&mut BytesMut>, _: &mut Context<'_>) -> Poll<Flow> {
        match (out, self.owed.take()) {
            (Some(out), Some(len)) => {
                out.extend_from_slice(&pattern(len));
                Poll::Ready(Flow::Continue)
            }
            (_, owed) => {
                self.owed = owed;
                Poll::Pending
            }
        }
    }
}

/// More than loopback's socket buffers hold (a few MiB each way), so the job waits for
/// room on the way.
const LARGE: usize = 16 << 20;
/// Far more than the sockets hold: a client that stops reading stops the job mid-way.
const ENDLESS: &[u8] = b"stream 68719476736\n";

#[tokio::test]
async fn a_stream_arrives_whole_from_a_thread_of_its_own_then_requests_go_on() {
    let streamer = Streamer::default();
    let server = start(streamer.clone(), ServerConfig::default());
    let mut client = server.connect().await;
    client.send(b"stream 16777216\n").await;
    let got = client.read_exactly(LARGE).await;
    assert!(got == pattern(LARGE), "the stream arrived damaged");
    client.send(b"after\n").await;
    client.expect(b"re: after\n").await;
    assert_eq!(streamer.record().threads, ["line-handoff"]);
    assert_eq!(streamer.endings(), [None]);
    let stats = server.stats().await;
    let sent = || stats.snapshot().net_output_bytes >= LARGE as u64;
    eventually("the stream counted as bytes sent", sent).await;
}

#[tokio::test]
async fn a_byte_from_the_client_during_the_stream_ends_it_and_the_connection() {
    let streamer = Streamer::default();
    let server = start(streamer.clone(), ServerConfig::default());
    let mut client = server.connect().await;
    client.send(ENDLESS).await;
    client.read_exactly(1 << 20).await;
    client.send(b"too soon\n").await;
    let ended = |kinds: &[Option<io::ErrorKind>]| kinds == [Some(io::ErrorKind::ConnectionAborted)];
    eventually("the job ended by the client's line", || {
        ended(&streamer.endings())
    })
    .await;
    // What the sockets held still comes, then the end: never a reply to the line.
    let mut rest = Vec::new();
    // (A reset, for the line the server did not read, may cut that short.)
    let read = timeout(PATIENCE, client.stream().read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was not closed");
    assert!(
        !rest.windows(3).any(|w| w == b"re:"),
        "the line was answered"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_at_the_idle_timeout() {
    let streamer = Streamer::default();
    let config = ServerConfig {
        // Long enough that a loaded machine cannot close the connection before its
        // request arrives.
        idle_timeout: Some(Duration::from_secs(1)),
        ..ServerConfig::default()
    };
    let server = start(streamer.clone(), config);
    let mut client = server.connect().await;
    client.send(ENDLESS).await;
    let ended = |kinds: &[Option<io::ErrorKind>]| kinds == [Some(io::ErrorKind::TimedOut)];
    eventually("the job cut at the idle timeout", || {
        ended(&streamer.endings())
    })
    .await;
    let mut rest = Vec::new();
    let read = timeout(PATIENCE, client.stream().read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was not closed");
}

#[tokio::test]
async fn the_shutdown_deadline_ends_a_stream_whose_client_does_not_read() {
    let streamer = Streamer::default();
    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = start(streamer.clone(), config);
    let mut client = server.connect().await;
    client.send(ENDLESS).await;
    eventually("the job began", || {
        streamer.record().handoffs_asked_with_a_stream == 1
    })
    .await;
    server.begin_shutdown();
    let returned = timeout(PATIENCE, server.returned()).await;
    assert!(
        matches!(returned, Ok(Ok(()))),
        "serve returned: {returned:?}"
    );
    // The connection's socket was shut down under the job, whose writes then failed.
    eventually("the job ended", || streamer.endings().len() == 1).await;
    assert!(streamer.endings()[0].is_some(), "the job wrote it all");
    drop(client);
}

#[tokio::test]
async fn over_tls_the_stream_is_pushed_by_the_connection() {
    let pki = pki();
    let streamer = Streamer::default();
    let server = start(streamer.clone(), tls_config(&pki, false));
    let mut client = connect_tls(server.addr(), &pki, None).await.expect("TLS");
    client.write_all(b"stream 1048576\n").await.expect("send");
    let mut got = vec![0; 1 << 20];
    let read = timeout(PATIENCE, client.read_exact(&mut got)).await;
    assert!(matches!(read, Ok(Ok(_))), "reading the stream: {read:?}");
    assert!(got == pattern(1 << 20), "the stream arrived damaged");
    client.write_all(b"after\n").await.expect("send");
    let mut reply = [0; 10];
    let read = timeout(PATIENCE, client.read_exact(&mut reply)).await;
    assert!(matches!(read, Ok(Ok(_))), "reading the reply: {read:?}");
    assert_eq!(&reply, b"re: after\n");
    assert_eq!(streamer.record().handoffs_asked_with_a_stream, 0);
}
