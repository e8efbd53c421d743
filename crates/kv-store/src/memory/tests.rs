//! Tests of `memory`.

use super::*;

#[tokio::test]
async fn the_memory_engine_behaves_as_every_engine_does() {
    let store = MemoryStore::new();
    crate::conformance::all(&store, "").await;
    crate::conformance::a_subscriber_gets_each_change_once_in_order(&store, "").await;
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
    let bucket = MemoryBucket::new(Bytes::from_static(b"b"), Arc::default(), Arc::default());
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

/// One client's write in the property below: which client, which key, a value or a delete.
fn any_write() -> impl proptest::strategy::Strategy<Value = (usize, u8, Option<u8>)> {
    (0..3usize, 0..4u8, proptest::option::of(b'a'..=b'z'))
}

proptest::proptest! {
    /// A subscriber of an empty bucket, given every event, rebuilds exactly the bucket's
    /// final contents, whatever the writes of several clients and their interleaving.
    #[test]
    fn a_subscriber_rebuilds_the_bucket_from_its_events(
        writes in proptest::collection::vec(any_write(), 0..64),
    ) {
        use futures_util::FutureExt;
        let store = MemoryStore::new();
        store.create_now(b"b", Admit::WithinLimit).expect("no limit");
        let mut subscription = store.pipeline().subscribe(b"b", 1 << 20).now_or_never()
            .expect("ready").expect("no error").expect("the bucket");
        let mut clients: Vec<_> = (0..3).map(|_| store.pipeline()).collect();
        let mut answers = Vec::new();
        for (client, key, value) in &writes {
            let key = [b'k', *key];
            let op = match value {
                Some(value) => Op::Put { key: &key, value: std::slice::from_ref(value) },
                None => Op::Delete { key: &key },
            };
            let _ = clients[*client].submit(b"b", op, &mut answers).now_or_never();
        }
        let mut out = bytes::BytesMut::new();
        let _ = subscription.poll_events(Some(&mut out), &mut std::task::Context::from_waker(std::task::Waker::noop()));
        let mut rebuilt = std::collections::BTreeMap::new();
        for line in out[..].split(|b: &u8| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match kv_protocol::Event::decode(line) {
                Some(kv_protocol::Event::Set { key, value }) => { rebuilt.insert(key.to_vec(), value.to_vec()); }
                Some(kv_protocol::Event::Deleted { key }) => { rebuilt.remove(key); }
                None => proptest::prop_assert!(false, "not an event: {:?}", line),
            }
        }
        let bucket = store.bucket_now(b"b").expect("the bucket");
        for key in 0..4u8 {
            let key = [b'k', key];
            proptest::prop_assert_eq!(bucket.get_now(&key).map(|v| v.to_vec()), rebuilt.get(&key[..]).cloned());
        }
    }
}
