//! Format versions (docs/DURABILITY.md, "Durable mode"): a directory written by an earlier format
//! version is upgraded with every acknowledged write; one of a newer version, or one that
//! is damaged or foreign, is refused and left exactly as it was. Every file written says
//! what it is and its version.

pub mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{
    expect_unusable, files, frames_end, get, newest_journal, open, put, sample_dir, temp_dir,
};
use kv_store::{DurableStore, FsyncPolicy, OpenError};
use tempfile::TempDir;

/// A copy of a committed sample directory of an earlier version (`tests/samples`), with
/// its journals extended by the zeros the server that wrote them preallocated.
fn sample_of_version(name: &str) -> TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/samples")
        .join(name);
    let dir = temp_dir(name);
    for entry in fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    with_preallocated_zeros(dir.path());
    dir
}

fn with_preallocated_zeros(dir: &Path) {
    for journal in files(dir, "journal-") {
        let file = OpenOptions::new().write(true).open(&journal).unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len + (4 << 20)).unwrap();
    }
}

/// What the samples hold (`tests/samples/README.md`).
async fn assert_released_sample(store: &DurableStore) {
    assert_eq!(get(store, "shop", "milk").await.as_deref(), Some("1"));
    assert_eq!(get(store, "shop", "eggs").await.as_deref(), Some("12"));
    assert_eq!(get(store, "shop", "bread").await, None);
    assert_eq!(get(store, "empty", "k").await, None, "the bucket exists");
    assert_eq!(store.stats(), (2, 2));
}

/// Every file's name and bytes, to show that a refused directory was left as it was.
fn everything_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect()
}

/// The format version in a current file's header (bytes 12..16, after magic and kind).
fn version_of(file: &Path) -> u32 {
    let bytes = fs::read(file).unwrap();
    assert_eq!(
        bytes[..8],
        *b"\x89KVS\r\n\x1a\n",
        "{} has a header",
        file.display()
    );
    u32::from_le_bytes(bytes[12..16].try_into().unwrap())
}

/// Opens an upgraded directory, checks it holds the sample and only current files, writes
/// to it, and checks that the write survives another reopen.
async fn assert_upgraded(dir: &Path) {
    let store = open(dir);
    assert_released_sample(&store).await;
    for file in files(dir, "journal-")
        .iter()
        .chain(&files(dir, "snapshot-"))
    {
        assert_eq!(version_of(file), 4, "{} is rewritten", file.display());
    }
    put(&store, "shop", "tea", "3").await;
    store.close().await;
    drop(store);
    let store = open(dir);
    assert_released_sample_with_tea(&store).await;
}

async fn assert_released_sample_with_tea(store: &DurableStore) {
    assert_eq!(get(store, "shop", "milk").await.as_deref(), Some("1"));
    assert_eq!(get(store, "shop", "tea").await.as_deref(), Some("3"));
}

#[tokio::test]
async fn a_version_2_directory_is_upgraded_with_every_acknowledged_write() {
    for sample in ["kvf2-journal", "kvf2-compacted"] {
        let dir = sample_of_version(sample);
        assert_upgraded(dir.path()).await;
    }
}

#[tokio::test]
async fn a_version_3_directory_is_upgraded_with_every_acknowledged_write() {
    for sample in ["kvf3-journal", "kvf3-compacted"] {
        let dir = sample_of_version(sample);
        assert_upgraded(dir.path()).await;
    }
}

#[tokio::test]
async fn a_torn_last_write_of_an_old_version_is_cut_and_the_rest_upgraded() {
    // The version 2 server was killed while appending "DELETE shop bread": its frame is
    // half on disk, never acknowledged.
    let dir = sample_of_version("kvf2-journal");
    let journal = newest_journal(dir.path());
    let bytes = fs::read(&journal).unwrap();
    let end = frames_end(&bytes);
    let file = OpenOptions::new().write(true).open(&journal).unwrap();
    file.write_all_at(&[0; 8], (end - 8) as u64).unwrap();

    let store = open(dir.path());
    assert_eq!(get(&store, "shop", "milk").await.as_deref(), Some("1"));
    assert_eq!(get(&store, "shop", "bread").await.as_deref(), Some("2"));
    store.close().await;
    drop(store);
    let store = open(dir.path());
    assert_eq!(get(&store, "shop", "bread").await.as_deref(), Some("2"));
    assert_eq!(get(&store, "shop", "eggs").await.as_deref(), Some("12"));
}

#[tokio::test]
async fn an_upgrade_interrupted_by_a_crash_is_finished_at_the_next_start() {
    // A crash after the upgrade started the next journal, before its snapshot was renamed.
    let dir = sample_of_version("kvf3-journal");
    let fresh = temp_dir("fresh-journal");
    open(fresh.path()).close().await;
    let header_only = fs::read(newest_journal(fresh.path())).unwrap();
    fs::write(
        dir.path().join(format!("journal-{:020}.log", 1)),
        header_only,
    )
    .unwrap();
    fs::write(dir.path().join(format!("snapshot-{:020}.tmp", 1)), b"half").unwrap();

    assert_upgraded(dir.path()).await;
    assert_eq!(
        files(dir.path(), "journal-").len(),
        1,
        "the old journal is gone"
    );
}

#[tokio::test]
async fn a_directory_of_a_newer_version_is_refused_and_left_untouched() {
    let dir = sample_dir("newer", Some(64)).await;
    fs::remove_file(dir.path().join("LOCK")).unwrap();
    let journal = newest_journal(dir.path());
    let mut bytes = fs::read(&journal).unwrap();
    bytes[12..16].copy_from_slice(&5u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
    fs::write(&journal, &bytes).unwrap();
    let before = everything_in(dir.path());

    match DurableStore::open(dir.path(), FsyncPolicy::Always) {
        Err(OpenError::UnsupportedVersion { file, found }) => {
            assert_eq!(file, journal);
            assert!(found.contains("version 5"), "{found}");
            assert!(found.contains("newer"), "{found}");
        }
        Err(other) => panic!("expected UnsupportedVersion, got {other}"),
        Ok(_) => panic!("a newer directory was opened"),
    }
    assert!(everything_in(dir.path()) == before, "the directory changed");
}

#[tokio::test]
async fn a_redb_directory_is_refused_naming_its_version_and_left_untouched() {
    let dir = temp_dir("legacy");
    fs::write(dir.path().join("kv.redb"), b"old data").unwrap();
    let before = everything_in(dir.path());
    match DurableStore::open(dir.path(), FsyncPolicy::Always) {
        Err(e @ OpenError::UnsupportedVersion { .. }) => {
            assert!(e.to_string().contains("format version 1"), "{e}");
            assert!(e.to_string().contains("kv.redb"), "{e}");
        }
        Err(other) => panic!("expected UnsupportedVersion, got {other}"),
        Ok(_) => panic!("a redb directory was opened"),
    }
    assert!(everything_in(dir.path()) == before, "the directory changed");
}

#[tokio::test]
async fn a_damaged_directory_is_refused_and_left_untouched() {
    let dir = sample_of_version("kvf3-compacted");
    let snapshot = files(dir.path(), "snapshot-").pop().unwrap();
    let mut bytes = fs::read(&snapshot).unwrap();
    bytes[40] ^= 0x20;
    fs::write(&snapshot, &bytes).unwrap();
    fs::write(dir.path().join(format!("snapshot-{:020}.tmp", 9)), b"half").unwrap();
    let before = everything_in(dir.path());
    expect_unusable(dir.path(), "damaged");
    assert!(everything_in(dir.path()) == before, "the directory changed");
}

#[tokio::test]
async fn a_file_that_is_no_kv_server_file_is_refused_not_cut() {
    let dir = temp_dir("foreign");
    let journal = dir.path().join(format!("journal-{:020}.log", 0));
    fs::write(&journal, b"SQLite format 3\0 and more").unwrap();
    expect_unusable(dir.path(), "does not begin with a kv-server file header");
    assert_eq!(fs::read(&journal).unwrap(), b"SQLite format 3\0 and more");
}

#[tokio::test]
async fn every_file_written_says_what_it_is_and_its_version() {
    let dir = sample_dir("headers", Some(64)).await;
    let journals = files(dir.path(), "journal-");
    let snapshots = files(dir.path(), "snapshot-");
    assert!(!journals.is_empty() && !snapshots.is_empty());
    for journal in &journals {
        assert_eq!(version_of(journal), 4);
        assert_eq!(fs::read(journal).unwrap()[8..12], *b"JRNL");
    }
    for snapshot in &snapshots {
        assert_eq!(version_of(snapshot), 4);
        assert_eq!(fs::read(snapshot).unwrap()[8..12], *b"SNAP");
    }
}
