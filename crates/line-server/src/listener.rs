//! Binding the listening socket.

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
