//! Safe to expose (PROTOCOL.md, "Security"): a password clients must `AUTH` with, its file
//! and environment forms, protected mode's start-up warning. The replies' rules are unit
//! tested in line-server's auth.rs (also for a client that is not on loopback, which a
//! loopback-only test cannot be), and the warning for a bind beyond loopback in main.rs;
//! here the real binary, over the wire, with exact bytes.

pub mod common;

use std::time::Duration;

use common::{ask, TestServer, PATIENCE};

const NOAUTH: &[u8] = b"ERROR NOAUTH authentication required\r\n";
const WRONGPASS: &[u8] = b"ERROR WRONGPASS invalid password\r\n";

#[test]
fn with_a_password_nothing_but_quit_is_served_before_auth() {
    let server = TestServer::start(&["--requirepass", "s3cret"]);
    let mut c = server.connect();
    ask(&mut c, b"PING\r\n", NOAUTH);
    ask(&mut c, b"CREATE b\r\n", NOAUTH);
    ask(&mut c, b"GET b k\r\n", NOAUTH);
    ask(&mut c, b"AUTH wrong\r\n", WRONGPASS);
    ask(&mut c, b"auth s3cret\r\n", b"OK\r\n");
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b k v\r\n", b"OK\r\n");
    ask(&mut c, b"GET b k\r\n", b"v\r\nOK\r\n");

    let mut quitter = server.connect();
    ask(&mut quitter, b"QUIT\r\n", b"OK\r\n");
    quitter.expect_eof();
}

#[test]
fn the_third_wrong_password_closes_the_connection() {
    let server = TestServer::start(&["--requirepass", "s3cret"]);
    let mut c = server.connect();
    ask(&mut c, b"AUTH a\r\n", WRONGPASS);
    ask(&mut c, b"AUTH b\r\n", WRONGPASS);
    c.send(b"AUTH c\r\n");
    c.expect(WRONGPASS);
    c.expect_eof();
    // Others are not affected, and a new connection starts with three tries again.
    let mut again = server.connect();
    ask(&mut again, b"AUTH a\r\n", WRONGPASS);
    ask(&mut again, b"AUTH s3cret\r\n", b"OK\r\n");
}

#[test]
fn auth_without_a_password_set_says_so_in_both_modes() {
    let kv = TestServer::start(&[]);
    ask(
        &mut kv.connect(),
        b"AUTH x\r\n",
        b"ERROR AUTH no password is set\r\n",
    );
    let echo = TestServer::echo(&[]);
    let mut c = echo.connect();
    ask(&mut c, b"AUTH x\r\n", b"ERROR AUTH no password is set\r\n");
    c.echo(b"other lines are echoed\r\n");
}

#[test]
fn echo_mode_is_behind_the_password_too() {
    let server = TestServer::echo(&["--requirepass", "s3cret"]);
    let mut c = server.connect();
    ask(&mut c, b"hello\r\n", NOAUTH);
    ask(&mut c, b"AUTH s3cret\r\n", b"OK\r\n");
    c.echo(b"hello\r\n");
}

#[test]
fn the_password_can_come_from_a_file_or_the_environment() {
    let dir = common::temp_dir("password");
    let file = dir.path().join("password");
    std::fs::write(&file, "from-file\nignored second line\n").expect("write");
    let path = file.to_str().expect("utf-8");
    let by_file = TestServer::start(&["--requirepass-file", path]);
    ask(&mut by_file.connect(), b"AUTH from-file\r\n", b"OK\r\n");
    let by_env_file = TestServer::builder()
        .env("KV_REQUIREPASS_FILE", path)
        .start();
    ask(&mut by_env_file.connect(), b"AUTH from-file\r\n", b"OK\r\n");
    // Saved by an editor as "UTF-8 with BOM", with Windows line ends.
    let with_bom = dir.path().join("with-bom");
    std::fs::write(&with_bom, "\u{feff}from-notepad\r\n").expect("write");
    let by_bom_file = TestServer::start(&["--requirepass-file", with_bom.to_str().expect("utf-8")]);
    ask(
        &mut by_bom_file.connect(),
        b"AUTH from-notepad\r\n",
        b"OK\r\n",
    );
    let by_env = TestServer::builder()
        .env("KV_REQUIREPASS", "from-env")
        .start();
    let mut c = by_env.connect();
    ask(&mut c, b"AUTH from-file\r\n", WRONGPASS);
    ask(&mut c, b"AUTH from-env\r\n", b"OK\r\n");
}

#[test]
fn an_unreadable_empty_or_unsendable_password_stops_start_up() {
    let dir = common::temp_dir("bad-password");
    let missing = dir.path().join("missing");
    let run = TestServer::builder()
        .args(["--requirepass-file", missing.to_str().expect("utf-8")])
        .run_to_exit(PATIENCE);
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("cannot read the password file"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("Accepting connections"),
        "{}",
        run.stderr
    );

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let run = TestServer::builder()
        .args(["--requirepass-file", empty.to_str().expect("utf-8")])
        .run_to_exit(PATIENCE);
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("the password is empty"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_password_never_reaches_the_log() {
    let server = TestServer::builder()
        .args(["--requirepass", "hunter2-secret"])
        .env("RUST_LOG", "debug")
        .start();
    let mut c = server.connect();
    ask(&mut c, b"AUTH wrong-guess\r\n", WRONGPASS);
    ask(&mut c, b"AUTH hunter2-secret\r\n", b"OK\r\n");
    c.send(b"QUIT\r\n");
    c.expect(b"OK\r\n");
    c.expect_eof();
    std::thread::sleep(Duration::from_millis(200));
    for line in server.logs() {
        assert!(!line.contains("hunter2"), "{line}");
        assert!(!line.contains("wrong-guess"), "{line}");
    }
}
