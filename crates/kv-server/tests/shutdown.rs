//! Graceful shutdown (SPEC §5): SIGINT/SIGTERM stop accepting, answer what was received,
//! close idle clients, exit 0 within the shutdown timeout; a second signal exits at once.

mod common;

use std::io;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::{TestServer, PATIENCE};

fn debug_server(extra: &[&str]) -> TestServer {
    TestServer::builder()
        .args(["--mode", "echo", "--debug-commands"])
        .args(extra)
        .start()
}

#[test]
fn sigterm_closes_an_idle_client_at_once_and_exits_zero() {
    // A long shutdown timeout: only closing idle clients at once gets the EOF in time.
    let mut server = TestServer::echo(&["--shutdown-timeout-secs", "60"]);
    let mut idle = server.connect();
    idle.echo(b"hello\r\n");
    server.signal(libc::SIGTERM);
    idle.expect_eof();
    let status = server.expect_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn sigint_shuts_down_gracefully_too() {
    let mut server = TestServer::echo(&["--shutdown-timeout-secs", "60"]);
    let mut idle = server.connect();
    idle.echo(b"hello\r\n");
    server.signal(libc::SIGINT);
    idle.expect_eof();
    let status = server.expect_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn sigterm_with_no_clients_exits_zero() {
    let mut server = TestServer::echo(&[]);
    server.signal(libc::SIGTERM);
    let status = server.expect_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn a_request_in_flight_is_answered_before_the_process_exits_zero() {
    let mut server = debug_server(&[]);
    let mut busy = server.connect();
    busy.echo(b"sync\r\n");
    busy.send(b"DEBUG SLEEP 2000\r\n");
    // Give the server a moment to take the request off the socket before the signal.
    thread::sleep(Duration::from_millis(500));
    server.signal(libc::SIGTERM);
    server.wait_for_log("no longer accepting", PATIENCE);
    busy.expect(b"OK\r\n");
    busy.expect_eof();
    let status = server.expect_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn a_line_queued_behind_a_busy_command_is_answered_before_the_process_exits_zero() {
    for _ in 0..3 {
        let mut server = TestServer::start(&["--debug-commands"]);
        let mut c = server.connect();
        c.send(b"DEBUG SLEEP 250\r\n");
        // The PING arrives on its own while the connection is busy sleeping.
        std::thread::sleep(Duration::from_millis(50));
        c.send(b"PING\r\n");
        server.signal(libc::SIGTERM);
        c.expect(b"OK\r\nPONG\r\n");
        c.expect_eof();
        assert!(server.expect_exit(PATIENCE).success());
    }
}

#[test]
fn new_connections_are_refused_once_shutdown_has_begun() {
    let mut server = debug_server(&[]);
    // A busy client keeps the process alive through the shutdown.
    let mut busy = server.connect();
    busy.send(b"DEBUG SLEEP 3000\r\n");
    thread::sleep(Duration::from_millis(500));
    server.signal(libc::SIGTERM);
    server.wait_for_log("no longer accepting", PATIENCE);

    match TcpStream::connect_timeout(&server.addr(), PATIENCE) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("a new client was accepted during the shutdown"),
    }
    busy.expect(b"OK\r\n");
    busy.expect_eof();
    let status = server.expect_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn busy_connections_are_cut_at_the_shutdown_timeout_with_a_warning_saying_how_many() {
    let mut server = debug_server(&["--shutdown-timeout-secs", "1"]);
    let mut sleepers: Vec<_> = (0..2).map(|_| server.connect()).collect();
    for sleeper in &mut sleepers {
        sleeper.echo(b"sync\r\n");
        sleeper.send(b"DEBUG SLEEP 30000\r\n");
    }
    let mut idle = server.connect();
    idle.echo(b"idle\r\n");
    thread::sleep(Duration::from_millis(500));

    server.signal(libc::SIGTERM);
    idle.expect_eof();
    // Far less than the 30 s sleep: the 1 s timeout cut it short.
    let status = server.expect_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status}");
    let warning = server.wait_for_log("cutting", PATIENCE);
    assert_eq!(common::log_level(&warning), Some("WARN"), "{warning}");
    assert!(
        warning.contains(" 2 busy connection"),
        "the warning should say 2 connections were cut: {warning}"
    );
    for sleeper in &mut sleepers {
        sleeper.expect_closed();
    }
}

#[test]
fn a_second_signal_during_a_long_shutdown_exits_at_once_with_a_non_zero_status() {
    let mut server = debug_server(&["--shutdown-timeout-secs", "60"]);
    let mut busy = server.connect();
    busy.echo(b"sync\r\n");
    busy.send(b"DEBUG SLEEP 60000\r\n");
    thread::sleep(Duration::from_millis(500));

    server.signal(libc::SIGTERM);
    server.wait_for_log("no longer accepting", PATIENCE);
    assert!(
        server.is_running(),
        "the first signal should wait for the busy client"
    );
    server.signal(libc::SIGTERM);
    let status = server.expect_exit(PATIENCE);
    assert!(
        !status.success(),
        "a forced exit must not report success: {status}"
    );
    busy.expect_closed();
}

#[test]
fn sigint_then_sigterm_also_forces_the_exit() {
    let mut server = debug_server(&["--shutdown-timeout-secs", "60"]);
    let mut busy = server.connect();
    busy.echo(b"sync\r\n");
    busy.send(b"DEBUG SLEEP 60000\r\n");
    thread::sleep(Duration::from_millis(500));

    server.signal(libc::SIGINT);
    server.wait_for_log("no longer accepting", PATIENCE);
    server.signal(libc::SIGTERM);
    let status = server.expect_exit(PATIENCE);
    assert!(!status.success(), "{status}");
}
