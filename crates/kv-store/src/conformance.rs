//! What every engine does, as checks generic over [`Store`]: each engine's tests run them
//! all against it (the memory and durable engines here, the cluster engine against a real
//! Redis Cluster), so the three behave alike through the one seam, and each engine's
//! answer order is tested on its own.
//!
//! Each check panics, naming what differed, if the engine gets it wrong. Bucket names
//! start with `prefix`, so that engines whose data outlives the test (a cluster) can run
//! every check on one store.

use bytes::Bytes;

use crate::pipeline::{Answers, Op, Outcome, Pipeline};
use crate::{Store, StoreClient};

/// Runs every check against `store`, whose buckets named `prefix…` must not exist yet.
pub async fn all<S: Store>(store: &S, prefix: &str) {
    buckets_must_be_created_and_creating_again_keeps_them(store, prefix).await;
    put_get_delete_round_trip_between_connections(store, prefix).await;
    buckets_are_separate_and_names_are_bytes(store, prefix).await;
    pipelined_requests_are_answered_in_order(store, prefix).await;
    answers_held_back_are_all_given_by_the_flush(store, prefix).await;
}

fn name(prefix: &str, bucket: &str) -> Vec<u8> {
    format!("{prefix}{bucket}").into_bytes()
}

fn value(bytes: &'static [u8]) -> Outcome {
    Outcome::Value(Some(Bytes::from_static(bytes)))
}

/// `NoBucket` before `CREATE`; `CREATE` of an existing bucket is `Done` and changes
/// nothing.
pub async fn buckets_must_be_created_and_creating_again_keeps_them<S: Store>(
    store: &S,
    prefix: &str,
) {
    let mut client = StoreClient::new(store);
    let b = name(prefix, "created");
    assert_eq!(client.put(&b, b"k", b"v").await, Outcome::NoBucket);
    assert_eq!(client.get(&b, b"k").await, Outcome::NoBucket);
    assert_eq!(client.delete(&b, b"k").await, Outcome::NoBucket);
    assert_eq!(client.create(&b).await, Outcome::Done);
    assert_eq!(client.put(&b, b"k", b"v").await, Outcome::Done);
    assert_eq!(client.create(&b).await, Outcome::Done);
    assert_eq!(client.get(&b, b"k").await, value(b"v"));
}

/// What one connection writes, another reads at once; a missing key reads as no value and
/// deletes as `Done`.
pub async fn put_get_delete_round_trip_between_connections<S: Store>(store: &S, prefix: &str) {
    let (mut writer, mut reader) = (StoreClient::new(store), StoreClient::new(store));
    let b = name(prefix, "shared");
    assert_eq!(writer.create(&b).await, Outcome::Done);
    assert_eq!(reader.get(&b, b"milk").await, Outcome::Value(None));
    assert_eq!(writer.put(&b, b"milk", b"1").await, Outcome::Done);
    assert_eq!(reader.get(&b, b"milk").await, value(b"1"));
    assert_eq!(writer.put(&b, b"milk", b"3").await, Outcome::Done);
    assert_eq!(reader.get(&b, b"milk").await, value(b"3"));
    assert_eq!(writer.delete(&b, b"milk").await, Outcome::Done);
    assert_eq!(reader.get(&b, b"milk").await, Outcome::Value(None));
    assert_eq!(writer.delete(&b, b"milk").await, Outcome::Done);
}

/// Buckets do not share keys; names, keys and values are bytes, case and all.
pub async fn buckets_are_separate_and_names_are_bytes<S: Store>(store: &S, prefix: &str) {
    let mut client = StoreClient::new(store);
    let (lower, upper) = (name(prefix, "case"), name(prefix, "CASE"));
    let binary = [name(prefix, "bin").as_slice(), &[0xff, 0x00, b'{', b'}']].concat();
    for bucket in [&lower, &upper, &binary] {
        assert_eq!(client.create(bucket).await, Outcome::Done);
    }
    assert_eq!(client.put(&lower, b"k", b"lower").await, Outcome::Done);
    assert_eq!(
        client.put(&binary, &[0xfe], &[0x00, 0x01]).await,
        Outcome::Done
    );
    assert_eq!(client.get(&upper, b"k").await, Outcome::Value(None));
    assert_eq!(client.get(&lower, b"K").await, Outcome::Value(None));
    assert_eq!(client.get(&lower, b"k").await, value(b"lower"));
    assert_eq!(client.get(&binary, &[0xfe]).await, value(&[0x00, 0x01]));
}

/// A connection's requests submitted together, over several buckets, reads between writes,
/// a bucket created in the middle: every request sees those before it, and the answers come
/// in the order the requests went in.
pub async fn pipelined_requests_are_answered_in_order<S: Store>(store: &S, prefix: &str) {
    let (b, c) = (name(prefix, "order-b"), name(prefix, "order-c"));
    let requests: [(&[u8], Op<'_>); 12] = [
        (&b, Op::Create),
        (
            &b,
            Op::Put {
                key: b"k",
                value: b"1",
            },
        ),
        (&b, Op::Get { key: b"k" }),
        (
            &c,
            Op::Put {
                key: b"k",
                value: b"x",
            },
        ),
        (
            &b,
            Op::Put {
                key: b"k",
                value: b"2",
            },
        ),
        (&c, Op::Get { key: b"k" }),
        (&b, Op::Get { key: b"k" }),
        (&c, Op::Create),
        (
            &c,
            Op::Put {
                key: b"k",
                value: b"3",
            },
        ),
        (&b, Op::Delete { key: b"k" }),
        (&c, Op::Get { key: b"k" }),
        (&b, Op::Get { key: b"k" }),
    ];
    let expected = [
        Outcome::Done,
        Outcome::Done,
        value(b"1"),
        Outcome::NoBucket,
        Outcome::Done,
        Outcome::NoBucket,
        value(b"2"),
        Outcome::Done,
        Outcome::Done,
        Outcome::Done,
        value(b"3"),
        Outcome::Value(None),
    ];
    let mut pipeline = store.pipeline();
    let mut answers = Vec::new();
    for (bucket, op) in requests {
        pipeline.submit(bucket, op, &mut answers).await;
    }
    pipeline.flush(&mut answers).await;
    assert_eq!(answers, expected);
}

/// Whatever an engine holds back, the flush answers, and then every write is visible to
/// another connection.
pub async fn answers_held_back_are_all_given_by_the_flush<S: Store>(store: &S, prefix: &str) {
    let b = name(prefix, "flushed");
    let mut pipeline = store.pipeline();
    let mut answers = Counted::default();
    pipeline.submit(&b, Op::Create, &mut answers).await;
    let keys: Vec<String> = (0..100).map(|i| format!("key{i}")).collect();
    for key in &keys {
        let op = Op::Put {
            key: key.as_bytes(),
            value: b"v",
        };
        pipeline.submit(&b, op, &mut answers).await;
    }
    pipeline.flush(&mut answers).await;
    assert_eq!((answers.done, answers.other), (101, Vec::new()));
    let mut reader = StoreClient::new(store);
    for key in &keys {
        assert_eq!(reader.get(&b, key.as_bytes()).await, value(b"v"), "{key}");
    }
}

/// Counts `Done`s; keeps anything else.
#[derive(Default)]
struct Counted {
    done: usize,
    other: Vec<Outcome>,
}

impl Answers for Counted {
    fn answer(&mut self, answer: crate::Answer<'_>) {
        match answer {
            crate::Answer::Done => self.done += 1,
            other => self.other.push(other.into()),
        }
    }
}
