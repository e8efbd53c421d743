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

/// Events that have arrived so far, as text (`poll_events` with a waker that does nothing).
fn events_now(subscription: &mut crate::Subscription) -> String {
    let mut out = bytes::BytesMut::new();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let _ = subscription.poll_events(Some(&mut out), &mut cx);
    String::from_utf8_lossy(&out).into_owned()
}

/// A subscriber of a bucket gets one event per `PUT` and `DELETE` that took effect (a
/// `DELETE` of a missing key too, as the guide's bucket broadcasts every delete), from
/// any connection, in the order they took effect; none for a write to another bucket, a
/// read, or a write refused. `NoBucket` for a bucket that does not exist.
pub async fn a_subscriber_gets_each_change_once_in_order<S: Store>(store: &S, prefix: &str) {
    let (b, other) = (name(prefix, "watched"), name(prefix, "unwatched"));
    let mut client = StoreClient::new(store);
    let mut watcher = store.pipeline();
    let none = watcher.subscribe(&b, 1 << 20).await;
    assert!(matches!(none, Ok(None)), "no bucket yet: {none:?}");
    assert_eq!(client.create(&b).await, Outcome::Done);
    assert_eq!(client.create(&other).await, Outcome::Done);
    let mut subscription = match watcher.subscribe(&b, 1 << 20).await {
        Ok(Some(subscription)) => subscription,
        other => panic!("subscribe: {other:?}"),
    };
    assert_eq!(watcher.subscribers(&b).await, Ok(Some(1)));
    let mut writer = store.pipeline();
    let mut answers = Vec::new();
    for (bucket, op) in [
        (
            &b,
            Op::Put {
                key: b"milk",
                value: b"1",
            },
        ),
        (
            &other,
            Op::Put {
                key: b"milk",
                value: b"9",
            },
        ),
        (&b, Op::Get { key: b"milk" }),
        (
            &b,
            Op::Put {
                key: b"milk",
                value: b"3",
            },
        ),
        (&b, Op::Delete { key: b"milk" }),
        (&b, Op::Delete { key: b"never" }),
    ] {
        writer.submit(bucket, op, &mut answers).await;
    }
    writer.flush(&mut answers).await;
    let expected = "milk SET TO 1\r\nmilk SET TO 3\r\nmilk DELETED\r\nnever DELETED\r\n";
    // A networked engine's events travel back: wait for them, boundedly.
    let mut got = String::new();
    for _ in 0..500 {
        got.push_str(&events_now(&mut subscription));
        if got.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(got, expected);
    drop(subscription);
    assert_eq!(watcher.subscribers(&b).await, Ok(Some(0)));
}
