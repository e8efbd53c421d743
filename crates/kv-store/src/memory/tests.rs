//! Tests of `memory`.

use super::*;

#[tokio::test]
async fn the_memory_engine_behaves_as_every_engine_does() {
    crate::conformance::all(&MemoryStore::new(), "").await;
}

#[tokio::test]
async fn creating_twice_keeps_the_contents() {
    let store = MemoryStore::new();
    let mut client = crate::StoreClient::new(&store);
    assert_eq!(client.create(b"b").await, crate::Outcome::Done);
    store
        .bucket_now(b"b")
        .unwrap()
        .put_now(b"k", b"v", Admit::WithinLimit)
        .expect("no limit");
    assert_eq!(client.create(b"b").await, crate::Outcome::Done);
    assert_eq!(
        store.bucket_now(b"b").unwrap().get_now(b"k").as_deref(),
        Some(&b"v"[..])
    );
}

/// Every request is answered before `submit` returns: nothing is held back, so a flush
/// has nothing to say (the engine's own order).
#[tokio::test]
async fn each_request_is_answered_by_its_own_submit() {
    let store = MemoryStore::new();
    let mut pipeline = store.pipeline();
    let mut answers = Vec::new();
    let requests = [
        Op::Create,
        Op::Put {
            key: b"k",
            value: b"v",
        },
        Op::Get { key: b"k" },
        Op::Delete { key: b"k" },
        Op::Get { key: b"k" },
    ];
    for (i, op) in requests.into_iter().enumerate() {
        pipeline.submit(b"b", op, &mut answers).await;
        assert_eq!(answers.len(), i + 1, "{op:?} answered at once");
    }
    pipeline.flush(&mut answers).await;
    assert_eq!(answers.len(), requests.len());
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
