//! The lines that arrived together are one batch: a session hears when the batch ends, so
//! it can finish deferred work (queued writes) and still answer in request order.

pub mod common;

use std::net::SocketAddr;

use bytes::BytesMut;
use common::start;
use line_server::{Flow, Protocol, ServerConfig, Session};

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

#[tokio::test]
async fn lines_sent_in_one_write_end_in_one_batch() {
    let server = start(Counting, ServerConfig::default());
    let mut client = server.connect().await;
    client.send(b"a\nb\nc\n").await;
    client.expect(b"3\n").await;
    client.send(b"d\n").await;
    client.expect(b"1\n").await;
}

#[tokio::test]
async fn a_batch_ends_before_the_line_too_long_error() {
    let config = ServerConfig {
        max_line_bytes: 16,
        ..ServerConfig::default()
    };
    let server = start(Counting, config);
    let mut client = server.connect().await;
    client.send(b"a\nb\n").await;
    client.send(&[b'x'; 64]).await;
    // Whether or not "a" and "b" arrive in the same read as the long line.
    assert_eq!(client.read_to_end().await, b"2\nERROR line too long\r\n");
}
