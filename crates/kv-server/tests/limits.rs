//! Limits (SPEC §2, §5): connection count, line length, idle clients, clients that never
//! read, running out of file descriptors. Memory must stay bounded under all of them.

mod common;

use std::io::{self, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use common::{show, Client, TestServer, PATIENCE};

const TOO_MANY: &[u8] = b"ERROR too many connections\r\n";
const TOO_LONG: &[u8] = b"ERROR line too long\r\n";
/// Generous growth allowed for the server's resident memory under hostile input; a server
/// that buffered what these tests send would grow far beyond it.
const RSS_GROWTH_BOUND: u64 = 50 * 1024 * 1024;

// --- --max-connections ------------------------------------------------------------------

#[test]
fn a_client_over_max_connections_is_told_why_and_closed() {
    let server = TestServer::echo(&["--max-connections", "2"]);
    let mut first = server.connect();
    first.echo(b"one\r\n");
    let mut second = server.connect();
    second.echo(b"two\r\n");

    let mut third = server.connect();
    third.expect(TOO_MANY);
    third.expect_eof();

    // The two served clients are untouched.
    first.echo(b"one again\r\n");
    second.echo(b"two again\r\n");
}

#[test]
fn a_slot_freed_by_a_leaving_client_is_given_to_a_new_one() {
    let server = TestServer::echo(&["--max-connections", "2"]);
    let mut first = server.connect();
    first.echo(b"one\r\n");
    let mut second = server.connect();
    second.echo(b"two\r\n");
    let mut refused = server.connect();
    refused.expect(TOO_MANY);
    refused.expect_eof();

    drop(first);
    // The slot is released once the server has seen the client leave; until then a
    // newcomer may still be refused, so retry (bounded).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut newcomer = server.connect();
        newcomer.send(b"let me in\r\n");
        let reply = newcomer.read_line();
        if reply == b"let me in\r\n" {
            newcomer.echo(b"thanks\r\n");
            break;
        }
        assert_eq!(show(&reply), show(TOO_MANY));
        assert!(
            Instant::now() < deadline,
            "the slot of the client that left was never freed"
        );
        thread::sleep(Duration::from_millis(50));
    }
    second.echo(b"two again\r\n");
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
fn a_line_of_exactly_max_line_bytes_counting_its_crlf_is_echoed() {
    let server = TestServer::echo(&["--max-line-bytes", "16"]);
    let mut client = server.connect();
    let crlf_line = b"12345678901234\r\n";
    assert_eq!(crlf_line.len(), 16);
    client.echo(crlf_line);
    let lf_line = b"123456789012345\n";
    assert_eq!(lf_line.len(), 16);
    client.echo(lf_line);
    client.echo(b"short\r\n");
}

#[test]
fn a_line_one_byte_over_max_line_bytes_gets_an_error_and_is_closed() {
    let server = TestServer::echo(&["--max-line-bytes", "16"]);
    let mut client = server.connect();
    client.echo(b"fine\r\n");
    let line = b"123456789012345\r\n";
    assert_eq!(line.len(), 17);
    client.send(line);
    client.expect(TOO_LONG);
    client.expect_eof();
    // Other clients are not affected.
    server.connect().echo(b"next client\r\n");
}

#[test]
fn an_over_long_line_is_refused_without_waiting_for_its_newline() {
    let server = TestServer::echo(&["--max-line-bytes", "16"]);
    let mut client = server.connect();
    // No newline ever comes, and the client keeps its side open.
    client.send(b"this is more than sixteen bytes");
    client.expect(TOO_LONG);
    client.expect_eof();
}

#[test]
fn lines_before_an_over_long_one_in_the_same_write_are_still_echoed() {
    let server = TestServer::echo(&["--max-line-bytes", "16"]);
    let mut client = server.connect();
    client.send(b"first\r\nsecond\r\nway too long for the limit\r\nnever seen\r\n");
    client.expect(b"first\r\nsecond\r\n");
    client.expect(TOO_LONG);
    client.expect_eof();
}

#[test]
fn the_default_line_limit_is_65536_bytes() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    let mut fits = vec![b'x'; 65_536 - 2];
    fits.extend_from_slice(b"\r\n");
    client.echo(&fits);
    let mut too_long = vec![b'y'; 65_536 - 1];
    too_long.extend_from_slice(b"\r\n");
    client.send(&too_long);
    client.expect(TOO_LONG);
    client.expect_closed();
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

#[test]
fn an_endless_line_gets_the_error_without_the_server_buffering_it() {
    let server = TestServer::echo(&["--max-line-bytes", "16"]);
    server.connect().echo(b"warm up\r\n");
    let baseline = server.rss_bytes();

    let mut client = server.connect();
    let writer = client.try_clone();
    // 64 MiB with no newline, from another thread; the server stops reading it, so the
    // writes fail (reset, broken pipe) or block until the write timeout: all tolerated.
    let sender = thread::spawn(move || {
        writer.set_write_timeout(Duration::from_secs(3));
        let chunk = vec![b'z'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 64 * 1024 * 1024 {
            match writer.stream().write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    client.expect(TOO_LONG);
    client.expect_closed();
    let sent = sender.join().unwrap();

    let grown = server.rss_bytes().saturating_sub(baseline);
    assert!(
        grown < RSS_GROWTH_BOUND,
        "server RSS grew by {grown} bytes while a client sent {sent} bytes of one line"
    );
    server.connect().echo(b"still serving\r\n");
}

// --- --idle-timeout-secs ----------------------------------------------------------------

#[test]
fn a_silent_client_is_closed_after_the_idle_timeout() {
    let server = TestServer::echo(&["--idle-timeout-secs", "1"]);
    let mut silent = server.connect();
    silent.echo(b"hello then silence\r\n");
    // Read timeout (PATIENCE) is the upper bound; the server must close well before.
    silent.expect_eof();
    server.connect().echo(b"others still served\r\n");
}

#[test]
fn a_client_that_never_sends_a_byte_is_closed_after_the_idle_timeout() {
    let server = TestServer::echo(&["--idle-timeout-secs", "1"]);
    let mut silent = server.connect();
    silent.expect_eof();
}

#[test]
fn a_client_that_keeps_sending_outlives_the_idle_timeout() {
    let server = TestServer::echo(&["--idle-timeout-secs", "2"]);
    let mut active = server.connect();
    // Three times the timeout, one line every 250 ms: only a timer that is reset by
    // every received byte lets this client live.
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(6) {
        active.echo(format!("still here {n}\r\n").as_bytes());
        n += 1;
        thread::sleep(Duration::from_millis(250));
    }
    // Once it stops, it is closed like any idle client.
    active.expect_eof();
}

#[test]
fn there_is_no_idle_timeout_by_default() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.echo(b"hello\r\n");
    // A correct server stays silent; one with a short default timeout would close.
    client.expect_nothing_for(Duration::from_secs(3));
    client.echo(b"still open\r\n");
}

// --- backpressure -----------------------------------------------------------------------

#[test]
fn a_client_that_never_reads_is_pushed_back_without_the_server_buffering_its_replies() {
    let server = TestServer::echo(&[]);
    server.connect().echo(b"warm up\r\n");
    let baseline = server.rss_bytes();

    // The pattern the flooder sends: 8-byte lines, repeated.
    let chunk: Vec<u8> = (0..8_192)
        .flat_map(|i| format!("{i:07}\n").into_bytes())
        .collect();
    const CAP: usize = 256 * 1024 * 1024;

    let flooder = server.connect();
    let writer = flooder.try_clone();
    let pattern = chunk.clone();
    // Writes until a write blocks for 3 s (the server stopped reading) or CAP is reached.
    let sender = thread::spawn(move || {
        writer.set_write_timeout(Duration::from_secs(3));
        let mut sent = 0usize;
        while sent < CAP {
            let at = sent % pattern.len();
            match writer.stream().write(&pattern[at..]) {
                Ok(n) => sent += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => panic!("flooding write failed: {e}"),
            }
        }
        sent
    });
    let sent = sender.join().unwrap();
    assert!(
        sent < CAP,
        "the server accepted {sent} bytes from a client that reads none of its replies"
    );

    // Meanwhile the server holds no more than bounded buffers and serves others.
    let grown = server.rss_bytes().saturating_sub(baseline);
    assert!(
        grown < RSS_GROWTH_BOUND,
        "server RSS grew by {grown} bytes while a client sent {sent} bytes it never read"
    );
    server.connect().echo(b"others are served meanwhile\r\n");

    // When the flooder finally reads, it gets exactly what it sent, in order.
    let reader = flooder;
    reader.shutdown_write();
    let mut received = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.stream().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => panic!("reading the echo back after {received} bytes: {e}"),
        };
        for (k, byte) in buf[..n].iter().enumerate() {
            let expected = chunk[(received + k) % chunk.len()];
            assert_eq!(*byte, expected, "echo differs at byte {}", received + k);
        }
        received += n;
    }
    assert_eq!(received, sent, "echoed bytes vs sent bytes");
}

// --- accept errors ----------------------------------------------------------------------

#[test]
fn running_out_of_file_descriptors_neither_crashes_nor_floods_and_recovers_by_itself() {
    // Soft and hard 64: the server raises soft to hard, so 64 it is.
    let server = TestServer::builder()
        .wrapped_in(["/usr/bin/prlimit", "--nofile=64:64"])
        .args(["--mode", "echo"])
        .start();
    let mut early = server.connect();
    early.echo(b"connected before the shortage\r\n");

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
    early.echo(b"still served during the shortage\r\n");

    // Free descriptors: every waiting client is served without any outside help.
    drop(crowd);
    let mut later = server.connect();
    later.echo(b"served after recovery\r\n");
    early.echo(b"and the early one too\r\n");
    assert!(server.is_running());
}
