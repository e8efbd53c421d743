//! `kv-cli --backup FILE` (SPEC §17): the backup lands under FILE whole or not at all.
//! A fake server that sends part of a real backup, or a damaged one, shows what kv-cli does
//! when the connection ends or the bytes are wrong, exactly and without timing.

pub mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use common::{code, kv_cli, run, stderr, stdout, Running, TestServer, PATIENCE};

/// A server with two buckets and some keys, and its backup taken by kv-cli into `dir`.
fn real_backup(dir: &Path) -> (TestServer, PathBuf) {
    let server = TestServer::start();
    let mut script = String::from("CREATE shopping\nCREATE empty\n");
    for i in 0..3_000 {
        script.push_str(&format!(
            "PUT shopping item{i} {}\n",
            "x".repeat(i % 50 + 1)
        ));
    }
    let loaded = run(kv_cli(server.port), script.as_bytes());
    assert_eq!(code(&loaded), 0, "{}", stderr(&loaded));
    let file = dir.join("shopping.kvb");
    let mut command = kv_cli(server.port);
    command.args(["--backup", file.to_str().expect("utf-8 path")]);
    let output = run(command, b"");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("2 bucket(s), 3000 key(s)"),
        "{}",
        stdout(&output)
    );
    (server, file)
}

/// Everything in `dir`, by name.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A one-connection server that answers its first line with `bytes`, then closes (or, if
/// `hold`, keeps the connection open until the client goes).
fn fake_server(bytes: Vec<u8>, hold: bool) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let thread = std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut line = [0u8; 8];
        let _ = stream.read_exact(&mut line); // "BACKUP\r\n"
        let _ = stream.write_all(&bytes);
        if hold {
            let _ = stream.read(&mut line); // until kv-cli is gone
        }
    });
    (addr, thread)
}

fn backup_from(addr: SocketAddr, file: &Path) -> std::process::Command {
    let mut command = kv_cli(addr.port());
    command.args(["--backup", file.to_str().expect("utf-8 path")]);
    command
}

#[test]
fn a_backup_is_written_whole_and_checks_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, file) = real_backup(dir.path());
    let summary = kv_store::backup::verify(&file).expect("a whole backup");
    assert_eq!((summary.buckets, summary.keys), (2, 3_000));
    assert_eq!(
        listing(dir.path()),
        ["shopping.kvb"],
        "no partial file is left"
    );
}

#[test]
fn a_connection_lost_mid_backup_leaves_no_file_and_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, file) = real_backup(dir.path());
    let whole = std::fs::read(&file).expect("read");
    let (addr, fake) = fake_server(whole[..whole.len() / 2].to_vec(), false);
    let target = dir.path().join("cut.kvb");
    let output = run(backup_from(addr, &target), b"");
    fake.join().expect("fake server");
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("before the backup was whole"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        listing(dir.path()),
        ["shopping.kvb"],
        "neither cut.kvb nor a partial file"
    );
}

#[test]
fn a_damaged_backup_is_refused_and_leaves_no_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, file) = real_backup(dir.path());
    let mut damaged = std::fs::read(&file).expect("read");
    let at = damaged.len() / 3;
    damaged[at] ^= 0x40;
    let (addr, fake) = fake_server(damaged, false);
    let output = run(backup_from(addr, &dir.path().join("bad.kvb")), b"");
    fake.join().expect("fake server");
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("arrived damaged"),
        "{}",
        stderr(&output)
    );
    assert_eq!(listing(dir.path()), ["shopping.kvb"]);
}

#[test]
fn killed_mid_backup_kv_cli_leaves_nothing_under_the_files_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, file) = real_backup(dir.path());
    let whole = std::fs::read(&file).expect("read");
    let half = whole[..whole.len() / 2].to_vec();
    let (addr, fake) = fake_server(half.clone(), true);
    let target = dir.path().join("killed.kvb");
    let mut running = Running::spawn(backup_from(addr, &target));
    // Wait until kv-cli has written what it was sent, aside.
    let deadline = std::time::Instant::now() + PATIENCE;
    let partial = loop {
        let written = listing(dir.path())
            .into_iter()
            .find(|name| name.starts_with(".killed.kvb.partial-"));
        if let Some(name) = written {
            let path = dir.path().join(name);
            if std::fs::metadata(&path).is_ok_and(|m| m.len() == half.len() as u64) {
                break path;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kv-cli wrote nothing aside"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    running.0.kill().expect("kill -9 kv-cli");
    running.0.wait().expect("reap");
    fake.join().expect("fake server");
    assert!(!target.exists(), "a partial backup under the file's name");
    assert!(
        partial.exists(),
        "what was written stays aside, under its own name"
    );
}

#[test]
fn interrupted_kv_cli_removes_its_partial_file_and_a_refusal_is_printed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, file) = real_backup(dir.path());
    let whole = std::fs::read(&file).expect("read");
    let (addr, fake) = fake_server(whole[..100].to_vec(), true);
    let running = Running::spawn(backup_from(addr, &dir.path().join("stopped.kvb")));
    let deadline = std::time::Instant::now() + PATIENCE;
    while !listing(dir.path()).iter().any(|n| n.contains("partial")) {
        assert!(
            std::time::Instant::now() < deadline,
            "kv-cli wrote nothing aside"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    running.interrupt();
    let output = running.finish();
    fake.join().expect("fake server");
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(
        listing(dir.path()),
        ["shopping.kvb"],
        "the partial file is removed"
    );

    let (addr, fake) = fake_server(b"ERROR a backup is already running\r\n".to_vec(), false);
    let output = run(backup_from(addr, &dir.path().join("refused.kvb")), b"");
    fake.join().expect("fake server");
    assert_eq!(code(&output), 1);
    assert_eq!(stdout(&output), "ERROR a backup is already running\n");
    assert_eq!(listing(dir.path()), ["shopping.kvb"]);
}

#[test]
fn behind_a_password_the_backup_needs_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::with_password("s3cret");
    let file = dir.path().join("b.kvb");
    let mut without = kv_cli(server.port);
    without.args(["--backup", file.to_str().expect("utf-8")]);
    let output = run(without, b"");
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("ERROR NOAUTH"),
        "{}",
        stdout(&output)
    );
    let mut with = kv_cli(server.port);
    with.args(["--backup", file.to_str().expect("utf-8")])
        .env("KV_PASSWORD", "s3cret");
    let output = run(with, b"");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(file.exists());
}
