//! Socket activation (SPEC §15, sd_listen_fds(3)): given a listening socket as descriptor
//! 3 with `LISTEN_PID`/`LISTEN_FDS`, the server serves it instead of binding one, logs its
//! port as usual, and keeps it across acceptor restarts; a descriptor that is not a
//! listening TCP socket is refused at start. The tests pass the socket themselves (through
//! a shell that sets `LISTEN_PID` to its own pid and execs the server), and through
//! `systemd-socket-activate` where it is installed.

pub mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::process::Command;

use common::disk::temp_dir;
use common::{ask, Client, TestServer, PATIENCE};

fn loopback_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("address").port();
    (listener, port)
}

#[test]
fn a_socket_passed_as_descriptor_3_is_served_and_its_port_logged() {
    let (listener, port) = loopback_listener();
    // `--port 0` too: the passed socket wins over any port the flags name.
    let server = TestServer::builder().socket_activated(listener).start();
    assert_eq!(
        server.port(),
        port,
        "the port line names the passed socket's port"
    );
    server.wait_for_log("socket activation: serving 127.0.0.1:", PATIENCE);
    let mut client = server.connect();
    ask(&mut client, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut client, b"PING\r\n", b"PONG\r\n");
    server.stop();
    // The listener closed with the server: the test's own copy is gone with the builder.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        Client::connect(addr).is_err(),
        "nothing listens once it exited"
    );
}

#[test]
fn an_acceptor_restart_keeps_serving_the_passed_socket() {
    let (listener, port) = loopback_listener();
    let server = TestServer::builder()
        .args(["--debug-commands"])
        .socket_activated(listener)
        .start();
    let mut trigger = server.connect();
    trigger.send(b"DEBUG ACCEPTOR-PANIC\r\n");
    trigger.expect(b"OK\r\n");
    server.wait_for_log("restarting acceptor", PATIENCE);
    assert_eq!(server.port(), port);
    ask(&mut server.connect(), b"PING\r\n", b"PONG\r\n");
    ask(&mut trigger, b"PING\r\n", b"PONG\r\n");
    server.stop();
}

#[test]
fn a_passed_descriptor_that_is_not_a_listening_tcp_socket_is_refused_at_start() {
    let dir = temp_dir("activation");
    let unix = UnixListener::bind(dir.path().join("sock")).expect("a Unix socket");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let (listener, _) = loopback_listener();
    let connected = std::net::TcpStream::connect(listener.local_addr().expect("address"))
        .expect("a connected TCP socket");
    let runs = [
        (
            TestServer::builder().socket_activated(unix),
            "not a TCP socket",
        ),
        (
            TestServer::builder().socket_activated(udp),
            "not a TCP socket",
        ),
        (
            TestServer::builder().socket_activated(connected),
            "not listening",
        ),
    ];
    for (builder, says) in runs {
        let run = builder.run_to_exit(PATIENCE);
        assert!(!run.status.success(), "{}", run.stderr);
        assert!(run.stderr.contains("LISTEN_FDS"), "{}", run.stderr);
        assert!(
            run.stderr.contains(says),
            "should say {says:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("Accepting connections"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn more_than_one_passed_socket_is_refused_naming_the_count() {
    let (first, _) = loopback_listener();
    let (second, _) = loopback_listener();
    let run = TestServer::builder()
        .sockets_activated(vec![first.into(), second.into()])
        .run_to_exit(PATIENCE);
    assert!(!run.status.success(), "{}", run.stderr);
    assert!(run.stderr.contains("passed 2 sockets"), "{}", run.stderr);
}

#[test]
fn listen_variables_meant_for_another_process_are_ignored() {
    let server = TestServer::builder()
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .start();
    ask(&mut server.connect(), b"PING\r\n", b"PONG\r\n");
    assert!(server.logs_containing("socket activation").is_empty());
    server.stop();
}

/// systemd's own tool: it listens, and on the first connection execs the server (same pid)
/// with the socket as descriptor 3 and the variables set.
#[test]
fn systemd_socket_activate_starts_it_on_its_socket() {
    if Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: systemd-socket-activate is not installed (Debian package systemd)");
        return;
    }
    let port = {
        let (listener, port) = loopback_listener();
        drop(listener);
        port
    };
    let listen = format!("127.0.0.1:{port}");
    let mut server = TestServer::builder()
        .wrapped_in(["systemd-socket-activate", "--listen", &listen])
        .spawn();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The tool starts the server when the first client connects: retry until it listens.
    let mut first = None;
    let deadline = std::time::Instant::now() + PATIENCE;
    while first.is_none() && std::time::Instant::now() < deadline {
        first = Client::connect(addr).ok();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut first = first.expect("systemd-socket-activate listens");
    ask(&mut first, b"PING\r\n", b"PONG\r\n");
    server.wait_for_log(&format!("Accepting connections on port {port}"), PATIENCE);
    ask(
        &mut Client::connect(addr).expect("connect"),
        b"PING\r\n",
        b"PONG\r\n",
    );
    server.signal(libc::SIGTERM);
    let status = server.expect_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status}");
}
