//! Requests that arrive together are executed together (PROTOCOL.md, "Pipelining"): each
//! sees every earlier request of its connection, replies keep their order, and durable
//! writes that arrive together share one sync.

pub mod common;

use std::path::Path;

use common::{ask, SmallDisk, TestServer, PATIENCE};

/// Every kind of request in one write, each depending on the one before it.
const MIXED: &[u8] = b"CREATE shop\r\nPUT shop milk 1\r\nGET shop milk\r\nPUT shop milk 2\r\n\
GET shop milk\r\nDELETE shop milk\r\nGET shop milk\r\nPUT nowhere k v\r\nPING\r\n";
const MIXED_REPLIES: &[u8] = b"OK\r\nOK\r\n1\r\nOK\r\nOK\r\n2\r\nOK\r\nOK\r\n\r\nOK\r\n\
NOT FOUND\r\nPONG\r\n";

fn durable(dir: &Path) -> TestServer {
    TestServer::start(&["--data-dir", dir.to_str().expect("utf-8 path")])
}

fn stop(mut server: TestServer) {
    server.signal(libc::SIGTERM);
    assert!(server.expect_exit(PATIENCE).success());
}

#[test]
fn a_pipeline_sees_its_own_writes_in_memory_mode() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(MIXED);
    client.expect(MIXED_REPLIES);
}

#[test]
fn a_pipeline_sees_its_own_writes_in_durable_mode_and_they_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = durable(dir.path());
    let mut client = server.connect();
    client.send(MIXED);
    client.expect(MIXED_REPLIES);
    ask(&mut client, b"PUT shop eggs 12\r\n", b"OK\r\n");
    stop(server);

    let server = durable(dir.path());
    let mut client = server.connect();
    ask(&mut client, b"GET shop milk\r\n", b"\r\nOK\r\n");
    ask(&mut client, b"GET shop eggs\r\n", b"12\r\nOK\r\n");
}

/// Frames in the journals of `dir`: one per group commit, each synced (`--fsync always`).
/// Read from the documented layout: a 20-byte file header, then frames of a 32-byte header
/// (magic `KVf3`, payload length at bytes 4..8) and their payload.
fn journal_frames(dir: &Path) -> usize {
    let mut frames = 0;
    for entry in std::fs::read_dir(dir).expect("list the data dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read the journal");
        let mut at = 20;
        while bytes.get(at..at + 4) == Some(b"KVf3") {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
            at += 32 + len as usize;
            frames += 1;
        }
    }
    frames
}

#[test]
fn ten_thousand_pipelined_durable_puts_take_a_bounded_number_of_syncs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = durable(dir.path());
    let mut client = server.connect();
    ask(&mut client, b"CREATE b\r\n", b"OK\r\n");
    // 32 requests per write, the next write once all 32 are answered.
    for batch in 0..10_000 / 32 {
        let requests: Vec<u8> = (0..32)
            .flat_map(|i| format!("PUT b key{} v\r\n", batch * 32 + i).into_bytes())
            .collect();
        client.send(&requests);
        client.expect(&b"OK\r\n".repeat(32));
    }
    stop(server);
    let frames = journal_frames(dir.path());
    // One write of 32 may be read in more than one piece, but never one sync per PUT.
    assert!(
        (1..=2 * 10_000 / 32 + 1).contains(&frames),
        "{frames} syncs for 9,984 PUTs sent 32 at a time"
    );
}

#[test]
fn a_disk_that_fills_in_a_pipeline_keeps_the_replies_in_order_and_only_the_ok_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(disk) = SmallDisk::mount(dir.path(), "4m") else {
        return;
    };
    let data = dir.path().join("data");
    let server = durable(&data);
    let mut client = server.connect();
    ask(&mut client, b"CREATE b\r\n", b"OK\r\n");
    let value = "v".repeat(16 * 1024);
    let mut answers = Vec::new();
    'fill: for batch in 0..200 {
        let requests: Vec<u8> = (0..8)
            .flat_map(|i| {
                format!("PUT b k{}-{i} {value}\r\nGET b k{}-{i}\r\n", batch, batch).into_bytes()
            })
            .collect();
        client.send(&requests);
        for i in 0..8 {
            let put = client.read_line();
            let get = client.read_line();
            let key = format!("k{batch}-{i}");
            if put == b"OK\r\n" {
                // Read-your-writes inside the pipeline: the GET after an OK sees the value.
                assert_eq!(get, format!("{value}\r\n").into_bytes(), "{key}");
                assert_eq!(client.read_line(), b"OK\r\n");
            } else {
                assert_eq!(
                    String::from_utf8_lossy(&put),
                    "ERROR disk full\r\n",
                    "{key}"
                );
                // The GET after a failed PUT finds no value.
                assert_eq!(get, b"\r\n");
                assert_eq!(client.read_line(), b"OK\r\n");
            }
            answers.push((key, put == b"OK\r\n"));
        }
        if answers.iter().any(|(_, ok)| !ok) && batch > 0 {
            break 'fill;
        }
    }
    assert!(answers.iter().any(|(_, ok)| !ok), "the disk never filled");
    stop(server);
    drop(client);

    // After a restart: every OK write is there, every ERROR write is absent.
    let server = durable(&data);
    let mut client = server.connect();
    for (key, ok) in &answers {
        let expected = if *ok {
            format!("{value}\r\nOK\r\n").into_bytes()
        } else {
            b"\r\nOK\r\n".to_vec()
        };
        ask(
            &mut client,
            format!("GET b {key}\r\n").as_bytes(),
            &expected,
        );
    }
    drop(server);
    drop(disk);
}
