//! A minimal HTTP/1.1 client for the metrics port: one request per connection, the reply
//! read to the end (the server closes after one request). Blocking, with timeouts.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{TestServer, PATIENCE};

/// Where `server` (started with `--metrics-port 0`) serves its metrics, from its log line
/// `Serving metrics on port N`.
pub fn metrics_addr(server: &TestServer) -> SocketAddr {
    let line = server.wait_for_log("Serving metrics on port", PATIENCE);
    let port = line
        .rsplit(' ')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A reply: its status code and body.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// `method path` on `addr`; panics if no complete reply comes.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> HttpReply {
    let mut stream = open(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("send {method} {path}: {e}"));
    let reply = read_to_end(&mut stream).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    parse(&reply).unwrap_or_else(|| panic!("{method} {path}: not an HTTP reply: {reply:?}"))
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> HttpReply {
    request(addr, "GET", path)
}

/// A connection with read and write timeouts.
pub fn open(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    Ok(stream)
}

/// Everything the server sends until it closes (a reset after a reply counts as a close).
pub fn read_to_end(stream: &mut TcpStream) -> io::Result<String> {
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !bytes.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Status line, head and body of `reply`.
pub fn parse(reply: &str) -> Option<HttpReply> {
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(HttpReply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}
