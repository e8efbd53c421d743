//! Signals (docs/OPERATIONS.md, "Behaviour under failure"): SIGINT/SIGTERM start a graceful shutdown
//! that ends in exit status 0, also when busy connections had to be cut at
//! `--shutdown-timeout-secs` (with a warning saying how many); a second signal exits at
//! once, non-zero. The shutdown's order (the listener first, idle clients at once, requests
//! in flight answered) is tested in-process in `crates/line-server/tests/shutdown*.rs`.

pub mod common;

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
