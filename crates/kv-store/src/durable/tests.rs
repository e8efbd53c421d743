//! Tests of `durable` that need its insides: the memory limit over writes that share a
//! group commit (docs/SECURITY.md, "Memory limit": charged as if sent one at a time).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::committer::{Committer, Message};
use super::dir::DataDir;
use super::record::Op;
use super::{recovery, DurableOptions, DurableStore, FsyncPolicy, COMPACT_AFTER};
use crate::budget::{bucket_cost, entry_cost};
use crate::memory::{out_of_memory, Admit, MemoryStore};
use crate::{Outcome, Pipeline, Store, StoreClient, StoreError};

/// A store on a fresh directory that holds at most `limit` bytes.
fn open_limited(dir: &Path, limit: u64) -> DurableStore {
    let options = DurableOptions {
        max_memory: limit,
        ..DurableOptions::default()
    };
    DurableStore::open_with(dir, options).expect("open the store")
}

/// A write as a connection's pipeline queues it.
enum Write<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

/// Sends `writes` to bucket `b` of `store` through one pipeline flush, so they travel as
/// one message and share one group commit; their results.
async fn flush_together<S: Store>(store: &S, writes: &[Write<'_>]) -> Vec<Result<(), String>> {
    let mut pipeline = store.pipeline();
    let mut answers = Vec::new();
    for write in writes {
        let op = match *write {
            Write::Put(key, value) => crate::Op::Put { key, value },
            Write::Delete(key) => crate::Op::Delete { key },
        };
        pipeline.submit(b"b", op, &mut answers).await;
    }
    pipeline.flush(&mut answers).await;
    let result = |outcome| match outcome {
        Outcome::Done => Ok(()),
        Outcome::Failed(e) => Err(e.to_string()),
        other => Err(format!("{other:?}")),
    };
    answers.into_iter().map(result).collect()
}

/// `CREATE b`, which must fit.
async fn create_b<S: Store>(store: &S) {
    let created = StoreClient::new(store).create(b"b").await;
    assert_eq!(created, Outcome::Done, "a bucket fits");
}

fn oom() -> Result<(), String> {
    Err(out_of_memory().to_string())
}

#[tokio::test]
async fn the_durable_engine_behaves_as_every_engine_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DurableStore::open(dir.path(), FsyncPolicy::Always).expect("open the store");
    crate::conformance::all(&store, "").await;
    store.close().await;
}

/// Writes are held back until a read, a write to a bucket not yet created, or the flush;
/// then answered together, in order, before what comes after (the engine's own order).
#[tokio::test]
async fn writes_are_held_back_until_a_read_or_the_flush() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DurableStore::open(dir.path(), FsyncPolicy::Always).expect("open the store");
    let mut pipeline = store.pipeline();
    let mut answers = Vec::new();
    let commits = || store.counters().commits;
    pipeline.submit(b"b", crate::Op::Create, &mut answers).await;
    let put = crate::Op::Put {
        key: b"k",
        value: b"1",
    };
    // Not created yet: the held CREATE is committed first, alone.
    pipeline.submit(b"b", put, &mut answers).await;
    assert_eq!((answers.len(), commits()), (1, 1));
    pipeline
        .submit(b"b", crate::Op::Delete { key: b"j" }, &mut answers)
        .await;
    assert_eq!(answers.len(), 1, "held back");
    pipeline
        .submit(b"b", crate::Op::Get { key: b"k" }, &mut answers)
        .await;
    assert_eq!(
        (answers.len(), commits()),
        (4, 2),
        "two writes in one commit, then the read"
    );
    pipeline.submit(b"b", crate::Op::Create, &mut answers).await;
    assert_eq!(
        answers.len(),
        5,
        "nothing held: CREATE of a bucket that exists is done"
    );
    pipeline.submit(b"b", put, &mut answers).await;
    pipeline.flush(&mut answers).await;
    let value = Outcome::Value(Some(Bytes::from_static(b"1")));
    let done = Outcome::Done;
    assert_eq!(
        answers,
        [
            done.clone(),
            done.clone(),
            done.clone(),
            value,
            done.clone(),
            done
        ]
    );
    store.close().await;
}

#[tokio::test]
async fn a_delete_frees_for_a_put_of_the_same_key_in_the_same_group() {
    let limit = bucket_cost(1) + entry_cost(1, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let durable = open_limited(dir.path(), limit);
    let memory = MemoryStore::with_limit(limit);
    let writes = [
        Write::Put(b"k", b"v"),
        Write::Delete(b"k"),
        Write::Put(b"k", b"v"),
    ];
    create_b(&durable).await;
    create_b(&memory).await;
    let ok = vec![Ok(()); 3];
    assert_eq!(flush_together(&durable, &writes).await, ok);
    assert_eq!(flush_together(&memory, &writes).await, ok);
    assert_eq!(durable.memory(), memory.memory());
    assert_eq!(durable.memory().0, limit);
    durable.close().await;
}

#[tokio::test]
async fn replacing_every_key_in_one_group_leaves_no_room_for_new_ones() {
    let cost = entry_cost(2, 8);
    let limit = bucket_cost(1) + 5 * cost;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_limited(dir.path(), limit);
    create_b(&store).await;
    let keys: Vec<Vec<u8>> = (0..5).map(|i| format!("k{i}").into_bytes()).collect();
    let fill: Vec<Write> = keys.iter().map(|k| Write::Put(k, b"12345678")).collect();
    assert_eq!(flush_together(&store, &fill).await, vec![Ok(()); 5]);
    assert_eq!(store.memory().0, limit);
    for round in 0..4 {
        let new: Vec<Vec<u8>> = (0..5)
            .map(|i| format!("n{round}{i}").into_bytes())
            .collect();
        let replace = keys
            .iter()
            .flat_map(|k| [Write::Delete(k), Write::Put(k, b"abcdefgh")]);
        let grow = new.iter().map(|k| Write::Put(k, b"12345678"));
        // As one message, as the bug was seen: the new keys after the replacements...
        let together: Vec<Write> = replace.chain(grow).collect();
        let mut expected = vec![Ok(()); 10];
        expected.extend(vec![oom(); 5]);
        assert_eq!(flush_together(&store, &together).await, expected, "{round}");
        assert_eq!(store.memory().0, limit, "{round}");
        // ...and in a group of their own.
        let grow: Vec<Write> = new.iter().map(|k| Write::Put(k, b"12345678")).collect();
        assert_eq!(flush_together(&store, &grow).await, vec![oom(); 5]);
        assert_eq!(store.memory().0, limit, "{round}");
    }
    store.close().await;
}

/// A committer on `dir` whose mirror holds at most `limit` bytes, not yet running, with
/// the mirror: `prefix` is applied to it first, as a memory store would (a write to a
/// bucket it lacks is left out, as a client would get `NOT FOUND`).
fn committer(dir: &Path, limit: u64, prefix: &[Op]) -> (Committer, MemoryStore) {
    let data_dir = DataDir::open(dir).expect("open the dir");
    let mirror = MemoryStore::with_limit(limit);
    let recovered = recovery::recover(&data_dir, &mirror).expect("recover");
    for op in prefix {
        one_at_a_time(&mirror, op);
    }
    let committer = Committer::new(
        Arc::new(data_dir),
        recovered.journal,
        mirror.clone(),
        FsyncPolicy::Always,
        COMPACT_AFTER,
        recovered.snapshot_len,
        Arc::default(),
    );
    (committer, mirror)
}

/// Runs `committer` on `messages` (each one connection's writes), all queued before it
/// starts, so it takes them as one group; which writes of each the limit refused.
fn one_group(committer: Committer, messages: Vec<Vec<Op>>) -> Vec<Vec<usize>> {
    let (queue, received) = mpsc::channel(messages.len().max(1));
    let answers: Vec<_> = messages
        .into_iter()
        .map(|ops| {
            let (ack, answer) = oneshot::channel();
            assert!(queue.try_send(Message::Writes(ops, ack)).is_ok());
            answer
        })
        .collect();
    // With the queue closed, the committer returns once it has answered what is queued.
    drop(queue);
    committer.run(received);
    let answers = answers.into_iter().map(|answer| {
        let committed = answer.blocking_recv().expect("answered");
        assert_eq!(committed.verdict, Ok::<(), StoreError>(()));
        committed.refused
    });
    answers.collect()
}

/// Applies `op` to a memory store as a client sending it alone would: whether the limit
/// admitted it, or `None` if it names a bucket the store lacks (`NOT FOUND`).
fn one_at_a_time(store: &MemoryStore, op: &Op) -> Option<bool> {
    match op {
        Op::Create { bucket } => Some(store.create_now(bucket, Admit::WithinLimit).is_ok()),
        Op::Put { bucket, key, value } => store
            .bucket_now(bucket)
            .map(|b| b.put_now(key, value, Admit::WithinLimit).is_ok()),
        Op::Delete { bucket, key } => store.bucket_now(bucket).map(|b| {
            b.delete_now(key);
            true
        }),
    }
}

fn create(bucket: &'static [u8]) -> Op {
    let bucket = Bytes::from_static(bucket);
    Op::Create { bucket }
}

fn put(bucket: &'static [u8], key: &'static [u8], value: &'static [u8]) -> Op {
    let (bucket, key) = (Bytes::from_static(bucket), Bytes::from_static(key));
    let value = Bytes::from_static(value);
    Op::Put { bucket, key, value }
}

fn delete(bucket: &'static [u8], key: &'static [u8]) -> Op {
    let (bucket, key) = (Bytes::from_static(bucket), Bytes::from_static(key));
    Op::Delete { bucket, key }
}

#[test]
fn a_second_connections_writes_are_charged_after_the_firsts() {
    let limit = bucket_cost(1) + entry_cost(1, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let (committer, mirror) = committer(dir.path(), limit, &[]);
    let first = vec![create(b"b"), put(b"b", b"k", b"v")];
    // Full after the first's writes: j does not fit until the first's k is deleted.
    let second = vec![
        put(b"b", b"j", b"w"),
        delete(b"b", b"k"),
        put(b"b", b"j", b"w"),
    ];
    let memory = MemoryStore::with_limit(limit);
    let ops = first.iter().chain(&second);
    let by_one: Vec<_> = ops.map(|op| one_at_a_time(&memory, op)).collect();
    assert_eq!(by_one, [true, true, false, true, true].map(Some));
    assert_eq!(one_group(committer, vec![first, second]), [vec![], vec![0]]);
    assert_eq!(mirror.memory(), memory.memory());
    let bucket = mirror.bucket_now(b"b").expect("created in the group");
    assert_eq!(
        (bucket.get_now(b"k"), bucket.get_now(b"j").as_deref()),
        (None, Some(&b"w"[..]))
    );
}

/// A random write over two buckets and three keys, values up to 40 bytes; and whether it
/// starts a new message (another connection's).
fn any_op() -> impl Strategy<Value = (Op, bool)> {
    let name = |i: u8| Bytes::from(vec![b'a' + i]);
    let op = (0u8..3, 0u8..2, 0u8..3, 0usize..40).prop_map(move |(kind, b, k, len)| {
        let (bucket, key) = (name(b), name(k));
        match kind {
            0 => Op::Create { bucket },
            1 => Op::Put {
                bucket,
                key,
                value: Bytes::from(vec![b'v'; len]),
            },
            _ => Op::Delete { bucket, key },
        }
    });
    (op, any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Writes sent as one group get the verdicts, and leave the used memory, that they
    /// would applied to a memory store one at a time with the same limit.
    #[test]
    fn a_group_is_charged_as_its_writes_one_at_a_time(
        limit in bucket_cost(1)..2 * bucket_cost(1) + 6 * entry_cost(1, 40),
        prefix in proptest::collection::vec(any_op(), 0..8),
        group in proptest::collection::vec(any_op(), 1..24),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut prefix: Vec<Op> = prefix.into_iter().map(|(op, _)| op).collect();
        prefix.insert(0, create(b"a"));
        let (committer, mirror) = committer(dir.path(), limit, &prefix);
        let memory = MemoryStore::with_limit(limit);
        for op in &prefix {
            one_at_a_time(&memory, op);
        }
        let (mut messages, mut refused) = (Vec::<Vec<Op>>::new(), Vec::<Vec<usize>>::new());
        for (op, new_message) in group {
            let Some(admitted) = one_at_a_time(&memory, &op) else { continue };
            if new_message || messages.is_empty() {
                messages.push(Vec::new());
                refused.push(Vec::new());
            }
            let (ops, out) = (messages.last_mut().unwrap(), refused.last_mut().unwrap());
            if !admitted {
                out.push(ops.len());
            }
            ops.push(op);
        }
        prop_assert_eq!(one_group(committer, messages), refused);
        prop_assert_eq!(mirror.memory(), memory.memory());
        prop_assert_eq!(mirror.stats(), memory.stats());
    }
}
