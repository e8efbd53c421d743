//! The durable store against its real files: restart, compaction, torn writes, damage.
//!
//! The server-level behaviour (SIGKILL under load, a full disk, the lock between two
//! processes) is tested through the binary in `crates/kv-server/tests/durable.rs`.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kv_store::{Bucket, DurableOptions, DurableStore, FsyncPolicy, OpenError, Store};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "kv-store-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &Path) -> DurableStore {
    DurableStore::open(dir, FsyncPolicy::Always).expect("open the store")
}

fn open_compacting(dir: &Path, after: u64) -> DurableStore {
    let options = DurableOptions {
        compact_after_bytes: after,
        ..DurableOptions::default()
    };
    DurableStore::open_with(dir, options).expect("open the store")
}

/// Files in `dir` whose names start with `prefix`, sorted.
fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
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
fn frames_end(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1)
}

fn newest_journal(dir: &Path) -> PathBuf {
    files(dir, "journal-").pop().expect("a journal")
}

async fn get(store: &DurableStore, bucket: &str, key: &str) -> Option<String> {
    let bucket = store.bucket(bucket.as_bytes()).await.unwrap()?;
    let value = bucket.get(key.as_bytes()).await.unwrap()?;
    Some(String::from_utf8(value.to_vec()).unwrap())
}

async fn put(store: &DurableStore, bucket: &str, key: &str, value: &str) {
    let bucket = store.bucket(bucket.as_bytes()).await.unwrap().unwrap();
    bucket.put(key.as_bytes(), value.as_bytes()).await.unwrap();
}

/// Writes a known state: two buckets (one empty), an overwrite and a delete.
async fn write_sample(store: &DurableStore) {
    store.create(b"shopping").await.unwrap();
    store.create(b"empty").await.unwrap();
    put(store, "shopping", "milk", "1").await;
    put(store, "shopping", "eggs", "3").await;
    put(store, "shopping", "milk", "2").await;
    let shopping = store.bucket(b"shopping").await.unwrap().unwrap();
    shopping.delete(b"eggs").await.unwrap();
}

/// A directory holding the sample, closed; with `compact_after`, compacted as it was written.
async fn sample_dir(label: &str, compact_after: Option<u64>) -> TempDir {
    let dir = TempDir::new(label);
    let store = match compact_after {
        Some(bytes) => open_compacting(&dir.0, bytes),
        None => open(&dir.0),
    };
    write_sample(&store).await;
    store.close().await;
    drop(store);
    dir
}

async fn assert_sample(store: &DurableStore) {
    assert_eq!(get(store, "shopping", "milk").await.as_deref(), Some("2"));
    assert_eq!(get(store, "shopping", "eggs").await, None);
    assert!(store.bucket(b"empty").await.unwrap().is_some());
    assert!(store.bucket(b"other").await.unwrap().is_none());
}

fn expect_unusable(dir: &Path, what: &str) -> String {
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

#[tokio::test]
async fn everything_survives_a_close_and_reopen() {
    let dir = sample_dir("reopen", None).await;

    let store = open(&dir.0);
    assert_sample(&store).await;
    assert_eq!(store.stats(), (2, 1));
}

#[tokio::test]
async fn every_second_mode_keeps_what_it_acknowledged_over_a_clean_close() {
    let dir = TempDir::new("everysec");
    let store = DurableStore::open(&dir.0, FsyncPolicy::EverySecond).unwrap();
    write_sample(&store).await;
    store.close().await;
    drop(store);
    assert_sample(&open(&dir.0)).await;
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused_as_locked() {
    let dir = TempDir::new("lock");
    let store = open(&dir.0);
    assert!(matches!(
        DurableStore::open(&dir.0, FsyncPolicy::Always),
        Err(OpenError::Locked(_))
    ));
    store.close().await;
}

#[tokio::test]
async fn compaction_keeps_the_state_and_bounds_the_files() {
    let dir = TempDir::new("compact");
    let store = open_compacting(&dir.0, 4096);
    store.create(b"b").await.unwrap();
    let bucket = store.bucket(b"b").await.unwrap().unwrap();
    let mut model = BTreeMap::new();
    // 100 keys overwritten 30 times: ~100 KB of journal for ~2 KB of data.
    for round in 0..30 {
        for k in 0..100 {
            let (key, value) = (format!("key{k}"), format!("value{k}-{round}"));
            if (k + round) % 7 == 0 {
                bucket.delete(key.as_bytes()).await.unwrap();
                model.remove(&key);
            } else {
                bucket.put(key.as_bytes(), value.as_bytes()).await.unwrap();
                model.insert(key, value);
            }
        }
    }
    store.close().await;
    drop(store);

    let snapshots = files(&dir.0, "snapshot-");
    assert_eq!(snapshots.len(), 1, "one snapshot remains: {snapshots:?}");
    let total: usize = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| frames_end(&fs::read(e.unwrap().path()).unwrap()))
        .sum();
    assert!(
        total < 40_000,
        "compaction bounds the files: {total} bytes in {:?}",
        files(&dir.0, "")
    );

    let store = open_compacting(&dir.0, 4096);
    let bucket = store.bucket(b"b").await.unwrap().unwrap();
    for k in 0..100 {
        let key = format!("key{k}");
        let got = bucket.get(key.as_bytes()).await.unwrap();
        assert_eq!(
            got.as_deref(),
            model.get(&key).map(|v| v.as_bytes()),
            "{key} after compaction and reopen"
        );
    }
}

#[tokio::test]
async fn a_torn_final_write_is_cut_off_and_writing_goes_on() {
    let dir = sample_dir("torn", None).await;

    // A crash in the middle of appending a frame: its first bytes reached the disk, in
    // the zeros the journal keeps ahead of its frames.
    let journal = newest_journal(&dir.0);
    let bytes = fs::read(&journal).unwrap();
    let frames_end = frames_end(&bytes);
    OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .write_all_at(&bytes[..30], frames_end as u64)
        .unwrap();

    let store = open(&dir.0);
    assert_sample(&store).await;
    let after = fs::read(&journal).unwrap();
    assert_eq!(after.len(), frames_end, "the torn write is cut off");
    assert_eq!(after[..], bytes[..frames_end]);
    put(&store, "shopping", "bread", "1").await;
    store.close().await;
    drop(store);

    let store = open(&dir.0);
    assert_sample(&store).await;
    assert_eq!(get(&store, "shopping", "bread").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn zeros_after_the_last_frame_are_a_normal_end() {
    let dir = sample_dir("zeroes", None).await;
    let journal = newest_journal(&dir.0);
    OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(&[0u8; 4096])
        .unwrap();
    assert_sample(&open(&dir.0)).await;
}

#[tokio::test]
async fn damage_followed_by_acknowledged_writes_stops_start_up() {
    let dir = sample_dir("damage", None).await;

    let journal = newest_journal(&dir.0);
    let mut bytes = fs::read(&journal).unwrap();
    // Inside the first frame's payload; five more frames follow.
    bytes[FILE_HEADER_LEN + 40] ^= 0x01;
    fs::write(&journal, &bytes).unwrap();
    let reason = expect_unusable(&dir.0, &format!("damaged at byte {FILE_HEADER_LEN}"));
    assert!(reason.contains("valid frames follow"), "{reason}");
    // Refusing must not "repair" anything: the file is as it was.
    assert_eq!(fs::read(&journal).unwrap(), bytes);
}

/// Bytes of the file header every journal and snapshot begins with (format version 4).
const FILE_HEADER_LEN: usize = 20;

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

#[tokio::test]
async fn everysec_drops_a_lost_unsynced_write_and_those_after_it() {
    // Written with --fsync everysec within its first second: no frame was synced when the
    // next was written, so a power loss may keep any subset of them.
    let dir = TempDir::new("everysec-lost");
    let store = DurableStore::open(&dir.0, FsyncPolicy::EverySecond).unwrap();
    write_sample(&store).await;
    store.close().await;
    drop(store);
    let journal = newest_journal(&dir.0);
    let mut bytes = fs::read(&journal).unwrap();
    let frames = frame_offsets(&bytes);
    assert_eq!(frames.len(), 6, "one frame per write of the sample");
    // "PUT eggs 3" never reached the disk; the frames after it did.
    bytes[frames[3] + 40] ^= 0xFF;
    fs::write(&journal, &bytes).unwrap();

    let store = open(&dir.0);
    // A prefix of the writes: the two buckets and milk=1, nothing after the lost write.
    assert_eq!(get(&store, "shopping", "milk").await.as_deref(), Some("1"));
    assert_eq!(get(&store, "shopping", "eggs").await, None);
    assert!(store.bucket(b"empty").await.unwrap().is_some());
}

#[tokio::test]
async fn a_damaged_snapshot_stops_start_up() {
    let dir = sample_dir("badsnap", Some(64)).await;

    let snapshot = files(&dir.0, "snapshot-")
        .pop()
        .expect("a snapshot was written");
    let mut bytes = fs::read(&snapshot).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&snapshot, &bytes).unwrap();
    expect_unusable(&dir.0, "snapshot-");
}

#[tokio::test]
async fn a_missing_journal_stops_start_up() {
    let dir = sample_dir("missing", Some(64)).await;

    let journals = files(&dir.0, "journal-");
    fs::remove_file(&journals[0]).unwrap();
    expect_unusable(&dir.0, "is missing");
}

#[tokio::test]
async fn leftovers_of_an_interrupted_compaction_are_recovered_from() {
    let dir = sample_dir("interrupted", Some(64)).await;

    // A crash after a new journal was started, while its snapshot was being written; and
    // replaced files that a crash kept from being removed.
    let newest = newest_journal(&dir.0);
    let name = newest.file_name().unwrap().to_str().unwrap();
    let generation: u64 = name["journal-".len()..name.len() - ".log".len()]
        .parse()
        .unwrap();
    let next = format!("{:020}", generation + 1);
    let fresh = fs::read(&newest).unwrap()[..FILE_HEADER_LEN].to_vec();
    fs::write(dir.0.join(format!("journal-{next}.log")), fresh).unwrap();
    fs::write(dir.0.join(format!("journal-{next}.tmp")), b"KVS").unwrap();
    fs::write(
        dir.0.join(format!("snapshot-{next}.tmp")),
        b"half a snapshot",
    )
    .unwrap();
    let older = format!("{:020}", generation - 1);
    fs::write(dir.0.join(format!("journal-{older}.log")), b"replaced").unwrap();

    let store = open_compacting(&dir.0, 64);
    assert_sample(&store).await;
    put(&store, "shopping", "tea", "5").await;
    store.close().await;
    drop(store);
    assert!(files(&dir.0, "journal-")
        .iter()
        .all(|p| !p.ends_with(format!("journal-{older}.log"))));
    assert!(files(&dir.0, "snapshot-")
        .iter()
        .all(|p| p.extension().is_some_and(|e| e == "snap")));

    let store = open(&dir.0);
    assert_sample(&store).await;
    assert_eq!(get(&store, "shopping", "tea").await.as_deref(), Some("5"));
}

// ---- Format versions (SPEC §7): upgraded with every write, or refused untouched ----

/// A copy of a committed sample directory of an earlier version (`tests/samples`), with
/// its journals extended by the zeros the server that wrote them preallocated.
fn sample_of_version(name: &str) -> TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/samples")
        .join(name);
    let dir = TempDir::new(name);
    fs::create_dir_all(&dir.0).unwrap();
    for entry in fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, dir.0.join(path.file_name().unwrap())).unwrap();
    }
    with_preallocated_zeros(&dir.0);
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
    assert!(store.bucket(b"empty").await.unwrap().is_some());
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
        assert_upgraded(&dir.0).await;
    }
}

#[tokio::test]
async fn a_version_3_directory_is_upgraded_with_every_acknowledged_write() {
    for sample in ["kvf3-journal", "kvf3-compacted"] {
        let dir = sample_of_version(sample);
        assert_upgraded(&dir.0).await;
    }
}

#[tokio::test]
async fn a_torn_last_write_of_an_old_version_is_cut_and_the_rest_upgraded() {
    // The version 2 server was killed while appending "DELETE shop bread": its frame is
    // half on disk, never acknowledged.
    let dir = sample_of_version("kvf2-journal");
    let journal = newest_journal(&dir.0);
    let bytes = fs::read(&journal).unwrap();
    let end = frames_end(&bytes);
    let file = OpenOptions::new().write(true).open(&journal).unwrap();
    file.write_all_at(&[0; 8], (end - 8) as u64).unwrap();

    let store = open(&dir.0);
    assert_eq!(get(&store, "shop", "milk").await.as_deref(), Some("1"));
    assert_eq!(get(&store, "shop", "bread").await.as_deref(), Some("2"));
    store.close().await;
    drop(store);
    let store = open(&dir.0);
    assert_eq!(get(&store, "shop", "bread").await.as_deref(), Some("2"));
    assert_eq!(get(&store, "shop", "eggs").await.as_deref(), Some("12"));
}

#[tokio::test]
async fn an_upgrade_interrupted_by_a_crash_is_finished_at_the_next_start() {
    // A crash after the upgrade started the next journal, before its snapshot was renamed.
    let dir = sample_of_version("kvf3-journal");
    let fresh = TempDir::new("fresh-journal");
    open(&fresh.0).close().await;
    let header_only = fs::read(newest_journal(&fresh.0)).unwrap();
    fs::write(dir.0.join(format!("journal-{:020}.log", 1)), header_only).unwrap();
    fs::write(dir.0.join(format!("snapshot-{:020}.tmp", 1)), b"half").unwrap();

    assert_upgraded(&dir.0).await;
    assert_eq!(
        files(&dir.0, "journal-").len(),
        1,
        "the old journal is gone"
    );
}

#[tokio::test]
async fn a_directory_of_a_newer_version_is_refused_and_left_untouched() {
    let dir = sample_dir("newer", Some(64)).await;
    fs::remove_file(dir.0.join("LOCK")).unwrap();
    let journal = newest_journal(&dir.0);
    let mut bytes = fs::read(&journal).unwrap();
    bytes[12..16].copy_from_slice(&5u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
    fs::write(&journal, &bytes).unwrap();
    let before = everything_in(&dir.0);

    match DurableStore::open(&dir.0, FsyncPolicy::Always) {
        Err(OpenError::UnsupportedVersion { file, found }) => {
            assert_eq!(file, journal);
            assert!(found.contains("version 5"), "{found}");
            assert!(found.contains("newer"), "{found}");
        }
        Err(other) => panic!("expected UnsupportedVersion, got {other}"),
        Ok(_) => panic!("a newer directory was opened"),
    }
    assert!(everything_in(&dir.0) == before, "the directory changed");
}

#[tokio::test]
async fn a_redb_directory_is_refused_naming_its_version_and_left_untouched() {
    let dir = TempDir::new("legacy");
    fs::create_dir_all(&dir.0).unwrap();
    fs::write(dir.0.join("kv.redb"), b"old data").unwrap();
    let before = everything_in(&dir.0);
    match DurableStore::open(&dir.0, FsyncPolicy::Always) {
        Err(e @ OpenError::UnsupportedVersion { .. }) => {
            assert!(e.to_string().contains("format version 1"), "{e}");
            assert!(e.to_string().contains("kv.redb"), "{e}");
        }
        Err(other) => panic!("expected UnsupportedVersion, got {other}"),
        Ok(_) => panic!("a redb directory was opened"),
    }
    assert!(everything_in(&dir.0) == before, "the directory changed");
}

#[tokio::test]
async fn a_damaged_directory_is_refused_and_left_untouched() {
    let dir = sample_of_version("kvf3-compacted");
    let snapshot = files(&dir.0, "snapshot-").pop().unwrap();
    let mut bytes = fs::read(&snapshot).unwrap();
    bytes[40] ^= 0x20;
    fs::write(&snapshot, &bytes).unwrap();
    fs::write(dir.0.join(format!("snapshot-{:020}.tmp", 9)), b"half").unwrap();
    let before = everything_in(&dir.0);
    expect_unusable(&dir.0, "damaged");
    assert!(everything_in(&dir.0) == before, "the directory changed");
}

#[tokio::test]
async fn a_file_that_is_no_kv_server_file_is_refused_not_cut() {
    let dir = TempDir::new("foreign");
    fs::create_dir_all(&dir.0).unwrap();
    let journal = dir.0.join(format!("journal-{:020}.log", 0));
    fs::write(&journal, b"SQLite format 3\0 and more").unwrap();
    expect_unusable(&dir.0, "does not begin with a kv-server file header");
    assert_eq!(fs::read(&journal).unwrap(), b"SQLite format 3\0 and more");
}

#[tokio::test]
async fn every_file_written_says_what_it_is_and_its_version() {
    let dir = sample_dir("headers", Some(64)).await;
    let journals = files(&dir.0, "journal-");
    let snapshots = files(&dir.0, "snapshot-");
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
