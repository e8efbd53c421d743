//! `adopt`: serving on a listening socket made elsewhere (a service manager's, by socket
//! activation), and refusing, with what it is instead, a socket that is not one.

pub mod common;

use std::os::fd::OwnedFd;

use common::{start_on, PATIENCE};
use line_server::{adopt, Echo, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

#[tokio::test]
async fn an_adopted_listening_socket_is_served_on_its_own_port() {
    let made_elsewhere = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = made_elsewhere.local_addr().expect("address");
    let listener = adopt(OwnedFd::from(made_elsewhere)).expect("a listening TCP socket");
    let server = start_on(listener, Echo, ServerConfig::default());
    assert_eq!(server.addr(), addr);
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"hello\n").await.expect("send");
    let mut got = [0; 6];
    timeout(PATIENCE, client.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("echo");
    assert_eq!(&got, b"hello\n");
    server.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_socket_that_is_not_a_listening_tcp_socket_is_refused_saying_what_it_is() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let unix = tempfile_free_unix_listener();
    let bound_not_listening =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let file = std::fs::File::open("/dev/null").expect("a file");
    let cases: [(OwnedFd, &str); 4] = [
        (udp.into(), "datagram"),
        (unix.into(), "not a TCP socket"),
        (bound_not_listening.into(), "not listening"),
        (file.into(), "not a socket"),
    ];
    for (fd, says) in cases {
        let error = adopt(fd).expect_err("refused");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
        assert!(
            error.to_string().contains(says),
            "{error} should say {says:?}"
        );
    }
}

/// A listening Unix socket in the abstract namespace (no file to clean up).
fn tempfile_free_unix_listener() -> std::os::unix::net::UnixListener {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("line-server-adopt-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).expect("name");
    std::os::unix::net::UnixListener::bind_addr(&addr).expect("bind")
}
