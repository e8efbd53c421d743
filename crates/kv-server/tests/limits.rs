//! Limits through the binary (docs/OPERATIONS.md, "Configuration", §5): the flags and environment
//! variables that set them, and running out of file descriptors (a process with its own
//! `prlimit`). How each limit behaves is tested in-process in
//! `crates/line-server/tests/limits.rs` and `bounded_memory.rs`.

pub mod common;

use std::thread;
use std::time::Duration;

use common::{ask, Client, TestServer, PATIENCE};

const TOO_MANY: &[u8] = b"ERROR too many connections\r\n";
const TOO_LONG: &[u8] = b"ERROR line too long\r\n";

// --- --max-connections ------------------------------------------------------------------

#[test]
fn the_max_connections_flag_sets_the_limit() {
    let server = TestServer::echo(&["--max-connections", "2"]);
    let mut first = server.connect();
    first.echo(b"one\r\n");
    let mut second = server.connect();
    second.echo(b"two\r\n");
    let mut third = server.connect();
    third.expect(TOO_MANY);
    third.expect_eof();
    first.echo(b"one again\r\n");
}

#[test]
fn kv_max_connections_env_sets_the_limit() {
    let server = TestServer::builder()
        .args(["--mode", "echo"])
        .env("KV_MAX_CONNECTIONS", "1")
        .start();
    let mut first = server.connect();
    first.echo(b"one\r\n");
    let mut second = server.connect();
    second.expect(TOO_MANY);
    second.expect_eof();
}

// --- --max-line-bytes -------------------------------------------------------------------

#[test]
fn the_max_line_bytes_flag_sets_the_limit() {
    let server = TestServer::echo(&["--max-line-bytes", "16"]);
    let mut client = server.connect();
    client.echo(b"123456789012345\n");
    client.send(b"seventeen bytes!\n");
    client.expect(TOO_LONG);
    client.expect_eof();
}

#[test]
fn kv_max_line_bytes_env_sets_the_limit() {
    let server = TestServer::builder()
        .args(["--mode", "echo"])
        .env("KV_MAX_LINE_BYTES", "16")
        .start();
    let mut client = server.connect();
    client.send(b"seventeen bytes!\n");
    client.expect(TOO_LONG);
    client.expect_eof();
}

// --- --idle-timeout-secs ----------------------------------------------------------------

#[test]
fn the_idle_timeout_flag_closes_a_silent_client() {
    let server = TestServer::echo(&["--idle-timeout-secs", "1"]);
    let mut silent = server.connect();
    silent.echo(b"hello then silence\r\n");
    // The read timeout (PATIENCE) is the upper bound; the server must close well before.
    silent.expect_eof();
    server.connect().echo(b"others still served\r\n");
}

// --- accept errors ----------------------------------------------------------------------

#[test]
fn running_out_of_file_descriptors_neither_crashes_nor_floods_and_recovers_by_itself() {
    // Soft and hard 64: the server raises soft to hard, so 64 it is.
    let server = TestServer::builder()
        .wrapped_in(["/usr/bin/prlimit", "--nofile=64:64"])
        .start();
    let mut early = server.connect();
    ask(&mut early, b"PING\r\n", b"PONG\r\n");

    // More clients than descriptors: the kernel completes the handshakes (backlog), the
    // server's accept(2) fails with EMFILE.
    let crowd: Vec<Client> = (0..100).map(|_| server.connect()).collect();
    server.wait_for_log("accept failed", PATIENCE);
    // Let it run out of descriptors for a while.
    thread::sleep(Duration::from_secs(3));

    let mut server = server;
    assert!(server.is_running(), "server died when out of descriptors");
    let warnings = server.logs_containing("accept failed").len();
    assert!(
        warnings < 10,
        "{warnings} accept-failure log lines in ~3 s: the log is flooded"
    );
    // Clients accepted before the shortage are served throughout.
    ask(&mut early, b"PING\r\n", b"PONG\r\n");

    // Free descriptors: every waiting client is served without any outside help.
    drop(crowd);
    let mut later = server.connect();
    ask(&mut later, b"PING\r\n", b"PONG\r\n");
    ask(&mut early, b"PING\r\n", b"PONG\r\n");
    assert!(server.is_running());
    // Counted, and as what they were.
    later.send(b"INFO supervision\r\n");
    let mut report = String::new();
    while !report.ends_with("OK\r\n") {
        report.push_str(&String::from_utf8_lossy(&later.read_line()));
    }
    let field = |name: &str| -> u64 {
        let line = report.lines().find(|l| l.starts_with(&format!("{name}:")));
        let value = line
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or_else(|| panic!("{name} in {report}"));
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} in {report}"))
    };
    assert!(field("accept_errors") > 0, "{report}");
    assert_eq!(
        field("accept_errors_descriptors"),
        field("accept_errors"),
        "{report}"
    );
}
