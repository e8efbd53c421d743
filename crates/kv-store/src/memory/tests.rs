//! Tests of `memory`.

use super::*;

#[tokio::test]
async fn a_bucket_must_be_created_before_use() {
    let store = MemoryStore::new();
    assert!(store.bucket(b"shopping").await.unwrap().is_none());
    store.create(b"shopping").await.unwrap();
    assert!(store.bucket(b"shopping").await.unwrap().is_some());
}

#[tokio::test]
async fn creating_twice_keeps_the_contents() {
    let store = MemoryStore::new();
    store.create(b"b").await.unwrap();
    store
        .bucket_now(b"b")
        .unwrap()
        .put_now(b"k", b"v", Admit::WithinLimit)
        .expect("no limit");
    store.create(b"b").await.unwrap();
    assert_eq!(
        store.bucket_now(b"b").unwrap().get_now(b"k").as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn put_get_delete_round_trip_through_any_handle() {
    let store = MemoryStore::new();
    store.create(b"b").await.unwrap();
    let writer = store.bucket(b"b").await.unwrap().unwrap();
    let reader = store.bucket(b"b").await.unwrap().unwrap();
    writer.put(b"milk", b"1").await.unwrap();
    assert_eq!(
        reader.get(b"milk").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    writer.put(b"milk", b"3").await.unwrap();
    assert_eq!(
        reader.get(b"milk").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
    writer.delete(b"milk").await.unwrap();
    assert_eq!(reader.get(b"milk").await.unwrap(), None);
    writer.delete(b"milk").await.unwrap();
}

#[test]
fn get_into_appends_the_value_or_nothing() {
    let store = MemoryStore::new();
    store
        .create_now(b"b", Admit::WithinLimit)
        .expect("no limit");
    let bucket = store.bucket_now(b"b").unwrap();
    bucket
        .put_now(b"k", b"value", Admit::WithinLimit)
        .expect("no limit");
    let mut out = BytesMut::from(&b"before|"[..]);
    assert!(bucket.get_into_now(b"k", &mut out));
    assert!(!bucket.get_into_now(b"missing", &mut out));
    assert_eq!(&out[..], b"before|value");
}

#[test]
fn many_keys_survive_growth_overwrites_and_deletes() {
    // Enough keys to make every shard's table grow several times (rehashing with the
    // bucket's hasher), then overwrite half and delete a third.
    let bucket = MemoryBucket::new(Bytes::from_static(b"b"), Arc::default());
    let key = |i: u32| format!("key:{i}").into_bytes();
    for i in 0..20_000 {
        bucket
            .put_now(&key(i), &i.to_le_bytes(), Admit::WithinLimit)
            .expect("no limit");
    }
    for i in (0..20_000).step_by(2) {
        bucket
            .put_now(&key(i), b"even", Admit::WithinLimit)
            .expect("no limit");
    }
    for i in (0..20_000).step_by(3) {
        bucket.delete_now(&key(i));
    }
    for i in 0..20_000u32 {
        let expected: Option<Vec<u8>> = match (i % 3, i % 2) {
            (0, _) => None,
            (_, 0) => Some(b"even".to_vec()),
            _ => Some(i.to_le_bytes().to_vec()),
        };
        assert_eq!(bucket.get_now(&key(i)).map(|v| v.to_vec()), expected, "{i}");
    }
    assert_eq!(bucket.len(), 20_000 - 20_000usize.div_ceil(3));
}

#[tokio::test]
async fn the_default_get_into_matches_the_memory_one() {
    /// A bucket that only has the required methods, to test the trait's default.
    #[derive(Clone)]
    struct Plain(MemoryBucket);
    impl Bucket for Plain {
        fn name(&self) -> &[u8] {
            self.0.name()
        }
        async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
            self.0.put(key, value).await
        }
        async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
            self.0.get(key).await
        }
        async fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
            self.0.delete(key).await
        }
    }
    let plain = Plain(MemoryBucket::new(Bytes::from_static(b"b"), Arc::default()));
    plain.put(b"k", b"v").await.unwrap();
    let mut out = BytesMut::new();
    assert!(plain.get_into(b"k", &mut out).await.unwrap());
    assert!(!plain.get_into(b"nope", &mut out).await.unwrap());
    assert_eq!(&out[..], b"v");
}

#[test]
fn buckets_are_separate_and_names_case_sensitive() {
    let store = MemoryStore::new();
    store
        .create_now(b"a", Admit::WithinLimit)
        .expect("no limit");
    store
        .create_now(b"A", Admit::WithinLimit)
        .expect("no limit");
    store
        .bucket_now(b"a")
        .unwrap()
        .put_now(b"k", b"1", Admit::WithinLimit)
        .expect("no limit");
    assert_eq!(store.bucket_now(b"A").unwrap().get_now(b"k"), None);
    assert_eq!(store.bucket_now(b"a").unwrap().len(), 1);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let store = MemoryStore::new();
    store
        .create_now(b"b", Admit::WithinLimit)
        .expect("no limit");
    std::thread::scope(|s| {
        for t in 0..4 {
            let bucket = store.bucket_now(b"b").unwrap();
            s.spawn(move || {
                for i in 0..5_000 {
                    bucket
                        .put_now(format!("{t}-{i}").as_bytes(), b"v", Admit::WithinLimit)
                        .expect("no limit");
                }
            });
        }
    });
    assert_eq!(store.bucket_now(b"b").unwrap().len(), 20_000);
}

#[test]
fn a_limit_refuses_growth_but_not_shrinking_and_deletes_make_room() {
    let cost = crate::budget::entry_cost(2, 10);
    let limit = crate::budget::bucket_cost(1) + 3 * cost;
    let store = MemoryStore::with_limit(limit);
    store
        .create_now(b"b", Admit::WithinLimit)
        .expect("a bucket fits");
    let bucket = store.bucket_now(b"b").expect("the bucket");
    for key in [b"k1", b"k2", b"k3"] {
        bucket
            .put_now(key, &[b'v'; 10], Admit::WithinLimit)
            .expect("fits");
    }
    assert_eq!(store.memory(), (limit, limit));
    assert_eq!(
        bucket.put_now(b"k4", b"v", Admit::WithinLimit),
        Err(OverLimit)
    );
    assert_eq!(
        bucket.put_now(b"k1", &[b'w'; 11], Admit::WithinLimit),
        Err(OverLimit)
    );
    assert_eq!(store.create_now(b"c", Admit::WithinLimit), Err(OverLimit));
    // Same size and smaller are not growth; the refused writes changed nothing.
    bucket
        .put_now(b"k1", &[b'w'; 10], Admit::WithinLimit)
        .expect("same size");
    bucket
        .put_now(b"k2", b"v", Admit::WithinLimit)
        .expect("smaller");
    assert_eq!(bucket.get_now(b"k4"), None);
    bucket.delete_now(b"k3");
    assert_eq!(store.memory().0, limit - 9 - cost);
    bucket
        .put_now(b"k4", b"v", Admit::WithinLimit)
        .expect("room again");
    // What is already decided (replayed from disk) is counted, never refused.
    bucket
        .put_now(b"k5", &[b'v'; 100], Admit::Decided)
        .expect("decided");
    assert!(store.memory().0 > limit);
}
