//! A blocking client over a real loopback socket, with read and write timeouts, so a test
//! never hangs on a socket; it panics with the bytes it got when a reply is not the one
//! expected.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;

use super::PATIENCE;

/// A blocking client with read and write timeouts, so a test never hangs on a socket.
pub struct Client {
    stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, PATIENCE)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_write_timeout(Some(PATIENCE))?;
        Ok(Client { stream })
    }

    /// The client's own address: the `peer` the server logs.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send {:?}: {e}", show(bytes)));
    }

    /// Reads exactly `n` bytes.
    pub fn read_exactly(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let mut got = 0;
        while got < n {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => panic!("EOF after {got} of {n} bytes; got {:?}", show(&buf[..got])),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "reading {n} bytes: {e} after {got} bytes {:?}",
                    show(&buf[..got])
                ),
            }
        }
        buf
    }

    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exactly(expected.len());
        assert_eq!(show(&got), show(expected), "unexpected reply bytes");
    }

    /// Sends `line` and expects it back byte for byte.
    pub fn echo(&mut self, line: &[u8]) {
        self.send(line);
        self.expect(line);
    }

    /// Reads up to and including the next `\n`.
    pub fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => panic!("EOF in the middle of a line: {:?}", show(&line)),
                Ok(_) => {
                    line.push(byte[0]);
                    if byte[0] == b'\n' {
                        return line;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("reading a line: {e} after {:?}", show(&line)),
            }
        }
    }

    /// The rest of a report (`INFO`'s) after its request was sent: its lines up to `OK`.
    pub fn read_report(&mut self) -> String {
        let mut text = String::new();
        loop {
            let line = String::from_utf8(self.read_line()).expect("a report is text");
            if line == "OK\r\n" {
                return text;
            }
            text.push_str(&line);
        }
    }

    /// Expects a clean end of stream (FIN) with no further bytes.
    pub fn expect_eof(&mut self) {
        let mut buf = [0u8; 256];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("expected EOF, got {:?}", show(&buf[..n])),
            Err(e) => panic!("expected EOF, got error: {e}"),
        }
    }

    /// Expects the server to have closed the connection: EOF, or a reset when the server
    /// had to discard bytes this client was still sending. No further bytes.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 256];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!("expected the connection closed, got {:?}", show(&buf[..n])),
            Err(e) => panic!("expected the connection closed, got error: {e}"),
        }
    }

    /// Half-closes: no more bytes from this client, replies can still arrive.
    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// Closes abruptly: `SO_LINGER` 0 makes the close send an RST instead of a FIN.
    pub fn reset(self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a descriptor we own, with a correctly sized `linger`.
        let rc = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
        drop(self);
    }
}

/// Bytes shown as an escaped string in assertion messages.
fn show(bytes: &[u8]) -> String {
    let shown: String = bytes.escape_ascii().to_string();
    if shown.len() > 300 {
        format!("{}... ({} bytes)", &shown[..300], bytes.len())
    } else {
        shown
    }
}

/// Sends one request and expects its exact reply.
pub fn ask(client: &mut Client, request: &[u8], reply: &[u8]) {
    client.send(request);
    client.expect(reply);
}
