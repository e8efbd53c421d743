//! The listening socket: bound here, or adopted from a service manager.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Pending-connection queue length. tokio's `TcpListener::bind` uses 128, which drops
/// SYNs (and stalls clients for a second) when a thousand clients connect at once. The
/// kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with `SO_REUSEADDR` (like the seed's `reuseaddr: true`, so a restarted
/// server can bind while old connections sit in TIME_WAIT) and a deep backlog.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves on a listening socket made elsewhere, such as the one a service manager passes
/// by socket activation (sd_listen_fds(3): systemd's `.socket` units,
/// `systemd-socket-activate`). Takes ownership of `socket`, checks that it is a TCP socket
/// (IPv4 or IPv6) that listens, and makes it non-blocking. Its address, backlog and options
/// are whatever its maker chose.
///
/// Must be called within a tokio runtime (the listener is registered with its reactor).
///
/// Errors (`InvalidInput`, the message saying what the socket is instead): not a socket,
/// not TCP (a UDP or Unix socket), or not listening (a connected socket, as a socket unit
/// with `Accept=yes` passes); or the OS refused to query or change it.
pub fn adopt(socket: std::os::fd::OwnedFd) -> io::Result<TcpListener> {
    let socket = socket2::Socket::from(socket);
    let refuse = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
    match socket.domain() {
        Ok(socket2::Domain::IPV4 | socket2::Domain::IPV6) => {}
        Ok(domain) => return refuse(format!("not a TCP socket (its family is {domain:?})")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            return refuse("not a socket".to_string())
        }
        Err(e) => return Err(e),
    }
    if socket.r#type()? != socket2::Type::STREAM {
        return refuse("not a TCP socket (a datagram socket: UDP)".to_string());
    }
    if !socket.is_listener()? {
        return refuse(
            "a TCP socket that is not listening (a socket unit needs Accept=no)".to_string(),
        );
    }
    socket.set_nonblocking(true)?;
    TcpListener::from_std(std::net::TcpListener::from(socket))
}
