//! Limits (docs/OPERATIONS.md, "Behaviour under failure"): connection count, line length, idle clients.
//! Memory under hostile clients is in `bounded_memory.rs`; running out of descriptors needs
//! a process of its own (`prlimit`) and is tested through the binary.

pub mod common;

use std::time::{Duration, Instant};

use common::{client::show, start, PATIENCE};
use line_server::{Echo, ServerConfig};

/// The contract's exact bytes (docs/OPERATIONS.md, "Configuration"), not the library's constants: a
/// changed constant must fail here.
const TOO_MANY: &[u8] = b"ERROR too many connections\r\n";
const TOO_LONG: &[u8] = b"ERROR line too long\r\n";

fn max_connections(n: usize) -> ServerConfig {
    ServerConfig {
        max_connections: n,
        ..ServerConfig::default()
    }
}

fn max_line_bytes(n: usize) -> ServerConfig {
    ServerConfig {
        max_line_bytes: n,
        ..ServerConfig::default()
    }
}

fn idle_timeout(timeout: Duration) -> ServerConfig {
    ServerConfig {
        idle_timeout: Some(timeout),
        ..ServerConfig::default()
    }
}

// --- max_connections --------------------------------------------------------------------

#[tokio::test]
async fn a_client_over_max_connections_is_told_why_and_closed() {
    let server = start(Echo, max_connections(2));
    let mut first = server.connect().await;
    first.echo(b"one\r\n").await;
    let mut second = server.connect().await;
    second.echo(b"two\r\n").await;

    let mut third = server.connect().await;
    third.expect(TOO_MANY).await;
    third.expect_eof().await;

    // The two served clients are untouched.
    first.echo(b"one again\r\n").await;
    second.echo(b"two again\r\n").await;
}

#[tokio::test]
async fn a_slot_freed_by_a_leaving_client_is_given_to_a_new_one() {
    let server = start(Echo, max_connections(2));
    let mut first = server.connect().await;
    first.echo(b"one\r\n").await;
    let mut second = server.connect().await;
    second.echo(b"two\r\n").await;
    let mut refused = server.connect().await;
    refused.expect(TOO_MANY).await;
    refused.expect_eof().await;

    drop(first);
    // The slot is released once the server has seen the client leave; until then a
    // newcomer may still be refused, so retry (bounded).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut newcomer = server.connect().await;
        newcomer.send(b"let me in\r\n").await;
        let reply = newcomer.read_line().await;
        if reply == b"let me in\r\n" {
            newcomer.echo(b"thanks\r\n").await;
            break;
        }
        assert_eq!(show(&reply), show(TOO_MANY));
        assert!(
            Instant::now() < deadline,
            "the slot of the client that left was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.echo(b"two again\r\n").await;
}

// --- max_line_bytes ---------------------------------------------------------------------

#[tokio::test]
async fn a_line_of_exactly_max_line_bytes_counting_its_crlf_is_echoed() {
    let server = start(Echo, max_line_bytes(16));
    let mut client = server.connect().await;
    let crlf_line = b"12345678901234\r\n";
    assert_eq!(crlf_line.len(), 16);
    client.echo(crlf_line).await;
    let lf_line = b"123456789012345\n";
    assert_eq!(lf_line.len(), 16);
    client.echo(lf_line).await;
    client.echo(b"short\r\n").await;
}

#[tokio::test]
async fn a_line_one_byte_over_max_line_bytes_gets_an_error_and_is_closed() {
    let server = start(Echo, max_line_bytes(16));
    let mut client = server.connect().await;
    client.echo(b"fine\r\n").await;
    let line = b"123456789012345\r\n";
    assert_eq!(line.len(), 17);
    client.send(line).await;
    client.expect(TOO_LONG).await;
    client.expect_eof().await;
    // Other clients are not affected.
    server.connect().await.echo(b"next client\r\n").await;
}

#[tokio::test]
async fn an_over_long_line_is_refused_without_waiting_for_its_newline() {
    let server = start(Echo, max_line_bytes(16));
    let mut client = server.connect().await;
    // No newline ever comes, and the client keeps its side open.
    client.send(b"this is more than sixteen bytes").await;
    client.expect(TOO_LONG).await;
    client.expect_eof().await;
}

#[tokio::test]
async fn lines_before_an_over_long_one_in_the_same_write_are_still_echoed() {
    let server = start(Echo, max_line_bytes(16));
    let mut client = server.connect().await;
    client
        .send(b"first\r\nsecond\r\nway too long for the limit\r\nnever seen\r\n")
        .await;
    client.expect(b"first\r\nsecond\r\n").await;
    client.expect(TOO_LONG).await;
    client.expect_eof().await;
}

#[tokio::test]
async fn the_default_line_limit_is_65536_bytes() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    let mut fits = vec![b'x'; 65_536 - 2];
    fits.extend_from_slice(b"\r\n");
    client.echo(&fits).await;
    let mut too_long = vec![b'y'; 65_536 - 1];
    too_long.extend_from_slice(b"\r\n");
    client.send(&too_long).await;
    client.expect(TOO_LONG).await;
    client.expect_closed().await;
}

// --- idle_timeout -----------------------------------------------------------------------

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let server = start(Echo, idle_timeout(Duration::from_millis(300)));
    let mut silent = server.connect().await;
    silent.echo(b"hello then silence\r\n").await;
    // The read's deadline (PATIENCE) is the upper bound; the server closes well before.
    silent.expect_eof().await;
    server
        .connect()
        .await
        .echo(b"others still served\r\n")
        .await;
}

#[tokio::test]
async fn a_client_that_never_sends_a_byte_is_closed_after_the_idle_timeout() {
    let server = start(Echo, idle_timeout(Duration::from_millis(300)));
    let mut silent = server.connect().await;
    silent.expect_eof().await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_outlives_the_idle_timeout() {
    let server = start(Echo, idle_timeout(Duration::from_secs(1)));
    let mut active = server.connect().await;
    // Three times the timeout, one line every 100 ms: only a timer that is reset by
    // every received byte lets this client live.
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(3) {
        active.echo(format!("still here {n}\r\n").as_bytes()).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once it stops, it is closed like any idle client.
    active.expect_eof().await;
}

#[tokio::test]
async fn there_is_no_idle_timeout_by_default() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client.echo(b"hello\r\n").await;
    // A correct server stays silent; one with a short default timeout would close.
    client.expect_nothing_for(Duration::from_secs(3)).await;
    client.echo(b"still open\r\n").await;
}
