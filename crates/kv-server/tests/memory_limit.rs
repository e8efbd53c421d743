//! `--maxmemory` (docs/SECURITY.md, "Memory limit"): growth past the limit is refused with
//! `ERROR out of memory` and changes nothing; reads, deletes and writes that do not grow
//! the data keep working, so a full server can be emptied; nothing is evicted; in durable
//! mode a refused write is never written to disk.

pub mod common;

use std::path::Path;

use common::{ask, Client, TestServer, PATIENCE};

const OOM: &[u8] = b"ERROR out of memory\r\n";

/// PUTs distinct 100-byte values until one is refused; the keys that got `OK`.
fn fill(client: &mut Client) -> Vec<String> {
    let value = "v".repeat(100);
    let mut stored = Vec::new();
    for i in 0..100_000 {
        let key = format!("k{i}");
        client.send(format!("PUT b {key} {value}\r\n").as_bytes());
        let reply = client.read_line();
        if reply == OOM {
            return stored;
        }
        assert_eq!(reply, b"OK\r\n", "{key}");
        stored.push(key);
    }
    panic!("100,000 PUTs of 100 bytes never reached the limit");
}

#[test]
fn a_full_server_refuses_growth_but_serves_reads_deletes_and_same_size_writes() {
    let server = TestServer::start(&["--maxmemory", "64kb"]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    let stored = fill(&mut c);
    assert!(stored.len() > 100, "{} keys fit in 64 KiB", stored.len());
    let value = "v".repeat(100);
    // Nothing was evicted, and the refused key is absent.
    for key in &stored {
        ask(
            &mut c,
            format!("GET b {key}\r\n").as_bytes(),
            format!("{value}\r\nOK\r\n").as_bytes(),
        );
    }
    ask(
        &mut c,
        format!("GET b k{}\r\n", stored.len()).as_bytes(),
        b"\r\nOK\r\n",
    );
    // Growth is refused: a new key, a longer value, a new bucket. (Less room is left than
    // one more 100-byte entry needs; these need more than that.)
    let big = "x".repeat(500);
    ask(&mut c, format!("PUT b brand-new {big}\r\n").as_bytes(), OOM);
    ask(&mut c, format!("PUT b k0 {big}\r\n").as_bytes(), OOM);
    ask(&mut c, b"CREATE other\r\n", OOM);
    // What does not grow the data still works: same size, smaller, an existing bucket.
    ask(
        &mut c,
        format!("PUT b k0 {}\r\n", "w".repeat(100)).as_bytes(),
        b"OK\r\n",
    );
    ask(&mut c, b"PUT b k1 short\r\n", b"OK\r\n");
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PING\r\n", b"PONG\r\n");
    // Deleting makes room again.
    for key in &stored[2..12] {
        ask(&mut c, format!("DELETE b {key}\r\n").as_bytes(), b"OK\r\n");
    }
    ask(
        &mut c,
        format!("PUT b brand-new {big}\r\n").as_bytes(),
        b"OK\r\n",
    );
}

#[test]
fn maxmemory_reads_units_and_the_environment_and_refuses_nonsense() {
    let by_env = TestServer::builder().env("KV_MAXMEMORY", "64KB").start();
    let mut c = by_env.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    let stored = fill(&mut c);
    // 64 KiB of 100-byte values and their bookkeeping: a few hundred, not thousands.
    assert!((100..640).contains(&stored.len()), "{}", stored.len());

    let run = TestServer::builder()
        .args(["--maxmemory", "lots"])
        .run_to_exit(PATIENCE);
    assert!(!run.status.success());
    assert!(run.stderr.contains("maxmemory"), "{}", run.stderr);
}

#[test]
fn in_durable_mode_a_refused_write_is_never_written_to_disk() {
    let dir = common::temp_dir("maxmemory");
    let data = dir.path().join("data");
    let start = |data: &Path| {
        TestServer::start(&[
            "--maxmemory",
            "64kb",
            "--data-dir",
            data.to_str().expect("utf-8"),
        ])
    };
    let mut server = start(&data);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    let stored = fill(&mut c);
    let refused = format!("k{}", stored.len());
    // Pipelined: the refused write answers for itself, the others keep their replies.
    c.send(b"DELETE b k0\r\nPUT b after-delete x\r\nPUT b too-much-now yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\nGET b after-delete\r\n");
    c.expect(b"OK\r\nOK\r\n");
    let third = c.read_line();
    assert!(third == b"OK\r\n" || third == OOM, "{third:?}");
    c.expect(b"x\r\nOK\r\n");
    server.signal(libc::SIGTERM);
    assert!(server.expect_exit(PATIENCE).success());

    let server = start(&data);
    let mut c = server.connect();
    ask(
        &mut c,
        format!("GET b {refused}\r\n").as_bytes(),
        b"\r\nOK\r\n",
    );
    ask(&mut c, b"GET b k0\r\n", b"\r\nOK\r\n");
    ask(&mut c, b"GET b after-delete\r\n", b"x\r\nOK\r\n");
    ask(
        &mut c,
        format!("GET b {}\r\n", stored[1]).as_bytes(),
        format!("{}\r\nOK\r\n", "v".repeat(100)).as_bytes(),
    );
    // The limit holds after a restart too: what is on disk is counted again.
    let big = "x".repeat(500);
    ask(
        &mut c,
        format!("PUT b another-new-key {big}\r\n").as_bytes(),
        OOM,
    );
}

#[test]
fn restarting_with_a_limit_below_the_stored_data_warns_and_still_serves() {
    let dir = common::temp_dir("maxmemory-lowered");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let mut server = TestServer::start(&["--data-dir", data]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(
        &mut c,
        format!("PUT b k {}\r\n", "v".repeat(4000)).as_bytes(),
        b"OK\r\n",
    );
    server.signal(libc::SIGTERM);
    assert!(server.expect_exit(PATIENCE).success());

    // A bucket alone counts about 3 KiB; the 4,000-byte value takes it past 4 KiB.
    let server = TestServer::start(&["--data-dir", data, "--maxmemory", "4kb"]);
    let warning = server.wait_for_log("more than --maxmemory", PATIENCE);
    assert_eq!(common::log_level(&warning), Some("WARN"), "{warning}");
    let mut c = server.connect();
    ask(&mut c, b"PUT b other x\r\n", OOM);
    ask(&mut c, b"DELETE b k\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b other x\r\n", b"OK\r\n");
}
