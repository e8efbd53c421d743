//! kv-cli without a terminal: standard input's lines pipelined, every reply printed in
//! order, exit 1 if any was an error.

pub mod common;

use std::fmt::Write;

use common::{code, kv_cli, run, stderr, stdout, Spec, TestServer};

#[test]
fn ten_thousand_piped_requests_get_ten_thousand_replies_in_order() {
    let server = TestServer::start();
    let (mut input, mut expected) = (String::from("CREATE b\n"), String::from("OK\n"));
    for i in 0..4_999 {
        let _ = writeln!(input, "PUT b k{i} v{i}");
        let _ = writeln!(input, "GET b k{i}");
        let _ = write!(expected, "OK\nv{i}\nOK\n");
    }
    let _ = writeln!(input, "GET b missing");
    expected.push_str("\nOK\n");
    assert_eq!(input.lines().count(), 10_000);

    let output = run(kv_cli(server.port), input.as_bytes());
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output) == expected,
        "the replies differ from the requests' order"
    );
    assert_eq!(stderr(&output), "");
    server.stop();
}

#[test]
fn one_bad_line_exits_1_with_a_count_and_the_rest_is_answered() {
    let server = TestServer::start();
    let input = "CREATE b\nPUT b k v\nFROB\nGET b k\n";
    let output = run(kv_cli(server.port), input.as_bytes());
    assert_eq!(code(&output), 1);
    assert_eq!(stdout(&output), "OK\nOK\nUNKNOWN COMMAND\nv\nOK\n");
    assert!(stderr(&output).contains("1 error"), "{}", stderr(&output));
    server.stop();
}

#[test]
fn blank_lines_are_skipped_and_a_final_quit_is_fine() {
    let server = TestServer::start();
    let output = run(kv_cli(server.port), b"PING\n\n  \nPING\nQUIT\n");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "PONG\nPONG\nOK\n");
    server.stop();
}

#[test]
fn lines_after_the_server_closed_are_reported_unanswered_with_exit_2() {
    let server = TestServer::start();
    let output = run(kv_cli(server.port), b"PING\nQUIT\nPING\nPING\n");
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "PONG\nOK\n");
    assert!(
        stderr(&output).contains("2 request(s) unanswered"),
        "{}",
        stderr(&output)
    );
    server.stop();
}

#[test]
fn piped_requests_authenticate_with_kv_password() {
    let server = TestServer::with(Spec {
        password: Some("pw"),
        ..Spec::default()
    });
    let mut command = kv_cli(server.port);
    command.env("KV_PASSWORD", "pw");
    let output = run(command, b"CREATE b\nPING\n");
    assert_eq!((code(&output), stdout(&output)), (0, "OK\nPONG\n".into()));

    let anonymous = run(kv_cli(server.port), b"PING\n");
    assert_eq!(code(&anonymous), 1);
    assert!(
        stderr(&anonymous).contains("KV_PASSWORD"),
        "{}",
        stderr(&anonymous)
    );
    server.stop();
}

#[test]
fn more_requests_than_the_window_holds_are_all_answered() {
    // Past the window the writer must write what it has queued before it waits for room,
    // or both sides would wait for each other.
    let server = TestServer::start();
    let count = kv_cli::pipe::WINDOW * 2 + 7;
    let input = "PING\n".repeat(count);
    let output = run(kv_cli(server.port), input.as_bytes());
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), count);
    assert!(stdout(&output).lines().all(|line| line == "PONG"));
    server.stop();
}
