//! Writes that arrive together travel together (the `Pipeline` seam): results in order,
//! read-your-writes once flushed, one group commit for a whole pipeline in durable mode.

use kv_store::{Bucket, DurableStore, FsyncPolicy, MemoryStore, Outcome, Pipeline, Store};

async fn bucket<S: Store>(store: &S, name: &[u8]) -> S::Bucket {
    store.create(name).await.expect("create");
    store
        .bucket(name)
        .await
        .expect("lookup")
        .expect("the bucket")
}

#[tokio::test]
async fn the_memory_engine_carries_each_write_out_at_once() {
    let store = MemoryStore::new();
    let shop = bucket(&store, b"shop").await;
    let mut pipeline = store.pipeline();
    assert_eq!(pipeline.put(&shop, b"milk", b"1"), Some(Ok(())));
    assert_eq!(
        shop.get(b"milk").await.expect("get").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(pipeline.delete(&shop, b"milk"), Some(Ok(())));
    assert_eq!(pipeline.queued(), 0);
    assert!(pipeline.flush().await.is_empty());
    assert_eq!(shop.get(b"milk").await.expect("get"), None);
}

#[tokio::test]
async fn durable_writes_wait_for_the_flush_then_are_visible_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DurableStore::open(dir.path(), FsyncPolicy::Always).expect("open");
    let shop = bucket(&store, b"shop").await;
    let mut pipeline = store.pipeline();
    assert_eq!(pipeline.put(&shop, b"milk", b"1"), None);
    assert_eq!(pipeline.put(&shop, b"eggs", b"12"), None);
    assert_eq!(pipeline.delete(&shop, b"milk"), None);
    assert_eq!(pipeline.queued(), 3);
    assert_eq!(
        shop.get(b"eggs").await.expect("get"),
        None,
        "not before the flush"
    );
    let written = Ok(Outcome::Written);
    assert_eq!(
        pipeline.flush().await,
        &[written.clone(), written.clone(), written]
    );
    assert_eq!(pipeline.queued(), 0);
    assert_eq!(
        shop.get(b"eggs").await.expect("get").as_deref(),
        Some(&b"12"[..])
    );
    assert_eq!(
        shop.get(b"milk").await.expect("get"),
        None,
        "applied in order"
    );
    store.close().await;
    drop((store, shop, pipeline));

    let store = DurableStore::open(dir.path(), FsyncPolicy::Always).expect("reopen");
    let shop = store
        .bucket(b"shop")
        .await
        .expect("lookup")
        .expect("the bucket");
    assert_eq!(
        shop.get(b"eggs").await.expect("get").as_deref(),
        Some(&b"12"[..])
    );
    assert_eq!(shop.get(b"milk").await.expect("get"), None);
}

#[tokio::test]
async fn ten_thousand_pipelined_durable_puts_take_a_bounded_number_of_syncs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DurableStore::open(dir.path(), FsyncPolicy::Always).expect("open");
    let shop = bucket(&store, b"shop").await;
    let before = store.counters();
    let mut pipeline = store.pipeline();
    // As a connection would send them: 32 at a time, each batch flushed.
    for batch in 0..10_000 / 32 + 1 {
        for i in batch * 32..((batch + 1) * 32).min(10_000) {
            pipeline.put(&shop, format!("key{i}").as_bytes(), b"value");
        }
        assert!(pipeline.flush().await.iter().all(Result::is_ok));
    }
    let syncs = store.counters().syncs - before.syncs;
    // One sync per flushed batch at most (313), where one per write would be 10,000.
    assert!(
        syncs <= 313,
        "{syncs} syncs for 10,000 writes in batches of 32"
    );
    assert_eq!(store.stats(), (1, 10_000));
}
