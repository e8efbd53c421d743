//! The durable store against its real files: restart, compaction, torn writes, damage.
//! Directories of other format versions are in `format_versions.rs`.
//!
//! The server-level behaviour (SIGKILL under load, a full disk, the lock between two
//! processes) is tested through the binary in `crates/kv-server/tests/durable.rs`.

pub mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;

use common::{
    assert_sample, expect_unusable, files, frames_end, get, newest_journal, open, open_compacting,
    put, run, sample_dir, temp_dir, write_sample, FILE_HEADER_LEN,
};
use kv_store::{DurableStore, FsyncPolicy, Op, OpenError};

#[tokio::test]
async fn everything_survives_a_close_and_reopen() {
    let dir = sample_dir("reopen", None).await;

    let store = open(dir.path());
    assert_sample(&store).await;
    assert_eq!(store.stats(), (2, 1));
}

#[tokio::test]
async fn every_second_mode_keeps_what_it_acknowledged_over_a_clean_close() {
    let dir = temp_dir("everysec");
    let store = DurableStore::open(dir.path(), FsyncPolicy::EverySecond).unwrap();
    write_sample(&store).await;
    store.close().await;
    drop(store);
    assert_sample(&open(dir.path())).await;
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused_as_locked() {
    let dir = temp_dir("lock");
    let store = open(dir.path());
    assert!(matches!(
        DurableStore::open(dir.path(), FsyncPolicy::Always),
        Err(OpenError::Locked(_))
    ));
    store.close().await;
}

#[tokio::test]
async fn compaction_keeps_the_state_and_bounds_the_files() {
    let dir = temp_dir("compact");
    let store = open_compacting(dir.path(), 4096);
    run(&store, "b", Op::Create).await;
    let mut model = BTreeMap::new();
    // 100 keys overwritten 30 times: ~100 KB of journal for ~2 KB of data.
    for round in 0..30 {
        for k in 0..100 {
            let (key, value) = (format!("key{k}"), format!("value{k}-{round}"));
            if (k + round) % 7 == 0 {
                run(
                    &store,
                    "b",
                    Op::Delete {
                        key: key.as_bytes(),
                    },
                )
                .await;
                model.remove(&key);
            } else {
                put(&store, "b", &key, &value).await;
                model.insert(key, value);
            }
        }
    }
    store.close().await;
    drop(store);

    let snapshots = files(dir.path(), "snapshot-");
    assert_eq!(snapshots.len(), 1, "one snapshot remains: {snapshots:?}");
    let total: usize = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| frames_end(&fs::read(e.unwrap().path()).unwrap()))
        .sum();
    assert!(
        total < 40_000,
        "compaction bounds the files: {total} bytes in {:?}",
        files(dir.path(), "")
    );

    let store = open_compacting(dir.path(), 4096);
    for k in 0..100 {
        let key = format!("key{k}");
        assert_eq!(
            get(&store, "b", &key).await.as_ref(),
            model.get(&key),
            "{key} after compaction and reopen"
        );
    }
}

#[tokio::test]
async fn a_torn_final_write_is_cut_off_and_writing_goes_on() {
    let dir = sample_dir("torn", None).await;

    // A crash in the middle of appending a frame: its first bytes reached the disk, in
    // the zeros the journal keeps ahead of its frames.
    let journal = newest_journal(dir.path());
    let bytes = fs::read(&journal).unwrap();
    let frames_end = frames_end(&bytes);
    OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .write_all_at(&bytes[..30], frames_end as u64)
        .unwrap();

    let store = open(dir.path());
    assert_sample(&store).await;
    let after = fs::read(&journal).unwrap();
    assert_eq!(after.len(), frames_end, "the torn write is cut off");
    assert_eq!(after[..], bytes[..frames_end]);
    put(&store, "shopping", "bread", "1").await;
    store.close().await;
    drop(store);

    let store = open(dir.path());
    assert_sample(&store).await;
    assert_eq!(get(&store, "shopping", "bread").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn zeros_after_the_last_frame_are_a_normal_end() {
    let dir = sample_dir("zeroes", None).await;
    let journal = newest_journal(dir.path());
    OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(&[0u8; 4096])
        .unwrap();
    assert_sample(&open(dir.path())).await;
}

#[tokio::test]
async fn damage_followed_by_acknowledged_writes_stops_start_up() {
    let dir = sample_dir("damage", None).await;

    let journal = newest_journal(dir.path());
    let mut bytes = fs::read(&journal).unwrap();
    // Inside the first frame's payload; five more frames follow.
    bytes[FILE_HEADER_LEN + 40] ^= 0x01;
    fs::write(&journal, &bytes).unwrap();
    let reason = expect_unusable(dir.path(), &format!("damaged at byte {FILE_HEADER_LEN}"));
    assert!(reason.contains("valid frames follow"), "{reason}");
    // Refusing must not "repair" anything: the file is as it was.
    assert_eq!(fs::read(&journal).unwrap(), bytes);
}

#[tokio::test]
async fn everysec_drops_a_lost_unsynced_write_and_those_after_it() {
    // Written with --fsync everysec within its first second: no frame was synced when the
    // next was written, so a power loss may keep any subset of them.
    let dir = temp_dir("everysec-lost");
    let store = DurableStore::open(dir.path(), FsyncPolicy::EverySecond).unwrap();
    write_sample(&store).await;
    store.close().await;
    drop(store);
    let journal = newest_journal(dir.path());
    let mut bytes = fs::read(&journal).unwrap();
    let frames = frame_offsets(&bytes);
    assert_eq!(frames.len(), 6, "one frame per write of the sample");
    // "PUT eggs 3" never reached the disk; the frames after it did.
    bytes[frames[3] + 40] ^= 0xFF;
    fs::write(&journal, &bytes).unwrap();

    let store = open(dir.path());
    // A prefix of the writes: the two buckets and milk=1, nothing after the lost write.
    assert_eq!(get(&store, "shopping", "milk").await.as_deref(), Some("1"));
    assert_eq!(get(&store, "shopping", "eggs").await, None);
    assert_eq!(get(&store, "empty", "k").await, None, "the bucket exists");
}

#[tokio::test]
async fn a_damaged_snapshot_stops_start_up() {
    let dir = sample_dir("badsnap", Some(64)).await;

    let snapshot = files(dir.path(), "snapshot-")
        .pop()
        .expect("a snapshot was written");
    let mut bytes = fs::read(&snapshot).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&snapshot, &bytes).unwrap();
    expect_unusable(dir.path(), "snapshot-");
}

#[tokio::test]
async fn a_missing_journal_stops_start_up() {
    let dir = sample_dir("missing", Some(64)).await;

    let journals = files(dir.path(), "journal-");
    fs::remove_file(&journals[0]).unwrap();
    expect_unusable(dir.path(), "is missing");
}

#[tokio::test]
async fn leftovers_of_an_interrupted_compaction_are_recovered_from() {
    let dir = sample_dir("interrupted", Some(64)).await;

    // A crash after a new journal was started, while its snapshot was being written; and
    // replaced files that a crash kept from being removed.
    let newest = newest_journal(dir.path());
    let name = newest.file_name().unwrap().to_str().unwrap();
    let generation: u64 = name["journal-".len()..name.len() - ".log".len()]
        .parse()
        .unwrap();
    let next = format!("{:020}", generation + 1);
    let fresh = fs::read(&newest).unwrap()[..FILE_HEADER_LEN].to_vec();
    fs::write(dir.path().join(format!("journal-{next}.log")), fresh).unwrap();
    fs::write(dir.path().join(format!("journal-{next}.tmp")), b"KVS").unwrap();
    fs::write(
        dir.path().join(format!("snapshot-{next}.tmp")),
        b"half a snapshot",
    )
    .unwrap();
    let older = format!("{:020}", generation - 1);
    fs::write(dir.path().join(format!("journal-{older}.log")), b"replaced").unwrap();

    let store = open_compacting(dir.path(), 64);
    assert_sample(&store).await;
    put(&store, "shopping", "tea", "5").await;
    store.close().await;
    drop(store);
    assert!(files(dir.path(), "journal-")
        .iter()
        .all(|p| !p.ends_with(format!("journal-{older}.log"))));
    assert!(files(dir.path(), "snapshot-")
        .iter()
        .all(|p| p.extension().is_some_and(|e| e == "snap")));

    let store = open(dir.path());
    assert_sample(&store).await;
    assert_eq!(get(&store, "shopping", "tea").await.as_deref(), Some("5"));
}

/// Byte offsets of a journal's frames (header: 32 bytes, payload length at bytes 4..8).
fn frame_offsets(journal: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while at + 32 <= journal.len() && journal[at..at + 4] == *b"KVf3" {
        offsets.push(at);
        let len = u32::from_le_bytes(journal[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 32 + len;
    }
    offsets
}
