//! A client over a real loopback socket whose every wait has a deadline, so a test never
//! hangs on a socket; it panics with the bytes it got when a reply is not the one expected.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::PATIENCE;

/// One connection to the server under test.
pub struct Client {
    stream: TcpStream,
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = within(PATIENCE, TcpStream::connect(addr)).await?;
        Ok(Client { stream })
    }

    /// The socket itself, for tests that read and write on their own.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes all of `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) {
        within(PATIENCE, self.stream.write_all(bytes))
            .await
            .unwrap_or_else(|e| panic!("send {:?}: {e}", show(bytes)));
    }

    /// Reads exactly `n` bytes.
    pub async fn read_exactly(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let mut got = 0;
        while got < n {
            match within(PATIENCE, self.stream.read(&mut buf[got..])).await {
                Ok(0) => panic!("EOF after {got} of {n} bytes; got {:?}", show(&buf[..got])),
                Ok(k) => got += k,
                Err(e) => panic!(
                    "reading {n} bytes: {e} after {got} bytes {:?}",
                    show(&buf[..got])
                ),
            }
        }
        buf
    }

    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub async fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exactly(expected.len()).await;
        assert_eq!(show(&got), show(expected), "unexpected reply bytes");
    }

    /// Sends `line` and expects it back byte for byte.
    pub async fn echo(&mut self, line: &[u8]) {
        self.send(line).await;
        self.expect(line).await;
    }

    /// Reads up to and including the next `\n`.
    pub async fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        loop {
            match within(PATIENCE, self.stream.read_u8()).await {
                Ok(byte) => {
                    line.push(byte);
                    if byte == b'\n' {
                        return line;
                    }
                }
                Err(e) => panic!("reading a line: {e} after {:?}", show(&line)),
            }
        }
    }

    /// Everything the server sends until it closes the connection.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        within(PATIENCE, self.stream.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|e| panic!("reading to the end: {e} after {:?}", show(&rest)));
        rest
    }

    /// Expects a clean end of stream (FIN) with no further bytes.
    pub async fn expect_eof(&mut self) {
        let mut buf = [0u8; 256];
        match within(PATIENCE, self.stream.read(&mut buf)).await {
            Ok(0) => {}
            Ok(n) => panic!("expected EOF, got {:?}", show(&buf[..n])),
            Err(e) => panic!("expected EOF, got error: {e}"),
        }
    }

    /// Expects the server to have closed the connection: EOF, or a reset when the server
    /// had to discard bytes this client was still sending. No further bytes.
    pub async fn expect_closed(&mut self) {
        let mut buf = [0u8; 256];
        match within(PATIENCE, self.stream.read(&mut buf)).await {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!("expected the connection closed, got {:?}", show(&buf[..n])),
            Err(e) => panic!("expected the connection closed, got error: {e}"),
        }
    }

    /// Asserts that nothing arrives within `wait` (a negative check: with a correct server
    /// it cannot fail however slow the machine is).
    pub async fn expect_nothing_for(&mut self, wait: Duration) {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(wait, self.stream.peek(&mut buf)).await {
            Err(_elapsed) => {}
            Ok(Ok(0)) => panic!("expected nothing, got EOF"),
            Ok(Ok(n)) => panic!("expected nothing, got {:?}", show(&buf[..n])),
            Ok(Err(e)) => panic!("expected nothing, got error: {e}"),
        }
    }

    /// Whether bytes (or EOF) are waiting to be read right now. Asks the socket itself:
    /// the runtime may not have seen them yet.
    pub fn has_pending_input(&self) -> bool {
        let mut buf = [MaybeUninit::<u8>::uninit(); 1];
        // The socket is non-blocking (tokio made it so): this never waits.
        match socket2::SockRef::from(&self.stream).peek(&mut buf) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("peek: {e}"),
        }
    }

    /// Half-closes: no more bytes from this client, replies can still arrive.
    pub async fn shutdown_write(&mut self) {
        within(PATIENCE, self.stream.shutdown())
            .await
            .expect("shutdown(SHUT_WR)");
    }

    /// Closes abruptly: `SO_LINGER` 0 makes the close send an RST instead of a FIN.
    pub fn reset(self) {
        self.stream.set_zero_linger().expect("SO_LINGER 0");
        drop(self);
    }
}

/// `io` within `limit`; a timeout is an error of kind `TimedOut`.
async fn within<T>(
    limit: Duration,
    io: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(limit, io)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
}

/// Bytes shown as an escaped string in assertion messages.
pub fn show(bytes: &[u8]) -> String {
    let shown: String = bytes.escape_ascii().to_string();
    if shown.len() > 300 {
        format!("{}... ({} bytes)", &shown[..300], bytes.len())
    } else {
        shown
    }
}
