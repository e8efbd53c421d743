//! `kv-cli REQUEST WORDS...` against a real server: every exit status of SPEC §16, and the
//! password from the environment or a file, never the command line.

pub mod common;

use common::{assert_pong, code, kv_cli, run, stderr, stdout, Spec, TestServer};
use line_server::ServerConfig;

fn oneshot(port: u16, words: &[&str]) -> std::process::Output {
    let mut command = kv_cli(port);
    command.args(words);
    run(command, b"")
}

#[test]
fn ping_is_a_health_check_that_exits_0_with_pong() {
    let server = TestServer::start();
    let output = oneshot(server.port, &["PING"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "PONG\n");
    assert_eq!(stderr(&output), "");
    server.stop();
}

#[test]
fn normal_replies_exit_0_a_value_on_its_own_line_and_not_found_too() {
    let server = TestServer::start();
    for words in [
        &["CREATE", "shopping"][..],
        &["put", "shopping", "milk", "1"],
    ] {
        let output = oneshot(server.port, words);
        assert_eq!((code(&output), stdout(&output)), (0, "OK\n".into()));
    }
    let value = oneshot(server.port, &["GET", "shopping", "milk"]);
    assert_eq!((code(&value), stdout(&value)), (0, "1\nOK\n".into()));
    let missing_key = oneshot(server.port, &["GET", "shopping", "eggs"]);
    assert_eq!(
        (code(&missing_key), stdout(&missing_key)),
        (0, "\nOK\n".into())
    );
    let missing_bucket = oneshot(server.port, &["GET", "nowhere", "milk"]);
    assert_eq!(
        (code(&missing_bucket), stdout(&missing_bucket)),
        (0, "NOT FOUND\n".into())
    );
    let info = oneshot(server.port, &["INFO", "keyspace"]);
    assert_eq!(code(&info), 0);
    assert_eq!(stdout(&info), "# Keyspace\nbuckets:1\nkeys:1\nOK\n");
    server.stop();
}

#[test]
fn unknown_command_and_error_replies_exit_1() {
    let server = TestServer::with(Spec {
        config: ServerConfig {
            max_line_bytes: 64,
            ..ServerConfig::default()
        },
        ..Spec::default()
    });
    let unknown = oneshot(server.port, &["FROB", "b"]);
    assert_eq!(
        (code(&unknown), stdout(&unknown)),
        (1, "UNKNOWN COMMAND\n".into())
    );
    let wrong_arity = oneshot(server.port, &["GET", "b"]);
    assert_eq!(code(&wrong_arity), 1);
    let long = "x".repeat(80);
    let error = oneshot(server.port, &["PUT", "b", "k", &long]);
    assert_eq!(
        (code(&error), stdout(&error)),
        (1, "ERROR line too long\n".into())
    );
    server.stop();
}

#[test]
fn no_server_exits_2_and_says_where_it_looked() {
    let server = TestServer::start();
    let port = server.port;
    server.stop();
    let output = oneshot(port, &["PING"]);
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "");
    let message = stderr(&output);
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("Is kv-server running"), "{message}");
}

#[test]
fn a_word_holding_a_space_is_refused_with_exit_1_and_nothing_is_sent() {
    let server = TestServer::start();
    let _ = oneshot(server.port, &["CREATE", "b"]);
    let output = oneshot(server.port, &["PUT", "b", "k", "two words"]);
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("two words"), "{}", stderr(&output));
    let after = oneshot(server.port, &["GET", "b", "k"]);
    assert_eq!(stdout(&after), "\nOK\n", "the PUT was not sent");
    server.stop();
}

#[test]
fn the_password_comes_from_kv_password() {
    let server = TestServer::with_password("s3cret");
    let mut command = kv_cli(server.port);
    command.env("KV_PASSWORD", "s3cret").arg("PING");
    let output = run(command, b"");
    assert_pong(&output);
    server.stop();
}

#[test]
fn the_password_comes_from_a_file_as_the_servers_does() {
    let server = TestServer::with_password("s3cret");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("password");
    std::fs::write(&file, "\u{feff}s3cret\nignored\n").expect("write the file");
    let mut command = kv_cli(server.port);
    command.arg("--password-file").arg(&file).arg("PING");
    let output = run(command, b"");
    assert_pong(&output);

    let mut missing = kv_cli(server.port);
    missing
        .arg("--password-file")
        .arg(dir.path().join("none"))
        .arg("PING");
    let output = run(missing, b"");
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("none"), "{}", stderr(&output));
    server.stop();
}

#[test]
fn without_the_password_a_health_check_exits_2_and_says_how_to_give_it() {
    let server = TestServer::with_password("s3cret");
    let output = oneshot(server.port, &["PING"]);
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "ERROR NOAUTH authentication required\n");
    assert!(
        stderr(&output).contains("KV_PASSWORD"),
        "{}",
        stderr(&output)
    );
    server.stop();
}

#[test]
fn a_wrong_password_exits_2_naming_where_the_password_came_from() {
    let server = TestServer::with_password("s3cret");
    let mut command = kv_cli(server.port);
    command.env("KV_PASSWORD", "guess").arg("PING");
    let output = run(command, b"");
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "");
    let message = stderr(&output);
    assert!(message.contains("WRONGPASS"), "{message}");
    assert!(message.contains("KV_PASSWORD"), "{message}");
    assert!(
        !message.contains("guess"),
        "the password is never printed: {message}"
    );
    server.stop();
}

#[test]
fn dash_r_repeats_the_request_dash_i_apart() {
    let server = TestServer::start();
    let output = oneshot(server.port, &["-r", "3", "-i", "0.05", "PING"]);
    assert_eq!(
        (code(&output), stdout(&output)),
        (0, "PONG\nPONG\nPONG\n".into())
    );
    server.stop();
}

#[test]
fn help_is_long_only_since_dash_h_is_the_host() {
    let mut command = kv_cli(1);
    command.arg("--help");
    let help = run(command, b"");
    assert_eq!(code(&help), 0);
    assert!(stdout(&help).contains("KV_PASSWORD"), "{}", stdout(&help));
    // --completions takes no other flag: run it bare.
    let mut bare = std::process::Command::new(env!("CARGO_BIN_EXE_kv-cli"));
    bare.args(["--completions", "bash"]);
    let completions = run(bare, b"");
    assert_eq!(code(&completions), 0, "{}", stderr(&completions));
    assert!(stdout(&completions).contains("kv-cli"));
}
