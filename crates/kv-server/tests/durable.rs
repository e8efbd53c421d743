//! Durable mode (docs/DURABILITY.md, "Durable mode"): `--data-dir` keeps every acknowledged write,
//! across clean restarts, `kill -9` at any instant, and a full disk. Directories of other
//! format versions are in `format_versions.rs`.

pub mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::disk::arg;
use common::{ask, temp_dir, SmallDisk, TestServer, PATIENCE};
use tempfile::TempDir;

fn durable(dir: &TempDir) -> TestServer {
    TestServer::start(&["--data-dir", arg(dir.path())])
}

#[test]
fn keys_and_buckets_survive_a_clean_restart() {
    let dir = temp_dir("restart");
    let server = durable(&dir);
    let mut c = server.connect();
    ask(&mut c, b"CREATE shopping\r\n", b"OK\r\n");
    ask(&mut c, b"CREATE empty\r\n", b"OK\r\n");
    ask(&mut c, b"PUT shopping milk 1\r\n", b"OK\r\n");
    ask(&mut c, b"PUT shopping eggs 3\r\n", b"OK\r\n");
    ask(&mut c, b"PUT shopping milk 2\r\n", b"OK\r\n");
    ask(&mut c, b"DELETE shopping eggs\r\n", b"OK\r\n");
    server.stop();

    let server = durable(&dir);
    let mut c = server.connect();
    ask(&mut c, b"GET shopping milk\r\n", b"2\r\nOK\r\n");
    ask(&mut c, b"GET shopping eggs\r\n", b"\r\nOK\r\n");
    // The empty bucket exists: PUT is OK, not NOT FOUND.
    ask(&mut c, b"GET empty k\r\n", b"\r\nOK\r\n");
    ask(&mut c, b"GET never-created k\r\n", b"NOT FOUND\r\n");
}

#[test]
fn an_empty_or_missing_data_dir_starts_an_empty_store() {
    let dir = temp_dir("empty");
    let nested = dir.path().join("not/yet/there");
    let server = TestServer::start(&["--data-dir", nested.to_str().expect("utf-8")]);
    ask(&mut server.connect(), b"GET b k\r\n", b"NOT FOUND\r\n");
    let server2 = durable(&dir);
    ask(&mut server2.connect(), b"GET b k\r\n", b"NOT FOUND\r\n");
}

#[test]
fn a_data_dir_that_cannot_be_created_stops_start_up_saying_so() {
    let dir = temp_dir("uncreatable");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let under_a_file = file.join("data");
    let run = TestServer::builder()
        .args(["--data-dir", under_a_file.to_str().expect("utf-8")])
        .run_to_exit(PATIENCE);
    assert!(!run.status.success());
    assert!(run.stderr.contains("cannot be created"), "{}", run.stderr);
    // Nothing was there to lose: no advice meant for a damaged directory.
    assert!(!run.stderr.contains("backup"), "{}", run.stderr);
}

#[test]
fn a_data_dir_that_is_a_file_stops_start_up_saying_it_is_not_a_directory() {
    let dir = temp_dir("a-file");
    let file = dir.path().join("passwd");
    std::fs::write(&file, b"root:x:0:0\n").expect("write");
    let run = TestServer::builder()
        .args(["--data-dir", arg(&file)])
        .run_to_exit(PATIENCE);
    assert!(!run.status.success());
    assert!(run.stderr.contains("is not a directory"), "{}", run.stderr);
    assert!(!run.stderr.contains("File exists"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(&file).expect("read"),
        b"root:x:0:0\n",
        "the file is left as it was"
    );
}

#[test]
fn the_data_dir_env_var_enables_durable_mode() {
    let dir = temp_dir("env");
    let server = TestServer::builder()
        .env("KV_DATA_DIR", arg(dir.path()))
        .start();
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b k v\r\n", b"OK\r\n");
    server.stop();
    let server = durable(&dir);
    ask(&mut server.connect(), b"GET b k\r\n", b"v\r\nOK\r\n");
}

#[test]
fn a_data_dir_held_by_another_server_is_refused_at_start() {
    let dir = temp_dir("lock");
    let _holder = durable(&dir);
    let second = TestServer::builder()
        .args(["--data-dir", arg(dir.path())])
        .run_to_exit(PATIENCE);
    assert!(!second.status.success());
    assert!(
        second
            .stderr
            .contains("in use by another running kv-server"),
        "{}",
        second.stderr
    );
    assert!(
        !second.stderr.contains("Accepting connections"),
        "{}",
        second.stderr
    );
}

#[test]
fn a_corrupted_data_dir_stops_start_up_with_a_clear_message() {
    let dir = temp_dir("corrupt");
    let server = durable(&dir);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    for i in 0..200 {
        ask(
            &mut c,
            format!("PUT b key{i} value{i}\r\n").as_bytes(),
            b"OK\r\n",
        );
    }
    server.stop();
    // Damage in the middle of the journal: acknowledged writes follow it.
    let journal = std::fs::read_dir(dir.path())
        .expect("list the data dir")
        .map(|e| e.expect("dir entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .expect("a journal file");
    let mut bytes = std::fs::read(&journal).expect("read the journal");
    // Its frames, not the zeros preallocated after them.
    let frames_end = bytes.iter().rposition(|&b| b != 0).expect("frames");
    let middle = frames_end / 2;
    bytes[middle..middle + 8].fill(0xFF);
    std::fs::write(&journal, &bytes).expect("damage the journal");

    let run = TestServer::builder()
        .args(["--data-dir", arg(dir.path())])
        .run_to_exit(PATIENCE);
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("cannot be read safely") && run.stderr.contains("damaged at byte"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&journal).expect("reread"),
        bytes,
        "left as found"
    );
}

/// One writer of the crash test: PUTs distinct keys, `depth` per write (pipelined), until
/// the connection dies, recording which got `OK`. Every key it tried is in `attempted`.
fn crash_writer(
    port: u16,
    prefix: String,
    depth: usize,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    attempted: Arc<Mutex<HashMap<String, String>>>,
    stop: Arc<AtomicBool>,
) {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    for batch in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // `depth` PUTs in one write (a pipeline), then their `depth` replies.
        let writes: Vec<(String, String)> = (0..depth as u64)
            .map(|i| {
                let n = batch * depth as u64 + i;
                (format!("{prefix}-{n}"), format!("v{n}-{prefix}"))
            })
            .collect();
        attempted
            .lock()
            .expect("lock")
            .extend(writes.iter().cloned());
        let requests: String = writes
            .iter()
            .map(|(key, value)| format!("PUT crash {key} {value}\r\n"))
            .collect();
        if writer.write_all(requests.as_bytes()).is_err() {
            return;
        }
        for write in writes {
            let mut reply = String::new();
            match reader.read_line(&mut reply) {
                Ok(_) if reply == "OK\r\n" => acked.lock().expect("lock").push(write),
                Ok(0) | Err(_) => return,
                Ok(_) => panic!("unexpected reply to a PUT: {reply:?}"),
            }
        }
    }
}

/// Reads back `keys` in one pipelined batch; `None` for a missing key.
fn read_back(server: &TestServer, keys: &[String]) -> Vec<Option<String>> {
    let mut c = server.connect();
    let requests: String = keys.iter().map(|k| format!("GET crash {k}\r\n")).collect();
    let stream = c.stream().try_clone().expect("clone");
    let sender = thread::spawn(move || {
        let mut stream = stream;
        stream.write_all(requests.as_bytes()).expect("send GETs");
    });
    let mut values = Vec::with_capacity(keys.len());
    for _ in keys {
        let value = String::from_utf8(c.read_line()).expect("utf-8 value");
        c.expect(b"OK\r\n");
        let value = value.trim_end_matches("\r\n").to_string();
        values.push((!value.is_empty()).then_some(value));
    }
    sender.join().expect("sender");
    values
}

/// A pseudo-random duration in `range_ms`, different each run.
fn random_ms(low: u64, high: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Duration::from_millis(low + u64::from(nanos) % (high - low))
}

#[test]
fn no_acknowledged_write_is_lost_when_the_server_is_killed() {
    kill_rounds("crash", &[]);
}

/// The same with compaction running all the time, so kills land while snapshots are
/// being written and old files removed.
#[test]
fn no_acknowledged_write_is_lost_when_the_server_is_killed_while_compacting() {
    kill_rounds("crash-compacting", &["--compact-after-mib", "0"]);
}

/// Three rounds: 8 writers PUT distinct keys, the server is SIGKILLed at a random moment,
/// then restarted and checked.
fn kill_rounds(label: &str, extra_args: &[&str]) {
    let dir = temp_dir(label);
    let start = || {
        let mut args = vec!["--data-dir", arg(dir.path())];
        args.extend_from_slice(extra_args);
        TestServer::start(&args)
    };
    let mut all_acked: Vec<(String, String)> = Vec::new();
    let attempted = Arc::new(Mutex::new(HashMap::new()));
    for round in 0..3 {
        let mut server = start();
        ask(&mut server.connect(), b"CREATE crash\r\n", b"OK\r\n");
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (port, acked, attempted, stop) = (
                    server.port(),
                    acked.clone(),
                    attempted.clone(),
                    stop.clone(),
                );
                // Half the writers pipeline 16 PUTs per write, half send one at a time.
                let depth = if w % 2 == 0 { 1 } else { 16 };
                let prefix = format!("r{round}w{w}");
                thread::spawn(move || crash_writer(port, prefix, depth, acked, attempted, stop))
            })
            .collect();
        thread::sleep(random_ms(150, 600));
        server.signal(libc::SIGKILL);
        server.expect_exit(PATIENCE);
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        let acked = std::mem::take(&mut *acked.lock().expect("lock"));
        assert!(
            !acked.is_empty(),
            "round {round}: no write was acknowledged before the kill"
        );
        all_acked.extend(acked);

        // Restart: every acknowledged write of every round is there, with its value, and
        // nothing appears that was never written.
        let server = start();
        let attempted = attempted.lock().expect("lock").clone();
        let keys: Vec<String> = attempted.keys().cloned().collect();
        let found: HashMap<&String, Option<String>> =
            keys.iter().zip(read_back(&server, &keys)).collect();
        for (key, value) in &all_acked {
            assert_eq!(
                found[key].as_ref(),
                Some(value),
                "round {round}: acknowledged {key} lost"
            );
        }
        for (key, value) in found {
            if let Some(value) = value {
                assert_eq!(
                    &value, &attempted[key],
                    "round {round}: {key} has a value never written"
                );
            }
        }
        drop(server);
    }
}

#[test]
fn a_full_disk_is_answered_with_error_and_the_server_recovers_when_space_returns() {
    let dir = temp_dir("enospc");
    let Some(disk) = SmallDisk::mount(dir.path(), "4m") else {
        return;
    };
    let data = dir.path().join("data");
    let filler = dir.path().join("filler");
    let server = TestServer::start(&["--data-dir", data.to_str().expect("utf-8")]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b kept value\r\n", b"OK\r\n");
    // Fill the disk, then write until a write fails.
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![b'x'; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    let big = "y".repeat(32 * 1024);
    let mut reply = Vec::new();
    for i in 0..200 {
        c.send(format!("PUT b big{i} {big}\r\n").as_bytes());
        reply = c.read_line();
        if reply != b"OK\r\n" {
            break;
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "ERROR disk full\r\n",
        "a full disk is answered with ERROR"
    );
    // Reads still work while the disk is full.
    ask(&mut c, b"GET b kept\r\n", b"value\r\nOK\r\n");
    // Space returns; writes succeed again, without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    ask(&mut c, b"PUT b after space-returned\r\n", b"OK\r\n");
    ask(&mut c, b"GET b after\r\n", b"space-returned\r\nOK\r\n");
    // The failure is logged (the log writer may still be writing it).
    server.wait_for_log("write failed", PATIENCE);
    // The server must let go of the mount before it is unmounted.
    drop(server);
    drop(disk);
}
