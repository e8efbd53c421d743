//! Echo mode (SPEC §3): the seed's server, byte for byte, over real sockets.

mod common;

use std::thread;
use std::time::Duration;

use common::{TestServer, PATIENCE};

#[test]
fn the_seeds_telnet_session_is_echoed_byte_for_byte() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.echo(b"hello\r\n");
    client.echo(b"is it me\r\n");
    client.echo(b"you are looking for?\r\n");
}

#[test]
fn lf_only_lines_and_empty_lines_come_back_unchanged() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.echo(b"unix line\n");
    client.echo(b"\r\n");
    client.echo(b"\n");
    client.echo(b"  spaces\tand tabs  \r\n");
    client.echo(b"a lone \r inside\n");
}

#[test]
fn bytes_that_are_not_utf8_are_echoed_unchanged() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.echo(b"\xff\xfe\x00binary\x80\xc3\x28 \x1b[31m\r\n");
    let every_byte_but_newline: Vec<u8> =
        (0u8..=255).filter(|b| *b != b'\n').chain([b'\n']).collect();
    client.echo(&every_byte_but_newline);
}

#[test]
fn a_line_split_across_several_writes_is_echoed_once_complete() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.send(b"hel");
    // Nothing comes back for a partial line (a negative check: cannot flake).
    client.expect_nothing_for(Duration::from_millis(200));
    client.send(b"lo, wor");
    thread::sleep(Duration::from_millis(50));
    client.send(b"ld\r");
    thread::sleep(Duration::from_millis(50));
    client.send(b"\n");
    client.expect(b"hello, world\r\n");
    client.echo(b"next\r\n");
}

#[test]
fn many_lines_in_one_write_are_all_echoed_in_order() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    let batch: Vec<u8> = (0..2_000)
        .flat_map(|i| format!("pipelined line {i}\r\n").into_bytes())
        .collect();
    client.send(&batch);
    client.expect(&batch);
    client.echo(b"still talking\r\n");
}

#[test]
fn a_line_split_across_writes_and_followed_by_more_lines_keeps_its_order() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.send(b"first\r\nsec");
    client.expect(b"first\r\n");
    client.send(b"ond\r\nthird\r\nfou");
    client.expect(b"second\r\nthird\r\n");
    client.send(b"rth\n");
    client.expect(b"fourth\n");
}

#[test]
fn a_half_closed_client_gets_its_unterminated_last_line_then_eof() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.send(b"abc");
    client.shutdown_write();
    client.expect(b"abc");
    client.expect_eof();
}

#[test]
fn a_half_closed_client_gets_all_its_lines_and_the_unterminated_rest_then_eof() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.send(b"one\r\ntwo\r\nthree");
    client.shutdown_write();
    client.expect(b"one\r\ntwo\r\nthree");
    client.expect_eof();
}

#[test]
fn a_half_closed_client_with_nothing_pending_just_gets_eof() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.echo(b"only line\r\n");
    client.shutdown_write();
    client.expect_eof();
}

#[test]
fn a_client_quitting_mid_session_does_not_disturb_others_and_is_not_an_error() {
    let server = TestServer::builder()
        .args(["--mode", "echo"])
        .env("RUST_LOG", "info,line_server=debug")
        .start();
    let mut other = server.connect();
    other.echo(b"before\r\n");

    let mut quitter = server.connect();
    let quitter_addr = quitter.local_addr().to_string();
    quitter.echo(b"hello\r\n");
    quitter.send(b"half a li");
    drop(quitter);

    // The server logs (at debug level) that this client's connection ended.
    server.wait_for_log_with(&["DEBUG", &quitter_addr], PATIENCE);
    other.echo(b"after\r\n");
    server.connect().echo(b"newcomer\r\n");
    assert_no_warnings_or_errors(&server);
}

#[test]
fn a_client_resetting_its_connection_does_not_disturb_others_and_is_not_an_error() {
    let server = TestServer::builder()
        .args(["--mode", "echo"])
        .env("RUST_LOG", "info,line_server=debug")
        .start();
    let mut other = server.connect();
    other.echo(b"before\r\n");

    let mut resetter = server.connect();
    let resetter_addr = resetter.local_addr().to_string();
    resetter.echo(b"hello\r\n");
    // Lines whose echoes it never reads, then an RST instead of a FIN.
    resetter.send(&b"unread line\r\n".repeat(1000));
    resetter.send(b"and a partial one");
    resetter.reset();

    server.wait_for_log_with(&["DEBUG", &resetter_addr], PATIENCE);
    other.echo(b"after\r\n");
    server.connect().echo(b"newcomer\r\n");
    assert_no_warnings_or_errors(&server);
}

#[test]
fn a_client_resetting_right_after_connecting_is_an_ordinary_event() {
    let server = TestServer::builder()
        .args(["--mode", "echo"])
        .env("RUST_LOG", "info,line_server=debug")
        .start();
    for _ in 0..50 {
        server.connect().reset();
    }
    let mut client = server.connect();
    client.echo(b"still accepting\r\n");
    assert_no_warnings_or_errors(&server);
}

fn assert_no_warnings_or_errors(server: &TestServer) {
    let bad: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|l| matches!(common::log_level(l), Some("WARN" | "ERROR")))
        .collect();
    assert!(bad.is_empty(), "unexpected warnings or errors: {bad:#?}");
}
