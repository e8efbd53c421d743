//! Logging never changes behaviour (docs/OPERATIONS.md, "Behaviour under failure"): when stderr breaks
//! — its reader exits, or its file's disk is full — log lines are lost and nothing else
//! changes: signals, the acceptor's back-off, durable writes and replies work as they do
//! with a working stderr.

pub mod common;

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{ask, proc, temp_dir, Client, SmallDisk, TestServer, PATIENCE};

#[test]
fn with_its_stderr_reader_gone_the_server_answers_and_sigterm_exits_zero() {
    let mut server = TestServer::builder()
        .args(["--shutdown-timeout-secs", "5"])
        .close_stderr_after_port_line()
        .start();
    let mut client = server.connect();
    ask(&mut client, b"PING\r\n", b"PONG\r\n");
    server.signal(libc::SIGTERM);
    let status = server.expect_exit(PATIENCE);
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
}

#[test]
fn with_its_stderr_reader_gone_a_second_signal_still_exits_at_once() {
    let mut server = TestServer::builder()
        .args(["--debug-commands", "--shutdown-timeout-secs", "60"])
        .close_stderr_after_port_line()
        .start();
    let mut busy = server.connect();
    ask(&mut busy, b"PING\r\n", b"PONG\r\n");
    busy.send(b"DEBUG SLEEP 60000\r\n");
    thread::sleep(Duration::from_millis(500));

    server.signal(libc::SIGINT);
    // No log line to wait for: a refused connect shows the graceful shutdown has begun.
    wait_until_connects_are_refused(&server);
    assert!(
        server.is_running(),
        "the first signal should wait for the busy client"
    );
    server.signal(libc::SIGTERM);
    let status = server.expect_exit(PATIENCE);
    assert_eq!(
        status.code(),
        Some(130),
        "a second signal exits at once with 130, got {status}"
    );
}

#[test]
fn with_its_stderr_reader_gone_running_out_of_descriptors_backs_off_and_recovers() {
    const NOFILE: usize = 48;
    let mut server = TestServer::builder()
        .wrapped_in(["/usr/bin/prlimit", &format!("--nofile={NOFILE}:{NOFILE}")])
        .close_stderr_after_port_line()
        .start();
    let mut early = server.connect();
    ask(&mut early, b"PING\r\n", b"PONG\r\n");

    // More clients than descriptors: the kernel completes the handshakes (backlog), the
    // server's accept(2) fails with EMFILE — which it logs, to the broken stderr.
    let crowd: Vec<Client> = (0..80).map(|_| server.connect()).collect();
    let deadline = Instant::now() + PATIENCE;
    let mut ran_out = false;
    while !ran_out && server.is_running() && Instant::now() < deadline {
        ran_out = proc::open_fds(server.pid()) >= NOFILE;
        thread::sleep(Duration::from_millis(20));
    }
    // Several rounds of back-off (10 ms doubling).
    thread::sleep(Duration::from_secs(1));
    assert!(
        server.is_running(),
        "the server exited when out of descriptors: {:?}",
        server.wait_exit(Duration::ZERO)
    );
    assert!(ran_out, "the server never ran out of descriptors");
    ask(&mut early, b"PING\r\n", b"PONG\r\n");

    // Descriptors come back when the crowd leaves; new clients are served again.
    drop(crowd);
    let mut later = server.connect();
    ask(&mut later, b"PING\r\n", b"PONG\r\n");
    ask(&mut early, b"PING\r\n", b"PONG\r\n");
    server.signal(libc::SIGTERM);
    assert!(server.expect_exit(PATIENCE).success());
}

#[test]
fn with_stderr_on_the_disk_that_fills_a_durable_write_gets_disk_full_and_writes_recover() {
    let dir = temp_dir("log-on-full-disk");
    let Some(disk) = SmallDisk::mount(dir.path(), "4m") else {
        return;
    };
    let data = dir.path().join("data");
    let log = dir.path().join("stderr.log");
    let filler = dir.path().join("filler");
    let mut server = TestServer::builder()
        .args(["--data-dir", data.to_str().expect("utf-8")])
        .stderr_to_file(&log)
        .start();
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b kept value\r\n", b"OK\r\n");

    fill_to_the_last_byte(&filler);
    // The log file too: otherwise the page its last line is in has room for a few more.
    fill_to_the_last_byte(&log);
    assert_eq!(put_until_refused(&mut c), "ERROR disk full\r\n");
    ask(&mut c, b"GET b kept\r\n", b"value\r\nOK\r\n");
    assert_still_locked(&data);

    std::fs::remove_file(&filler).expect("remove filler");
    ask(&mut c, b"PUT b after space-returned\r\n", b"OK\r\n");
    ask(&mut c, b"GET b after\r\n", b"space-returned\r\nOK\r\n");
    assert_still_locked(&data);
    // Logging works again too.
    server.wait_for_log("writes succeed again", PATIENCE);

    server.signal(libc::SIGTERM);
    assert!(server.expect_exit(PATIENCE).success());
    // The server (and the harness's reader of its log file) let go of the mount first.
    drop(server);
    drop(disk);
}

#[test]
fn with_its_stderr_reader_gone_a_durable_write_gets_disk_full_and_the_store_keeps_its_lock() {
    let dir = temp_dir("log-reader-gone-full-disk");
    let Some(disk) = SmallDisk::mount(dir.path(), "4m") else {
        return;
    };
    let data = dir.path().join("data");
    let filler = dir.path().join("filler");
    let mut server = TestServer::builder()
        .args(["--data-dir", data.to_str().expect("utf-8")])
        .close_stderr_after_port_line()
        .start();
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b kept value\r\n", b"OK\r\n");

    // A failed write is what the durable store logs, from its committer thread.
    fill_to_the_last_byte(&filler);
    assert_eq!(put_until_refused(&mut c), "ERROR disk full\r\n");
    assert_still_locked(&data);

    std::fs::remove_file(&filler).expect("remove filler");
    ask(&mut c, b"PUT b after space-returned\r\n", b"OK\r\n");
    ask(&mut c, b"GET b after\r\n", b"space-returned\r\nOK\r\n");
    assert_still_locked(&data);

    server.signal(libc::SIGTERM);
    assert!(server.expect_exit(PATIENCE).success());
    drop(server);
    drop(disk);
}

/// Waits until a connect to `server` is refused (its listener closed), or panics.
fn wait_until_connects_are_refused(server: &TestServer) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Client::connect(server.addr()) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            _ if Instant::now() >= deadline => {
                panic!("connects still accepted {PATIENCE:?} after the signal")
            }
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Appends lines to `path` until its disk is full.
fn fill_to_the_last_byte(path: &Path) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open a file to fill the disk with");
    let chunk = "filler\n".repeat(8 * 1024);
    while file.write_all(chunk.as_bytes()).is_ok() {}
    // A short write may have ended the last chunk mid-line; a byte at a time until full.
    while file.write_all(b"\n").is_ok() {}
}

/// PUTs 8 KB values until one is not answered `OK`; returns that reply.
fn put_until_refused(client: &mut Client) -> String {
    let value = "y".repeat(8 * 1024);
    for i in 0..2000 {
        client.send(format!("PUT b big{i} {value}\r\n").as_bytes());
        let reply = client.read_line();
        if reply != b"OK\r\n" {
            return String::from_utf8_lossy(&reply).into_owned();
        }
    }
    panic!("2000 PUTs of 8 KB were all OK on a full 4 MB disk");
}

/// A second server on `data` must be refused: the first still holds the directory.
fn assert_still_locked(data: &Path) {
    let second = TestServer::builder()
        .args(["--data-dir", data.to_str().expect("utf-8")])
        .run_to_exit(PATIENCE);
    assert!(
        !second.status.success()
            && second
                .stderr
                .contains("in use by another running kv-server"),
        "a second server on the same data dir must be refused as locked; status {}, stderr:\n{}",
        second.status,
        second.stderr
    );
}
