//! Data directories of other format versions, through the binary (docs/DURABILITY.md, "Durable mode"):
//! one of an earlier release is upgraded without losing a write; one of a newer version
//! stops start-up with a message naming the version, and is left exactly as it was. The
//! store's own tests of every version are in `crates/kv-store/tests/format_versions.rs`.

pub mod common;

use std::path::Path;

use common::disk::arg;
use common::{ask, temp_dir, TestServer, PATIENCE};
use tempfile::TempDir;

fn durable(dir: &TempDir) -> TestServer {
    TestServer::start(&["--data-dir", arg(dir.path())])
}

/// A copy of a data directory written by an earlier release (kv-store's committed
/// samples, `crates/kv-store/tests/samples/README.md`), journals extended with the zeros
/// that release preallocated.
fn released_sample(name: &str) -> TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kv-store/tests/samples")
        .join(name);
    let dir = temp_dir(name);
    for entry in std::fs::read_dir(&from).expect("list the sample") {
        let path = entry.expect("sample entry").path();
        let to = dir.path().join(path.file_name().expect("a file name"));
        std::fs::copy(&path, &to).expect("copy the sample");
        if to.extension().is_some_and(|e| e == "log") {
            let len = std::fs::metadata(&to).expect("stat").len();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&to)
                .expect("open");
            file.set_len(len + (4 << 20)).expect("preallocate");
        }
    }
    dir
}

#[test]
fn a_data_dir_of_the_kvf2_release_is_upgraded_with_every_write() {
    // The field report: KVf2 frames read as a torn tail, the journal cut to 0 bytes.
    let dir = released_sample("kvf2-journal");
    let server = durable(&dir);
    server.wait_for_log("upgraded from format version 2 to 4", PATIENCE);
    let mut c = server.connect();
    ask(&mut c, b"GET shop milk\r\n", b"1\r\nOK\r\n");
    ask(&mut c, b"GET shop eggs\r\n", b"12\r\nOK\r\n");
    ask(&mut c, b"PUT shop tea 3\r\n", b"OK\r\n");
    assert!(
        server.logs_at("WARN").is_empty(),
        "an upgrade is not damage: {:?}",
        server.logs_at("WARN")
    );
    server.stop();

    let server = durable(&dir);
    let mut c = server.connect();
    ask(&mut c, b"GET shop milk\r\n", b"1\r\nOK\r\n");
    ask(&mut c, b"GET shop tea\r\n", b"3\r\nOK\r\n");
}

#[test]
fn a_data_dir_of_a_newer_version_stops_start_up_naming_it_and_is_left_untouched() {
    let dir = released_sample("kvf3-journal");
    let journal = dir.path().join(format!("journal-{:020}.log", 0));
    // A header as a future version 7 would write it: magic, kind, version, CRC-32.
    let mut bytes = b"\x89KVS\r\n\x1a\nJRNL".to_vec();
    bytes.extend_from_slice(&7u32.to_le_bytes());
    let crc = crc32_ieee(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&std::fs::read(&journal).expect("read"));
    std::fs::write(&journal, &bytes).expect("write");

    let run = TestServer::builder()
        .args(["--data-dir", arg(dir.path())])
        .run_to_exit(PATIENCE);
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("format version 7") && run.stderr.contains("newer kv-server"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("Accepting connections"),
        "{}",
        run.stderr
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![journal.file_name().expect("name").to_owned()],
        "no LOCK left"
    );
    assert_eq!(
        std::fs::read(&journal).expect("reread"),
        bytes,
        "left as found"
    );
}

/// CRC-32 (IEEE), bit by bit: a test's own check of the documented header layout.
fn crc32_ieee(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
