//! Backups of a running server (SPEC §17, docs/BACKUP.md): `BACKUP` over a real socket,
//! `kv-server restore` and `kv-server check` as an operator runs them, and what a backup
//! does to the server (consistency under writers, kill -9 mid-backup, a client that
//! leaves, memory). `kv-cli --backup`'s side is in kv-cli's tests.

pub mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::disk::arg;
use common::proc::{status_field, thread_names};
use common::{ask, temp_dir, Client, TestServer, PATIENCE};
use kv_store::backup::Reader;

/// Reads the backup answering `BACKUP` on `stream` until its end record; what arrives
/// after `pause` per piece read (a slow client: the writers overtake it).
fn receive(stream: &mut TcpStream, pause: Duration) -> Vec<u8> {
    stream.write_all(b"BACKUP\r\n").expect("send BACKUP");
    let mut reader = Reader::new();
    let mut bytes = Vec::new();
    let mut piece = vec![0u8; 64 << 10];
    while !reader.is_complete() {
        let n = stream.read(&mut piece).expect("read the backup");
        assert!(n > 0, "the server closed after {} bytes", bytes.len());
        reader
            .feed(&piece[..n])
            .expect("the backup checks out as it arrives");
        bytes.extend_from_slice(&piece[..n]);
        thread::sleep(pause);
    }
    bytes
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

/// `kv-server` run as a tool (`restore`, `check`), to its end.
fn tool(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_kv-server"))
        .args(args)
        .output()
        .expect("run kv-server");
    output
}

fn restore(file: &Path, dir: &Path) {
    let output = tool(&["restore", arg(file), "--data-dir", arg(dir)]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `kv-server check` passes the data directory `data`; then a server on it.
fn check_and_serve(data: &Path) -> TestServer {
    let check = tool(&["check", "--data-dir", arg(data)]);
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{said}");
    TestServer::start(&["--data-dir", arg(data)])
}

/// Loads `keys` keys of `value_len` bytes into bucket `b`, pipelined.
fn load(c: &mut Client, keys: usize, value_len: usize) {
    ask(c, b"CREATE b\r\n", b"OK\r\n");
    let value = "v".repeat(value_len);
    for chunk in (0..keys).collect::<Vec<_>>().chunks(500) {
        let mut batch = String::new();
        for k in chunk {
            batch.push_str(&format!("PUT b k{k} {value}{k}\r\n"));
        }
        c.send(batch.as_bytes());
        c.expect(&b"OK\r\n".repeat(chunk.len()));
    }
}

/// SPEC §17: the state at one moment in commit order, holding every write acknowledged
/// before the backup started and, for each connection, a prefix of its writes. Writers
/// keep writing (each its own counter: `PUT w n`, one after the other) while a slow client
/// takes the backup; the restored copy must hold, for each writer, a value no lower than
/// what it had acknowledged when the backup was asked for. (Per-key prefixes under every
/// kind of change are in kv-store's `a_frozen_view_holds_a_prefix_of_every_writers_writes`.)
#[test]
fn a_backup_under_writers_holds_what_was_acknowledged_before_it_and_restores() {
    const WRITERS: usize = 4;
    let dir = temp_dir("backup-writers");
    let data = dir.path().join("data");
    let server = TestServer::start(&["--data-dir", arg(&data)]);
    let mut c = server.connect();
    load(&mut c, 20_000, 100);
    for w in 0..WRITERS {
        ask(&mut c, format!("CREATE w{w}\r\n").as_bytes(), b"OK\r\n");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (stop, acked, addr) = (Arc::clone(&stop), Arc::clone(&acked), server.addr());
            thread::spawn(move || {
                let mut c = Client::connect(addr).expect("connect");
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    ask(
                        &mut c,
                        format!("PUT w{w} counter {n}\r\n").as_bytes(),
                        b"OK\r\n",
                    );
                    acked[w].store(n, Ordering::Release);
                }
            })
        })
        .collect();
    while acked.iter().any(|a| a.load(Ordering::Acquire) < 20) {
        thread::sleep(Duration::from_millis(5));
    }
    let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
    let bytes = receive(&mut connect(server.addr()), Duration::from_millis(1));
    let after: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("writer");
    }
    server.stop();

    let file = dir.path().join("backup.kvb");
    std::fs::write(&file, &bytes).expect("write");
    let restored = dir.path().join("restored");
    restore(&file, &restored);
    let server = TestServer::start(&["--data-dir", arg(&restored)]);
    let mut c = server.connect();
    for w in 0..WRITERS {
        c.send(format!("GET w{w} counter\r\n").as_bytes());
        let line = String::from_utf8_lossy(&c.read_line())
            .trim_end()
            .to_string();
        c.expect(b"OK\r\n");
        let held: u64 = line
            .parse()
            .unwrap_or_else(|_| panic!("writer {w}: {line:?}"));
        assert!(
            (before[w]..=after[w]).contains(&held),
            "writer {w}: the backup holds {held}, acknowledged {} before it and {} by its end",
            before[w],
            after[w]
        );
    }
    ask(
        &mut c,
        b"GET b k19999\r\n",
        format!("{}19999\r\nOK\r\n", "v".repeat(100)).as_bytes(),
    );
}

/// A memory-mode server's backup, restored, serves the same answers in durable mode.
#[test]
fn a_memory_mode_backup_restores_into_durable_mode_with_identical_gets() {
    let dir = temp_dir("backup-memory");
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    load(&mut c, 2_000, 10);
    ask(&mut c, b"CREATE empty\r\n", b"OK\r\n");
    ask(&mut c, b"DELETE b k5\r\n", b"OK\r\n");
    let mut gets = String::new();
    for k in 0..2_001 {
        gets.push_str(&format!("GET b k{k}\r\n"));
    }
    gets.push_str("PUT empty k v\r\nGET nothere k\r\n");
    c.send(gets.as_bytes());
    let expected = read_replies(&mut c, 2_003);
    let bytes = receive(&mut connect(server.addr()), Duration::ZERO);
    server.stop();

    let file = dir.path().join("memory.kvb");
    std::fs::write(&file, &bytes).expect("write");
    let check = tool(&["check", "--backup", arg(&file)]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.contains("2 bucket(s), 2000 key(s)"), "{said}");
    let data = dir.path().join("data");
    restore(&file, &data);
    let server = check_and_serve(&data);
    let mut c = server.connect();
    c.send(gets.as_bytes());
    assert_eq!(read_replies(&mut c, 2_003), expected);
}

/// The next `n` replies' bytes (GET: two lines; PUT: one).
fn read_replies(c: &mut Client, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let mut reply = c.read_line();
            if reply != b"OK\r\n" && reply != b"NOT FOUND\r\n" {
                reply.extend(c.read_line());
            }
            reply
        })
        .collect()
}

/// kill -9 while a backup streams: the data directory is as healthy as after any kill.
#[test]
fn kill_9_mid_backup_leaves_a_healthy_server_after_restart() {
    let dir = temp_dir("backup-kill");
    let data = dir.path().join("data");
    let server = TestServer::start(&["--data-dir", arg(&data)]);
    let mut c = server.connect();
    load(&mut c, 20_000, 200);
    let mut backup = connect(server.addr());
    backup.write_all(b"BACKUP\r\n").expect("send");
    let mut first = [0u8; 4096];
    backup.read_exact(&mut first).expect("the backup has begun");
    server.signal(libc::SIGKILL);
    drop(server);

    let server = check_and_serve(&data);
    let mut c = server.connect();
    ask(
        &mut c,
        b"GET b k12345\r\n",
        format!("{}12345\r\nOK\r\n", "v".repeat(200)).as_bytes(),
    );
    // And it takes backups again.
    let bytes = receive(&mut connect(server.addr()), Duration::ZERO);
    let mut reader = Reader::new();
    reader.feed(&bytes).expect("checks out");
    assert_eq!(reader.finish().expect("whole").keys, 20_000);
}

/// Sends `BACKUP` (after `AUTH pw`) until one starts: a backup whose client just left
/// ends when its writing thread next finds nobody to take its frames, and until then
/// another is refused. The stream, and the backup's first byte.
fn begin_backup(addr: SocketAddr) -> (TcpStream, u8) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut stream = connect(addr);
        stream.write_all(b"AUTH pw\r\nBACKUP\r\n").expect("send");
        let mut ok = [0u8; 4];
        stream.read_exact(&mut ok).expect("AUTH's OK");
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).expect("a reply");
        if first[0] != b'E' {
            return (stream, first[0]);
        }
        assert!(std::time::Instant::now() < deadline, "backups stay refused");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A client that leaves mid-backup (a reset) stops it; the server goes on and takes the
/// next; a line sent during a backup ends it; `BACKUP` needs `AUTH` like all else.
#[test]
fn a_client_leaving_mid_backup_harms_nothing() {
    let server = TestServer::start(&["--requirepass", "pw"]);
    let mut c = server.connect();
    ask(
        &mut c,
        b"BACKUP\r\n",
        b"ERROR NOAUTH authentication required\r\n",
    );
    ask(&mut c, b"AUTH pw\r\n", b"OK\r\n");
    load(&mut c, 20_000, 200);
    let mut leaving = Client::connect(server.addr()).expect("connect");
    ask(&mut leaving, b"AUTH pw\r\n", b"OK\r\n");
    leaving.send(b"BACKUP\r\n");
    let _ = leaving.read_exactly(1 << 16);
    leaving.reset();

    let (mut chatty, _) = begin_backup(server.addr());
    let mut some = vec![0u8; 1 << 16];
    chatty.read_exact(&mut some).expect("more of the backup");
    chatty
        .write_all(b"PING\r\n")
        .expect("a line during the backup");
    let mut rest = Vec::new();
    let _ = chatty.read_to_end(&mut rest);
    assert!(
        !rest.ends_with(b"PONG\r\n"),
        "a line during a backup is not answered"
    );

    ask(&mut c, b"PUT b k1 changed\r\n", b"OK\r\n");
    let (mut stream, first) = begin_backup(server.addr());
    let mut reader = Reader::new();
    reader.feed(&[first]).expect("begins");
    let mut piece = vec![0u8; 64 << 10];
    while !reader.is_complete() {
        let n = stream.read(&mut piece).expect("read");
        assert!(n > 0, "closed mid-backup");
        reader.feed(&piece[..n]).expect("checks out");
    }
    assert_eq!(reader.finish().expect("whole").keys, 20_000);
    // And the connection is back to requests.
    stream.write_all(b"PING\r\n").expect("send");
    let mut pong = [0u8; 6];
    stream.read_exact(&mut pong).expect("PONG");
    assert_eq!(&pong, b"PONG\r\n");
    c.send(b"INFO stats\r\n");
    let report = c.read_report();
    let started: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("backups_started:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(started >= 3, "{report}");
}

/// SPEC §17: memory stays bounded during a backup whatever the data's size: a backup of
/// ~100 MiB read by a slow client grows the server by a few MiB, not by the data. Over
/// plain TCP it is written by a thread of its own (line-server's hand-off), not pushed by
/// the event loop through the writing thread TLS uses.
#[test]
fn a_backup_of_a_large_store_keeps_the_server_within_a_few_mib() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    load(&mut c, 100_000, 1_000);
    let baseline = status_field(server.pid(), "VmRSS");
    let mut stream = connect(server.addr());
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (watching, pid) = (Arc::clone(&watching), server.pid());
        thread::spawn(move || {
            let (mut peak, mut seen) = (0, BTreeSet::new());
            while watching.load(Ordering::Relaxed) {
                peak = peak.max(status_field(pid, "VmRSS"));
                seen.extend(thread_names(pid));
                thread::sleep(Duration::from_millis(5));
            }
            (peak, seen)
        })
    };
    let bytes = receive(&mut stream, Duration::from_micros(200));
    watching.store(false, Ordering::Relaxed);
    let (peak, threads) = watcher.join().expect("watcher");
    assert!(threads.contains("line-handoff"), "{threads:?}");
    assert!(!threads.contains("kv-backup"), "{threads:?}");
    assert!(bytes.len() > 100_000_000, "{} bytes", bytes.len());
    let grown_mib = peak.saturating_sub(baseline) / 1024;
    assert!(
        grown_mib <= 64,
        "a backup of {} MiB grew the server by {grown_mib} MiB (RSS {baseline} KiB -> {peak} KiB)",
        bytes.len() >> 20
    );
}

/// The tools as an operator meets their refusals: exit status 1, a message naming what is
/// wrong, nothing written.
#[test]
fn restore_and_check_refuse_with_status_1_and_say_why() {
    let dir = temp_dir("backup-refusals");
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    load(&mut c, 3_000, 50);
    let bytes = receive(&mut connect(server.addr()), Duration::ZERO);
    let file = dir.path().join("b.kvb");
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 2] ^= 0x20;
    std::fs::write(&file, &damaged).expect("write");
    let target = dir.path().join("target");
    let refused = tool(&["restore", arg(&file), "--data-dir", arg(&target)]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(
        said.contains("damaged at byte") && said.contains("nothing was written"),
        "{said}"
    );
    assert!(!target.exists());

    std::fs::write(&file, &bytes).expect("write");
    restore(&file, &target);
    let again = tool(&["restore", arg(&file), "--data-dir", arg(&target)]);
    let said = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{said}");
    assert!(said.contains("is not empty"), "{said}");

    let snapshot = target.join(format!("snapshot-{:020}.snap", 0));
    let mut on_disk = std::fs::read(&snapshot).expect("read");
    let at = on_disk.len() / 2;
    on_disk[at] ^= 1;
    std::fs::write(&snapshot, &on_disk).expect("write");
    let check = tool(&["check", "--data-dir", arg(&target)]);
    let said = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{said}");
    assert!(
        said.contains("snapshot-") && said.contains("byte"),
        "{said}"
    );
}
