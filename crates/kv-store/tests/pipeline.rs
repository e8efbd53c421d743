//! The durable engine's pipeline end to end: held-back writes survive a reopen, and a
//! connection's pipelined writes take a bounded number of syncs. (What every engine does,
//! and each engine's answer order, are unit tests: `conformance`, and each engine's own.)

use kv_store::{DurableStore, FsyncPolicy, Op, Outcome, Pipeline, Store, StoreClient};

#[tokio::test]
async fn durable_writes_flushed_together_are_visible_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DurableStore::open(dir.path(), FsyncPolicy::Always).expect("open");
    let mut pipeline = store.pipeline();
    let mut answers = Vec::new();
    let requests = [
        Op::Create,
        Op::Put {
            key: b"milk",
            value: b"1",
        },
        Op::Put {
            key: b"eggs",
            value: b"12",
        },
        Op::Delete { key: b"milk" },
    ];
    for op in requests {
        pipeline.submit(b"shop", op, &mut answers).await;
    }
    pipeline.flush(&mut answers).await;
    assert_eq!(answers, vec![Outcome::Done; 4]);
    store.close().await;
    drop((store, pipeline));

    let store = DurableStore::open(dir.path(), FsyncPolicy::Always).expect("reopen");
    let mut client = StoreClient::new(&store);
    assert_eq!(
        client.get(b"shop", b"eggs").await,
        Outcome::Value(Some("12".into()))
    );
    assert_eq!(client.get(b"shop", b"milk").await, Outcome::Value(None));
}

#[tokio::test]
async fn ten_thousand_pipelined_durable_puts_take_a_bounded_number_of_syncs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DurableStore::open(dir.path(), FsyncPolicy::Always).expect("open");
    assert_eq!(
        StoreClient::new(&store).create(b"shop").await,
        Outcome::Done
    );
    let before = store.counters();
    let mut pipeline = store.pipeline();
    let mut answers = Vec::new();
    // As a connection would send them: 32 at a time, each batch flushed.
    for batch in 0..10_000 / 32 + 1 {
        for i in batch * 32..((batch + 1) * 32).min(10_000) {
            let key = format!("key{i}");
            let op = Op::Put {
                key: key.as_bytes(),
                value: b"value",
            };
            pipeline.submit(b"shop", op, &mut answers).await;
        }
        pipeline.flush(&mut answers).await;
    }
    assert!(answers.iter().all(|a| *a == Outcome::Done));
    let syncs = store.counters().syncs - before.syncs;
    // One sync per flushed batch at most (313), where one per write would be 10,000.
    assert!(
        syncs <= 313,
        "{syncs} syncs for 10,000 writes in batches of 32"
    );
    assert_eq!(store.stats(), (1, 10_000));
}
