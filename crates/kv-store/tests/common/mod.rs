//! What the store's file tests share: opening a store on a directory, the files in it,
//! a known sample state written and checked, and refusals expected.
//!
//! Test files declare `pub mod common;`: the helpers are then public items of the test
//! crate, so one that a test file does not use is not dead code there (each file in
//! `tests/` is a crate of its own that compiles this module anew).

use std::fs;
use std::path::{Path, PathBuf};

use kv_store::{DurableOptions, DurableStore, FsyncPolicy, Op, OpenError, Outcome, StoreClient};
use tempfile::TempDir;

/// Bytes of the file header every journal and snapshot begins with (format version 4).
pub const FILE_HEADER_LEN: usize = 20;

/// A fresh directory under the system temp dir, removed when dropped; `label` is in its
/// name, to tell whose it is.
pub fn temp_dir(label: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("kv-store-{label}-"))
        .tempdir()
        .expect("create a temp dir")
}

pub fn open(dir: &Path) -> DurableStore {
    DurableStore::open(dir, FsyncPolicy::Always).expect("open the store")
}

pub fn open_compacting(dir: &Path, after: u64) -> DurableStore {
    let options = DurableOptions {
        compact_after_bytes: after,
        ..DurableOptions::default()
    };
    DurableStore::open_with(dir, options).expect("open the store")
}

/// Files in `dir` whose names start with `prefix`, sorted.
pub fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list the dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

/// Where the frames of a journal end: the zeros after them are preallocated space.
pub fn frames_end(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1)
}

pub fn newest_journal(dir: &Path) -> PathBuf {
    files(dir, "journal-").pop().expect("a journal")
}

/// The value of `key` in `bucket`, as text; `None` for a missing key (the bucket must exist).
pub async fn get(store: &DurableStore, bucket: &str, key: &str) -> Option<String> {
    let got = StoreClient::new(store)
        .get(bucket.as_bytes(), key.as_bytes())
        .await;
    match got {
        Outcome::Value(value) => value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
        other => panic!("GET {bucket} {key}: {other:?}"),
    }
}

/// Runs `op` on `bucket`, which must succeed.
pub async fn run(store: &DurableStore, bucket: &str, op: Op<'_>) {
    let done = StoreClient::new(store).run(bucket.as_bytes(), op).await;
    assert_eq!(done, Outcome::Done, "{op:?} on {bucket}");
}

pub async fn put(store: &DurableStore, bucket: &str, key: &str, value: &str) {
    let (key, value) = (key.as_bytes(), value.as_bytes());
    run(store, bucket, Op::Put { key, value }).await;
}

/// Writes a known state: two buckets (one empty), an overwrite and a delete.
pub async fn write_sample(store: &DurableStore) {
    run(store, "shopping", Op::Create).await;
    run(store, "empty", Op::Create).await;
    put(store, "shopping", "milk", "1").await;
    put(store, "shopping", "eggs", "3").await;
    put(store, "shopping", "milk", "2").await;
    run(store, "shopping", Op::Delete { key: b"eggs" }).await;
}

/// A directory holding the sample, closed; with `compact_after`, compacted as it was written.
pub async fn sample_dir(label: &str, compact_after: Option<u64>) -> TempDir {
    let dir = temp_dir(label);
    let store = match compact_after {
        Some(bytes) => open_compacting(dir.path(), bytes),
        None => open(dir.path()),
    };
    write_sample(&store).await;
    store.close().await;
    drop(store);
    dir
}

pub async fn assert_sample(store: &DurableStore) {
    assert_eq!(get(store, "shopping", "milk").await.as_deref(), Some("2"));
    assert_eq!(get(store, "shopping", "eggs").await, None);
    let mut client = StoreClient::new(store);
    assert_eq!(client.get(b"empty", b"k").await, Outcome::Value(None));
    assert_eq!(client.get(b"other", b"k").await, Outcome::NoBucket);
}

pub fn expect_unusable(dir: &Path, what: &str) -> String {
    match DurableStore::open(dir, FsyncPolicy::Always) {
        Err(OpenError::Unusable(_, reason)) => {
            assert!(
                reason.contains(what),
                "reason {reason:?} should mention {what:?}"
            );
            reason
        }
        Err(other) => panic!("expected Unusable, got {other}"),
        Ok(_) => panic!("a damaged directory was opened"),
    }
}
