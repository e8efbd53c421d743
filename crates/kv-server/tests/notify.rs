//! sd_notify(3) (SPEC §15, docs/SYSTEMD.md): with `NOTIFY_SOCKET` set, the server tells the
//! service manager `READY=1` once it accepts clients (after recovering a durable store),
//! `RELOADING=1` with `MONOTONIC_USEC=` then `READY=1` around a reload, `STOPPING=1` when a
//! graceful shutdown begins, and `STATUS=` lines in between. The test owns the socket.

pub mod common;

use common::disk::{arg, temp_dir};
use common::notify_socket::{has, value, NotifySocket};
use common::{ask, TestServer, PATIENCE};

fn notified_server(socket: &NotifySocket, args: &[&str]) -> TestServer {
    TestServer::builder()
        .env("NOTIFY_SOCKET", socket.path())
        .args(args)
        .start()
}

/// The port a `STATUS=` line names (`Accepting connections on port N...`).
fn status_port(message: &str) -> Option<u16> {
    let status = value(message, "STATUS")?;
    let rest = status.split("Accepting connections on port ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn ready_comes_once_clients_are_served_then_reloading_ready_and_stopping_in_order() {
    let socket = NotifySocket::bind();
    let mut server = notified_server(&socket, &[]);
    let start = socket.until(PATIENCE, |m| has(m, "READY=1"));
    let ready = start.last().expect("READY=1");
    assert!(
        start[..start.len() - 1].iter().all(|m| !has(m, "READY=1")),
        "{start:?}"
    );
    // The status sent with READY=1 names the port the log line names: the port was bound.
    assert_eq!(status_port(ready), Some(server.port()), "{ready:?}");
    ask(&mut server.connect(), b"PING\r\n", b"PONG\r\n");

    server.signal(libc::SIGHUP);
    let reload = socket.until(PATIENCE, |m| has(m, "READY=1"));
    let reloading = reload
        .iter()
        .position(|m| has(m, "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 before READY=1: {reload:?}"));
    let usec = value(&reload[reloading], "MONOTONIC_USEC")
        .unwrap_or_else(|| panic!("MONOTONIC_USEC in the RELOADING=1 message: {reload:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|us| us > 0), "{usec:?}");
    assert!(reloading < reload.len() - 1, "READY=1 after RELOADING=1");

    server.signal(libc::SIGTERM);
    let stop = socket.until(PATIENCE, |m| has(m, "STOPPING=1"));
    assert!(
        stop.iter().all(|m| !has(m, "READY=1")),
        "nothing but status between: {stop:?}"
    );
    let status = server.expect_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn the_status_line_says_how_many_clients_are_connected() {
    let socket = NotifySocket::bind();
    let server = notified_server(&socket, &[]);
    socket.until(PATIENCE, |m| has(m, "READY=1"));
    let _clients: Vec<_> = (0..3)
        .map(|_| {
            let mut client = server.connect();
            ask(&mut client, b"PING\r\n", b"PONG\r\n");
            client
        })
        .collect();
    // Refreshed every few seconds, when it changed.
    socket.until(PATIENCE, |m| {
        value(m, "STATUS").is_some_and(|s| s.contains("3 client(s) connected"))
    });
    server.stop();
}

#[test]
fn in_durable_mode_ready_comes_after_recovery_with_the_data_served() {
    let dir = temp_dir("notify-durable");
    let data = ["--data-dir", arg(dir.path())];
    let first = TestServer::start(&data);
    let mut client = first.connect();
    ask(&mut client, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut client, b"PUT b k recovered\r\n", b"OK\r\n");
    first.stop();

    let socket = NotifySocket::bind();
    let server = notified_server(&socket, &data);
    let start = socket.until(PATIENCE, |m| has(m, "READY=1"));
    let recovering = start.iter().position(|m| {
        value(m, "STATUS").is_some_and(|s| s.contains("recovering the data directory"))
    });
    assert!(
        recovering.is_some_and(|at| at < start.len() - 1),
        "a recovery status before READY=1: {start:?}"
    );
    ask(
        &mut server.connect(),
        b"GET b k\r\n",
        b"recovered\r\nOK\r\n",
    );
    server.wait_for_log("keys loaded", PATIENCE);
    server.stop();
}

#[test]
fn without_notify_socket_nothing_is_sent_and_the_server_runs_as_before() {
    let socket = NotifySocket::bind();
    let server = TestServer::start(&[]);
    ask(&mut server.connect(), b"PING\r\n", b"PONG\r\n");
    server.signal(libc::SIGHUP);
    server.wait_for_log("reload (SIGHUP)", PATIENCE);
    assert_eq!(socket.next(std::time::Duration::from_millis(200)), None);
    server.stop();
}
