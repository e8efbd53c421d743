//! A session's own lines (`Session::poll_push`): sent while the connection waits for input,
//! never between a request and its reply; a listening session outlives the idle timeout.

pub mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use common::start;
use line_server::{Flow, Protocol, ServerConfig, Session};

/// Lines for the clients, put by the test; `BYE` closes the connection after it.
#[derive(Default)]
struct Mailbox {
    lines: Vec<Vec<u8>>,
    waker: Option<Waker>,
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
        // A slow request: a push that came meanwhile must wait for its reply.
        tokio::time::sleep(Duration::from_millis(50)).await;
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
