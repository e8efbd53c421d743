//! Tests of backups: what a backup holds under concurrent writers, the reader's checks,
//! restore and check.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::poll_fn;
use futures_util::FutureExt;
use proptest::prelude::*;

use super::*;
use crate::durable::record::Record;
use crate::durable::{self, DurableStore, FsyncPolicy, RestoreError};
use crate::{Op, Outcome, Pipeline, Store, StoreClient};

/// Every bucket's keys and values, as a backup or a store holds them.
type Contents = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

/// The whole backup of `store`, taken now.
async fn take(pipeline: &mut impl Pipeline) -> Vec<u8> {
    let mut backup = pipeline.backup().await.expect("a backup starts");
    let mut bytes = Vec::new();
    while let Some(piece) = poll_fn(|cx| backup.poll_next(cx)).await {
        bytes.extend_from_slice(&piece);
    }
    bytes
}

/// What the backup `bytes` holds, checked whole.
fn contents_of(bytes: &[u8]) -> Contents {
    let mut contents = Contents::new();
    let mut reader = Reader::new();
    reader
        .feed_records(bytes, |record| match record {
            Record::Create { bucket } => {
                contents.entry(bucket.to_vec()).or_default();
            }
            Record::Put { bucket, key, value } => {
                let bucket = contents.entry(bucket.to_vec()).or_default();
                bucket.insert(key.to_vec(), value.to_vec());
            }
            other => panic!("a backup holds no {other:?}"),
        })
        .expect("the backup checks out");
    let summary = reader.finish().expect("the backup is whole");
    assert_eq!(summary.buckets, contents.len() as u64);
    assert_eq!(
        summary.keys,
        contents.values().map(|b| b.len() as u64).sum::<u64>()
    );
    assert_eq!(summary.file_bytes, bytes.len() as u64);
    contents
}

/// What `store` holds now.
fn contents_of_store(store: &crate::MemoryStore) -> Contents {
    let mut contents = Contents::new();
    for (name, bucket) in store.buckets() {
        let keys = contents.entry(name.to_vec()).or_default();
        for shard in 0..bucket.shard_count() {
            bucket.visit_shard(shard, |k, v| {
                keys.insert(k.to_vec(), v.to_vec());
            });
        }
    }
    contents
}

fn put(store: &impl Store, bucket: &[u8], key: &[u8], value: &[u8]) {
    let mut client = StoreClient::new(store);
    let done = client.put(bucket, key, value).now_or_never();
    assert_eq!(done, Some(Outcome::Done));
}

fn filled_store(buckets: usize, keys: usize) -> crate::MemoryStore {
    let store = crate::MemoryStore::new();
    let mut client = StoreClient::new(&store);
    for b in 0..buckets {
        let bucket = format!("bucket{b}");
        assert_eq!(
            client.create(bucket.as_bytes()).now_or_never(),
            Some(Outcome::Done)
        );
        for k in 0..keys {
            put(
                &store,
                bucket.as_bytes(),
                format!("k{k}").as_bytes(),
                format!("v{k}-{b}").as_bytes(),
            );
        }
    }
    store
}

#[tokio::test]
async fn a_backup_holds_exactly_what_the_store_holds() {
    let store = filled_store(3, 2_000);
    let mut client = StoreClient::new(&store);
    assert_eq!(client.create(b"empty").await, Outcome::Done);
    assert_eq!(client.delete(b"bucket1", b"k7").await, Outcome::Done);
    let bytes = take(&mut store.pipeline()).await;
    assert_eq!(contents_of(&bytes), contents_of_store(&store));
    assert!(bytes.len() > 3 * 2_000 * 10, "{} bytes", bytes.len());
}

#[tokio::test]
async fn one_backup_at_a_time_and_the_next_after_it() {
    // More frames than are made ahead of the reader: the first is still running.
    let store = filled_store(1, 100_000);
    let mut first = store.pipeline();
    let running = first.backup().await.expect("the first starts");
    let refused = store
        .pipeline()
        .backup()
        .await
        .expect_err("a second is refused");
    assert!(refused.message().contains("already running"), "{refused}");
    drop(running);
    // The writing thread sees the backup dropped when it next sends: then the next may start.
    let mut started = None;
    for _ in 0..500 {
        match store.pipeline().backup().await {
            Ok(backup) => {
                started = Some(backup);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    assert!(
        started.is_some(),
        "a backup can start once the first one is dropped"
    );
}

/// One writer's operations, in order: `PUT w:i i`, `PUT w:last i`, and from the sixth on
/// `DELETE w:(i-5)`: overwrites, new keys and deletes, so every way a key changes meets the
/// frozen view.
fn op(writer: usize, n: u64) -> (Vec<u8>, Option<Vec<u8>>) {
    let i = n / 3;
    match n % 3 {
        0 => (
            format!("{writer}:{i}").into_bytes(),
            Some(i.to_string().into_bytes()),
        ),
        1 => (
            format!("{writer}:last").into_bytes(),
            Some(i.to_string().into_bytes()),
        ),
        _ if i >= 5 => (format!("{writer}:{}", i - 5).into_bytes(), None),
        // No delete yet: write the same value again (a change that changes nothing).
        _ => (
            format!("{writer}:last").into_bytes(),
            Some(i.to_string().into_bytes()),
        ),
    }
}

/// Whether `held` is the writer's keys after its first `done` operations for some `done`
/// from `from` to `to`.
fn is_a_prefix(writer: usize, held: &BTreeMap<Vec<u8>, Vec<u8>>, from: u64, to: u64) -> bool {
    let mut state = BTreeMap::new();
    for n in 0..=to {
        if n >= from && state == *held {
            return true;
        }
        match op(writer, n) {
            (key, Some(value)) => state.insert(key, value),
            (key, None) => state.remove(&key),
        };
    }
    false
}

/// SPEC §17: a backup is the store at one moment in the order writes took effect, holding
/// every write acknowledged before it began. Writers keep writing while a slow reader takes
/// the backup of a store big enough for the writes to overtake it; for each writer, the
/// backup must hold exactly the state after a prefix of its operations, at least as long
/// as what was acknowledged when the backup began.
#[test]
fn a_frozen_view_holds_a_prefix_of_every_writers_writes() {
    const WRITERS: usize = 4;
    let store = filled_store(1, 60_000);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, stop, acked) = (store.clone(), Arc::clone(&stop), Arc::clone(&acked));
            std::thread::spawn(move || {
                let mut pipeline = store.pipeline();
                let mut answers = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (key, value) = op(w, n);
                    let op = match &value {
                        Some(value) => Op::Put { key: &key, value },
                        None => Op::Delete { key: &key },
                    };
                    pipeline.submit(b"bucket0", op, &mut answers).now_or_never();
                    n += 1;
                    acked[w].store(n, Ordering::Release);
                }
                n
            })
        })
        .collect();
    // Let every writer get going, then note what each has had acknowledged.
    while acked.iter().any(|a| a.load(Ordering::Acquire) < 300) {
        std::thread::yield_now();
    }
    let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let bytes = runtime.block_on(async {
        let mut backup = store.pipeline().backup().await.expect("starts");
        let mut bytes = Vec::new();
        while let Some(piece) = poll_fn(|cx| backup.poll_next(cx)).await {
            bytes.extend_from_slice(&piece);
            // A slow reader: the writers overtake the frozen view.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        bytes
    });
    let during: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
    stop.store(true, Ordering::Relaxed);
    let totals: Vec<u64> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    let backed_up = contents_of(&bytes)
        .remove(&b"bucket0"[..])
        .expect("bucket0");
    for w in 0..WRITERS {
        assert!(
            during[w] > before[w] + 100,
            "writer {w} wrote during the backup ({} -> {}): otherwise this shows nothing",
            before[w],
            during[w]
        );
        let prefix = format!("{w}:");
        let held: BTreeMap<Vec<u8>, Vec<u8>> = backed_up
            .iter()
            .filter(|(k, _)| k.starts_with(prefix.as_bytes()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(
            is_a_prefix(w, &held, before[w], totals[w]),
            "writer {w}: the backup holds no prefix of its writes from the {} acknowledged \
             before it began: {held:?}",
            before[w]
        );
    }
    // The preloaded keys, which nobody changed, are all there.
    assert_eq!(
        backed_up.keys().filter(|k| k.starts_with(b"k")).count(),
        60_000
    );
}

#[tokio::test]
async fn a_durable_store_backs_up_what_it_answered_and_restores_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let store = DurableStore::open(&data.path().join("data"), FsyncPolicy::Always).expect("opens");
    let mut client = StoreClient::new(&store);
    assert_eq!(client.create(b"b").await, Outcome::Done);
    for k in 0..500 {
        let key = format!("k{k}");
        assert_eq!(
            client.put(b"b", key.as_bytes(), b"value").await,
            Outcome::Done
        );
    }
    assert_eq!(client.delete(b"b", b"k3").await, Outcome::Done);
    let bytes = take(&mut store.pipeline()).await;
    let held = contents_of(&bytes);
    assert_eq!(held[&b"b"[..]].len(), 499);
    store.close().await;

    let file = data.path().join("backup.kvb");
    std::fs::write(&file, &bytes).expect("write backup");
    let restored = data.path().join("restored");
    let summary = durable::restore(&file, &restored).expect("restores");
    assert_eq!((summary.buckets, summary.keys), (1, 499));
    let report = durable::check(&restored).expect("the restored directory checks out");
    assert_eq!((report.buckets, report.keys), (1, 499));
    let reopened = DurableStore::open(&restored, FsyncPolicy::Always).expect("reopens");
    let mut client = StoreClient::new(&reopened);
    assert_eq!(
        client.get(b"b", b"k9").await,
        Outcome::Value(Some("value".into()))
    );
    assert_eq!(client.get(b"b", b"k3").await, Outcome::Value(None));
    assert_eq!(contents_of(&take(&mut reopened.pipeline()).await), held);
    reopened.close().await;
}

/// A backup of `store` written to a file in `dir`.
fn backup_file(dir: &std::path::Path, store: &crate::MemoryStore) -> (std::path::PathBuf, Vec<u8>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let bytes = runtime.block_on(take(&mut store.pipeline()));
    let file = dir.join("backup.kvb");
    std::fs::write(&file, &bytes).expect("write backup");
    (file, bytes)
}

#[test]
fn restore_refuses_damage_a_cut_an_unknown_version_and_a_full_target_writing_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, bytes) = backup_file(dir.path(), &filled_store(2, 300));
    let target = dir.path().join("target");
    let refused = |bytes: &[u8]| {
        std::fs::write(&file, bytes).expect("write");
        let e = durable::restore(&file, &target).expect_err("refused");
        assert!(!target.exists(), "nothing written for {e}");
        e
    };
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x10;
    let e = refused(&flipped);
    assert!(e.to_string().contains("damaged at byte"), "{e}");
    let e = refused(&bytes[..bytes.len() - 3]);
    assert!(e.to_string().contains("incomplete"), "{e}");
    let mut newer = bytes.clone();
    newer[..format::HEADER_LEN].copy_from_slice(&format::with_version(2));
    let e = refused(&newer);
    assert!(e.to_string().contains("version 2"), "{e}");
    let e = refused(b"PUT b k v\r\n");
    assert!(e.to_string().contains("not a kv-server backup"), "{e}");

    std::fs::write(&file, &bytes).expect("write");
    std::fs::create_dir(&target).expect("target");
    std::fs::write(target.join("notes.txt"), b"mine").expect("a file in it");
    let e = durable::restore(&file, &target).expect_err("a non-empty target is refused");
    assert!(matches!(e, RestoreError::NotEmpty(_)), "{e}");
    let left: Vec<_> = std::fs::read_dir(&target).expect("list").collect();
    assert_eq!(left.len(), 1, "the target is left as it was");
}

#[test]
fn check_names_the_offset_of_a_flipped_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, _) = backup_file(dir.path(), &filled_store(1, 2_000));
    let data = dir.path().join("data");
    durable::restore(&file, &data).expect("restores");
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(&data)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        names
    };
    let healthy = durable::check(&data).expect("healthy");
    assert_eq!((healthy.buckets, healthy.keys), (1, 2_000));
    let files = listing();
    let snapshot = data.join(format!("snapshot-{:020}.snap", 0));
    let mut bytes = std::fs::read(&snapshot).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&snapshot, &bytes).expect("write");
    let e = durable::check(&data).expect_err("damage is found");
    let message = e.to_string();
    assert!(message.contains("snapshot-"), "{message}");
    assert!(
        message.contains(&format!("{at}")) || message.contains("byte"),
        "{message}"
    );
    assert_eq!(listing(), files, "check changes nothing");
}

proptest! {
    /// The reader takes a backup in pieces of any size alike, and no single flipped bit
    /// anywhere in it goes unnoticed.
    #[test]
    fn any_split_reads_alike_and_any_flipped_bit_is_found(
        cuts in proptest::collection::vec(0usize..4_000, 0..6),
        flip in any::<proptest::sample::Index>(),
        bit in 0u8..8,
    ) {
        let store = filled_store(2, 40);
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let bytes = runtime.block_on(take(&mut store.pipeline()));
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % bytes.len()).collect();
        cuts.sort_unstable();
        let mut reader = Reader::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            reader.feed(&bytes[from..cut]).expect("whole pieces check out");
            from = cut;
        }
        prop_assert_eq!(reader.finish(), Ok(Reader::new().summary_of(&bytes)));
        let mut damaged = bytes.clone();
        damaged[flip.index(bytes.len())] ^= 1 << bit;
        let mut reader = Reader::new();
        let read = reader.feed(&damaged).and_then(|()| reader.finish());
        prop_assert!(read.is_err(), "a flipped bit went unnoticed");
    }
}

impl Reader {
    /// The summary of `bytes` read in one piece.
    fn summary_of(mut self, bytes: &[u8]) -> Summary {
        self.feed(bytes).expect("checks out");
        self.finish().expect("whole")
    }
}
