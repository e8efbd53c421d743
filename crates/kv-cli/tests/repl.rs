//! The interactive session, driven in a pseudo-terminal (rexpect) as a person at a
//! terminal drives it: the prompt, replies, `help`, history recalled with the Up arrow and
//! kept across sessions (never an `AUTH` line), `AUTH` typed in, and reconnecting after
//! the server restarts.

pub mod common;

use std::path::Path;
use std::process::Command;

use common::{kv_cli, Spec, TestServer};
use rexpect::reader::Options;
use rexpect::session::{spawn_with_options, PtySession};

const UP: &str = "\x1b[A";

/// kv-cli on a terminal, connected to `port`, keeping its history in `history`.
fn session(port: u16, history: &Path) -> PtySession {
    let mut command: Command = kv_cli(port);
    command.env("KV_CLI_HISTFILE", history).env("TERM", "xterm");
    let options = Options::new()
        .timeout_ms(Some(common::PATIENCE.as_millis() as u64))
        .strip_ansi_escape_codes(true);
    spawn_with_options(command, options).expect("kv-cli in a pseudo-terminal")
}

/// Types `line` and Enter.
fn type_line(kv: &mut PtySession, line: &str) {
    kv.send_line(line).expect("type a line");
}

fn expect(kv: &mut PtySession, text: &str) {
    if let Err(e) = kv.exp_string(text) {
        panic!("expected {text:?}: {e}");
    }
}

/// Leaves with `quit` and checks the exit status is 0.
fn quit(mut kv: PtySession) {
    type_line(&mut kv, "quit");
    let status = kv.process().wait().expect("kv-cli exits");
    // nix's WaitStatus, which rexpect does not re-export: `Exited(Pid(n), 0)`.
    let status = format!("{status:?}");
    assert!(
        status.starts_with("Exited(") && status.ends_with(", 0)"),
        "{status}"
    );
}

#[test]
fn the_prompt_shows_the_address_and_replies_come_as_the_server_sent_them() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut kv = session(server.port, &dir.path().join("history"));
    let prompt = format!("127.0.0.1:{}> ", server.port);
    expect(&mut kv, &prompt);
    type_line(&mut kv, "CREATE shopping");
    expect(&mut kv, "OK");
    type_line(&mut kv, "PUT shopping milk 1");
    expect(&mut kv, "OK");
    type_line(&mut kv, "GET shopping milk");
    expect(&mut kv, "1\r\nOK\r\n");
    type_line(&mut kv, "GET nowhere milk");
    expect(&mut kv, "NOT FOUND");
    type_line(&mut kv, "help");
    expect(&mut kv, "PUT bucket key value");
    expect(&mut kv, &prompt);
    quit(kv);
    server.stop();
}

#[test]
fn up_recalls_earlier_lines_and_the_history_outlives_the_session() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let history = dir.path().join("state").join("history");
    let mut kv = session(server.port, &history);
    type_line(&mut kv, "CREATE b");
    expect(&mut kv, "OK");
    type_line(&mut kv, "GET b k");
    expect(&mut kv, "\r\nOK");
    type_line(&mut kv, "PUT b k 2");
    expect(&mut kv, "OK");
    // Up twice: the GET, sent again, now sees the PUT.
    expect(&mut kv, "> ");
    kv.send(UP).expect("Up");
    kv.send(UP).expect("Up");
    type_line(&mut kv, "");
    expect(&mut kv, "2\r\nOK");
    quit(kv);

    let kept = std::fs::read_to_string(&history).expect("the history file");
    assert!(kept.contains("PUT b k 2"), "{kept}");
    let mut again = session(server.port, &history);
    // Up only once the prompt is there: before, the terminal is not yet in raw mode.
    expect(&mut again, "> ");
    // The last line of the previous session, recalled: PUT b k 2's OK, then the GET.
    again.send(UP).expect("Up");
    type_line(&mut again, "");
    expect(&mut again, "OK");
    type_line(&mut again, "GET b k");
    expect(&mut again, "2\r\nOK");
    quit(again);
    server.stop();
}

#[test]
fn auth_typed_in_unlocks_the_server_and_never_reaches_the_history() {
    let server = TestServer::with_password("s3cret");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let history = dir.path().join("history");
    let mut kv = session(server.port, &history);
    type_line(&mut kv, "PING");
    expect(&mut kv, "ERROR NOAUTH authentication required");
    expect(&mut kv, "KV_PASSWORD");
    type_line(&mut kv, "AUTH s3cret");
    expect(&mut kv, "OK");
    type_line(&mut kv, "PING");
    expect(&mut kv, "PONG");
    quit(kv);
    let kept = std::fs::read_to_string(&history).expect("the history file");
    assert!(!kept.contains("s3cret"), "{kept}");
    assert!(kept.contains("PING"), "{kept}");
    server.stop();
}

#[test]
fn after_the_server_restarts_the_next_line_reconnects() {
    let server = TestServer::with(Spec {
        password: Some("pw"),
        ..Spec::default()
    });
    let addr = server.addr();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut command = kv_cli(server.port);
    command
        .env("KV_CLI_HISTFILE", dir.path().join("history"))
        .env("KV_PASSWORD", "pw");
    let options = Options::new()
        .timeout_ms(Some(common::PATIENCE.as_millis() as u64))
        .strip_ansi_escape_codes(true);
    let mut kv = spawn_with_options(command, options).expect("kv-cli in a pseudo-terminal");
    type_line(&mut kv, "PING");
    expect(&mut kv, "PONG");
    server.stop();

    // Down: the line fails, the prompt says so.
    type_line(&mut kv, "PING");
    expect(&mut kv, "Is kv-server running");
    expect(&mut kv, "not connected> ");
    // Back on the same port: the next line connects (and authenticates) again.
    let restarted = TestServer::at(
        addr,
        Spec {
            password: Some("pw"),
            ..Spec::default()
        },
    );
    type_line(&mut kv, "PING");
    expect(&mut kv, "PONG");
    expect(&mut kv, &format!("127.0.0.1:{}> ", addr.port()));
    // A restart while connected: the line is sent again on a new connection.
    restarted.stop();
    let third = TestServer::at(
        addr,
        Spec {
            password: Some("pw"),
            ..Spec::default()
        },
    );
    type_line(&mut kv, "PING");
    expect(&mut kv, "PONG");
    quit(kv);
    third.stop();
}
