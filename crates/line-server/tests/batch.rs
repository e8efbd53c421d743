//! The lines that arrived together are one batch: a session hears when the batch ends, so
//! it can finish deferred work (queued writes) and still answer in request order.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use line_server::{bind, serve, Flow, Protocol, ServerConfig, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Answers nothing per line; at the end of each batch, how many lines it held.
struct Counting;

struct CountingSession {
    lines: usize,
}

impl Protocol for Counting {
    type Session = CountingSession;

    fn open_session(&self, _peer: SocketAddr) -> CountingSession {
        CountingSession { lines: 0 }
    }
}

impl Session for CountingSession {
    async fn on_line(&mut self, _line: &[u8], _out: &mut BytesMut) -> Flow {
        self.lines += 1;
        Flow::Continue
    }

    async fn on_batch_end(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(format!("{}\n", self.lines).as_bytes());
        self.lines = 0;
    }
}

async fn counting_server(config: ServerConfig) -> (SocketAddr, CancellationToken) {
    let listener = bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move { serve(listener, &config, Counting, token).await });
    (addr, shutdown)
}

async fn read_exactly(client: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut reply = vec![0; n];
    tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut reply))
        .await
        .expect("a reply in time")
        .expect("read");
    reply
}

#[tokio::test]
async fn lines_sent_in_one_write_end_in_one_batch() {
    let (addr, shutdown) = counting_server(ServerConfig::default()).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"a\nb\nc\n").await.expect("write");
    assert_eq!(read_exactly(&mut client, 2).await, b"3\n");
    client.write_all(b"d\n").await.expect("write");
    assert_eq!(read_exactly(&mut client, 2).await, b"1\n");
    shutdown.cancel();
}

#[tokio::test]
async fn a_batch_ends_before_the_line_too_long_error() {
    let config = ServerConfig {
        max_line_bytes: 16,
        ..ServerConfig::default()
    };
    let (addr, shutdown) = counting_server(config).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"a\nb\n").await.expect("write");
    client.write_all(&[b'x'; 64]).await.expect("write");
    let mut replies = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut replies))
        .await
        .expect("closed in time")
        .expect("read");
    // Whether or not "a" and "b" arrive in the same read as the long line.
    assert_eq!(
        String::from_utf8_lossy(&replies),
        "2\nERROR line too long\r\n"
    );
    shutdown.cancel();
}
