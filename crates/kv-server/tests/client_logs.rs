//! What the binary's log says about clients (PROTOCOL.md, "Echo mode", §5): a client
//! leaving at any moment is an ordinary event, logged at debug level and never as a warning
//! or an error; a panic while serving a client is an error that names the client's address.
//! That the server goes on serving everybody else is tested in-process in
//! `crates/line-server`.

pub mod common;

use common::{TestServer, PATIENCE};

#[test]
fn clients_leaving_at_any_moment_are_logged_at_debug_level_and_never_as_errors() {
    let server = TestServer::builder()
        .args(["--mode", "echo"])
        .env("RUST_LOG", "info,line_server=debug")
        .start();

    // Quitting mid-line.
    let mut quitter = server.connect();
    let quitter_addr = quitter.local_addr().to_string();
    quitter.echo(b"hello\r\n");
    quitter.send(b"half a li");
    drop(quitter);
    server.wait_for_log_with(&["DEBUG", &quitter_addr], PATIENCE);

    // Resetting with replies unread: lines whose echoes it never reads, a partial one,
    // then an RST instead of a FIN.
    let mut resetter = server.connect();
    let resetter_addr = resetter.local_addr().to_string();
    resetter.echo(b"hello\r\n");
    resetter.send(&b"unread line\r\n".repeat(1000));
    resetter.send(b"and a partial one");
    resetter.reset();
    server.wait_for_log_with(&["DEBUG", &resetter_addr], PATIENCE);

    // Resetting right after connecting.
    for _ in 0..50 {
        server.connect().reset();
    }
    server.connect().echo(b"still accepting\r\n");

    let bad: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|l| matches!(common::log_level(l), Some("WARN" | "ERROR")))
        .collect();
    assert!(bad.is_empty(), "unexpected warnings or errors: {bad:#?}");
}

#[test]
fn a_panicking_connection_is_logged_as_an_error_naming_the_peer_address() {
    let server = TestServer::builder()
        .args(["--mode", "echo", "--debug-commands"])
        .start();
    for _ in 0..3 {
        let mut victim = server.connect();
        let victim_addr = victim.local_addr().to_string();
        victim.echo(b"about to crash\r\n");
        victim.send(b"DEBUG PANIC\r\n");
        victim.expect_closed();

        let line = server.wait_for_log_with(&["ERROR", &victim_addr], PATIENCE);
        assert!(
            line.contains("panic"),
            "error line should say it panicked: {line}"
        );
        // The address must come from the server's own bookkeeping, not only from the text
        // of this injected panic (a real panic's message would not name the peer).
        let without_panic_text = line.replace(&format!("requested by {victim_addr}"), "");
        assert!(
            without_panic_text.contains(&victim_addr),
            "the error line should name the peer {victim_addr}: {line}"
        );
    }
    server.connect().echo(b"newcomer served\r\n");
}
