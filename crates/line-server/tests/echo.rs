//! Echo over the machinery (PROTOCOL.md, "Echo mode"): the seed's server, byte for byte,
//! over real sockets; clients that leave at any moment disturb nobody.

pub mod common;

use std::time::Duration;

use common::start;
use line_server::{Echo, ServerConfig};

#[tokio::test]
async fn the_seeds_telnet_session_is_echoed_byte_for_byte() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client.echo(b"hello\r\n").await;
    client.echo(b"is it me\r\n").await;
    client.echo(b"you are looking for?\r\n").await;
}

#[tokio::test]
async fn lf_only_lines_and_empty_lines_come_back_unchanged() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client.echo(b"unix line\n").await;
    client.echo(b"\r\n").await;
    client.echo(b"\n").await;
    client.echo(b"  spaces\tand tabs  \r\n").await;
    client.echo(b"a lone \r inside\n").await;
}

#[tokio::test]
async fn bytes_that_are_not_utf8_are_echoed_unchanged() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client
        .echo(b"\xff\xfe\x00binary\x80\xc3\x28 \x1b[31m\r\n")
        .await;
    let every_byte_but_newline: Vec<u8> =
        (0u8..=255).filter(|b| *b != b'\n').chain([b'\n']).collect();
    client.echo(&every_byte_but_newline).await;
}

#[tokio::test]
async fn a_line_split_across_several_writes_is_echoed_once_complete() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client.send(b"hel").await;
    // Nothing comes back for a partial line (a negative check: cannot flake).
    client.expect_nothing_for(Duration::from_millis(200)).await;
    client.send(b"lo, wor").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send(b"ld\r").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send(b"\n").await;
    client.expect(b"hello, world\r\n").await;
    client.echo(b"next\r\n").await;
}

#[tokio::test]
async fn many_lines_in_one_write_are_all_echoed_in_order() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    let batch: Vec<u8> = (0..2_000)
        .flat_map(|i| format!("pipelined line {i}\r\n").into_bytes())
        .collect();
    client.send(&batch).await;
    client.expect(&batch).await;
    client.echo(b"still talking\r\n").await;
}

#[tokio::test]
async fn a_line_split_across_writes_and_followed_by_more_lines_keeps_its_order() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client.send(b"first\r\nsec").await;
    client.expect(b"first\r\n").await;
    client.send(b"ond\r\nthird\r\nfou").await;
    client.expect(b"second\r\nthird\r\n").await;
    client.send(b"rth\n").await;
    client.expect(b"fourth\n").await;
}

#[tokio::test]
async fn a_half_closed_client_gets_its_unterminated_last_line_then_eof() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client.send(b"abc").await;
    client.shutdown_write().await;
    client.expect(b"abc").await;
    client.expect_eof().await;
}

#[tokio::test]
async fn a_half_closed_client_gets_all_its_lines_and_the_unterminated_rest_then_eof() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client.send(b"one\r\ntwo\r\nthree").await;
    client.shutdown_write().await;
    client.expect(b"one\r\ntwo\r\nthree").await;
    client.expect_eof().await;
}

#[tokio::test]
async fn a_half_closed_client_with_nothing_pending_just_gets_eof() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client.echo(b"only line\r\n").await;
    client.shutdown_write().await;
    client.expect_eof().await;
}

// What the log says about clients that leave (debug level, never a warning) is checked
// through the binary, in crates/kv-server/tests/client_logs.rs.

#[tokio::test]
async fn a_client_quitting_mid_line_does_not_disturb_others() {
    let server = start(Echo, ServerConfig::default());
    let mut other = server.connect().await;
    other.echo(b"before\r\n").await;

    let mut quitter = server.connect().await;
    quitter.echo(b"hello\r\n").await;
    quitter.send(b"half a li").await;
    drop(quitter);

    other.echo(b"after\r\n").await;
    server.connect().await.echo(b"newcomer\r\n").await;
    server.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_client_resetting_with_unread_replies_does_not_disturb_others() {
    let server = start(Echo, ServerConfig::default());
    let mut other = server.connect().await;
    other.echo(b"before\r\n").await;

    let mut resetter = server.connect().await;
    resetter.echo(b"hello\r\n").await;
    // Lines whose echoes it never reads, then an RST instead of a FIN.
    resetter.send(&b"unread line\r\n".repeat(1000)).await;
    resetter.send(b"and a partial one").await;
    resetter.reset();

    other.echo(b"after\r\n").await;
    server.connect().await.echo(b"newcomer\r\n").await;
    server.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn clients_resetting_right_after_connecting_do_not_stop_the_acceptor() {
    let server = start(Echo, ServerConfig::default());
    for _ in 0..50 {
        server.connect().await.reset();
    }
    let mut client = server.connect().await;
    client.echo(b"still accepting\r\n").await;
    server.stop().await.expect("a clean shutdown");
}
