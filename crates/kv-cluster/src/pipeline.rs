//! [`ClusterPipeline`]: a connection's requests that arrived together, sent to the cluster
//! together.
//!
//! At the flush the queued requests are grouped by bucket, keeping their order within each
//! bucket; each bucket's group is one Redis pipeline to the master that holds the bucket
//! (one round trip), and the groups of different buckets go out concurrently. Order
//! across buckets cannot be observed by this connection (its replies are put back in
//! request order), and within a bucket Redis runs a pipeline's commands in order, so a
//! `GET` sees the `PUT` queued before it.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use kv_store::{Outcome, Pipeline, StoreError};
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{RedisError, ServerErrorKind, Value};
use tokio::time::Instant;

use crate::layout::{self, Op};
use crate::{ClusterBucket, Shared};

/// One queued request.
struct Queued {
    /// The bucket's Redis key.
    key: Bytes,
    op: Op,
}

/// One connection's queue of requests for the cluster.
pub struct ClusterPipeline {
    shared: Arc<Shared>,
    queue: Vec<Queued>,
    /// Positions in `queue`, sorted by bucket for the flush (kept for its allocation).
    order: Vec<usize>,
    /// The last flush's results, one per request.
    results: Vec<Result<Outcome, StoreError>>,
}

impl ClusterPipeline {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            queue: Vec::new(),
            order: Vec::new(),
            results: Vec::new(),
        }
    }

    fn push(&mut self, bucket: &ClusterBucket, op: Op) {
        self.queue.push(Queued {
            key: bucket.key.clone(),
            op,
        });
    }
}

impl Pipeline for ClusterPipeline {
    type Bucket = ClusterBucket;

    fn put(
        &mut self,
        bucket: &ClusterBucket,
        key: &[u8],
        value: &[u8],
    ) -> Option<Result<(), StoreError>> {
        let op = Op::Put(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        self.push(bucket, op);
        None
    }

    fn delete(&mut self, bucket: &ClusterBucket, key: &[u8]) -> Option<Result<(), StoreError>> {
        self.push(bucket, Op::Delete(Bytes::copy_from_slice(key)));
        None
    }

    fn get(&mut self, bucket: &ClusterBucket, key: &[u8]) -> bool {
        self.push(bucket, Op::Get(Bytes::copy_from_slice(key)));
        true
    }

    fn queued(&self) -> usize {
        self.queue.len()
    }

    async fn flush(&mut self) -> &[Result<Outcome, StoreError>] {
        let deadline = Instant::now() + self.shared.options.timeout;
        let queue = &self.queue;
        self.order.clear();
        self.order.extend(0..queue.len());
        // Stable: a bucket's requests keep their order.
        self.order.sort_by(|&a, &b| queue[a].key.cmp(&queue[b].key));
        let groups: Vec<&[usize]> = self
            .order
            .chunk_by(|&a, &b| queue[a].key == queue[b].key)
            .collect();
        let shared = &self.shared;
        let done = join_all(groups.iter().map(|group| {
            let ops: Vec<&Op> = group.iter().map(|&i| &queue[i].op).collect();
            let key = &queue[group[0]].key;
            async move { execute(shared, key, &ops, deadline).await }
        }))
        .await;
        self.results.clear();
        self.results
            .resize(queue.len(), Err(StoreError::new("cluster: no reply")));
        for (group, results) in groups.iter().zip(done) {
            for (&i, result) in group.iter().zip(results) {
                self.results[i] = result;
            }
        }
        self.queue.clear();
        &self.results
    }
}

/// `CREATE`: sets the bucket's marker if absent (and waits for replicas, if asked to).
pub(crate) async fn create(
    shared: &Shared,
    key: &[u8],
    deadline: Instant,
) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    pipe.add_command(layout::create_command(key));
    add_wait(shared, &mut pipe, deadline);
    shared.stats.sent(1);
    let replies = send(shared, key, pipe, 1, deadline).await?;
    check_wait(shared, &replies, 1)?;
    match replies.first() {
        Some(Value::Int(_)) => Ok(()),
        Some(Value::ServerError(e)) => Err(shared.stats.failed(1, format!("cluster: {e}"))),
        other => Err(shared
            .stats
            .failed(1, format!("cluster: unexpected reply {other:?}"))),
    }
}

/// Carries out `ops` on the bucket under `key` as one pipeline, ending in `WAIT` when it
/// writes and replicas must acknowledge; one result per op, in order. A script the node
/// does not have yet (`NOSCRIPT`: a new or restarted node) is loaded and the pipeline sent
/// once more: no write ran the first time, and reading again is harmless.
pub(crate) async fn execute(
    shared: &Shared,
    key: &[u8],
    ops: &[&Op],
    deadline: Instant,
) -> Vec<Result<Outcome, StoreError>> {
    shared.stats.sent(ops.len());
    let mut loaded = false;
    loop {
        let pipe = build(shared, key, ops, deadline);
        let replies = match send(shared, key, pipe, ops.len(), deadline).await {
            Ok(replies) => replies,
            Err(e) => return vec![Err(e); ops.len()],
        };
        if !loaded && replies.iter().any(is_no_script) {
            loaded = true;
            if let Err(e) = load_script(shared, key, deadline).await {
                return vec![Err(e); ops.len()];
            }
            continue;
        }
        return outcomes(shared, ops, replies);
    }
}

/// The pipeline for `ops`.
fn build(shared: &Shared, key: &[u8], ops: &[&Op], deadline: Instant) -> redis::Pipeline {
    let sha = shared.script.get_hash();
    let mut pipe = redis::pipe();
    for op in ops {
        pipe.add_command(op.command(key, sha));
    }
    if ops.iter().any(|op| op.is_write()) {
        add_wait(shared, &mut pipe, deadline);
    }
    pipe
}

/// Ends `pipe` with `WAIT` if writes need replicas, timing out well before `deadline`
/// so that its answer (how many replicas had the writes) arrives in time.
fn add_wait(shared: &Shared, pipe: &mut redis::Pipeline, deadline: Instant) {
    let replicas = shared.options.wait_replicas;
    if replicas > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait_ms = u64::try_from(left.as_millis() * 3 / 4).unwrap_or(u64::MAX);
        pipe.add_command(layout::wait_command(replicas, wait_ms));
    }
}

/// Each op's result from the replies, the writes turned into errors if `WAIT` says too
/// few replicas have them.
fn outcomes(shared: &Shared, ops: &[&Op], replies: Vec<Value>) -> Vec<Result<Outcome, StoreError>> {
    let writes = ops.iter().filter(|op| op.is_write()).count();
    let waited = if writes > 0 {
        check_wait(shared, &replies, ops.len())
    } else {
        Ok(())
    };
    let mut replies = replies.into_iter();
    ops.iter()
        .map(|op| {
            let result = match replies.next() {
                Some(reply) => op.outcome(reply),
                None => Err(StoreError::new("cluster: missing reply")),
            };
            let result = match (&waited, op.is_write(), result) {
                (Err(e), true, Ok(Outcome::Written)) => Err(e.clone()),
                (_, _, result) => result,
            };
            if let Err(e) = &result {
                shared.stats.failed(1, e.message().to_string());
            }
            result
        })
        .collect()
}

/// With `--cluster-wait-replicas N`: whether the `WAIT` after the first `at` replies says
/// at least N replicas have the writes.
fn check_wait(shared: &Shared, replies: &[Value], at: usize) -> Result<(), StoreError> {
    let wanted = shared.options.wait_replicas;
    if wanted == 0 {
        return Ok(());
    }
    match replies.get(at) {
        Some(Value::Int(acked)) if *acked >= i64::from(wanted) => Ok(()),
        Some(Value::Int(acked)) => Err(StoreError::new(format!(
            "only {acked} of {wanted} replicas acknowledged the write in time (it is on the \
             master and may yet reach them)"
        ))),
        other => Err(StoreError::new(format!(
            "cluster: no answer to WAIT ({other:?}); the write may have been applied"
        ))),
    }
}

/// Sends `pipe`, which carries `requests` client requests, to the master of the slot `key`
/// hashes to, within `deadline`.
async fn send(
    shared: &Shared,
    key: &[u8],
    pipe: redis::Pipeline,
    requests: usize,
    deadline: Instant,
) -> Result<Vec<Value>, StoreError> {
    let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
    let count = pipe.len();
    let mut connection = shared.connection.clone();
    shared.stats.round_trip();
    let sent = connection.route_pipeline(pipe, 0, count, route);
    match tokio::time::timeout_at(deadline, sent).await {
        Ok(Ok(replies)) => Ok(replies),
        Ok(Err(e)) => Err(failure(shared, requests, &e)),
        Err(_elapsed) => Err(timed_out(shared, requests)),
    }
}

/// `SCRIPT LOAD` of the write script on the node that holds `key`.
async fn load_script(shared: &Shared, key: &[u8], deadline: Instant) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    pipe.cmd("SCRIPT").arg("LOAD").arg(layout::WRITE_SCRIPT);
    match send(shared, key, pipe, 1, deadline).await?.first() {
        Some(Value::ServerError(e)) => Err(shared.stats.failed(1, format!("cluster: {e}"))),
        _ => Ok(()),
    }
}

fn is_no_script(reply: &Value) -> bool {
    matches!(reply, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript))
}

/// The error for requests that the redis client gave up on (its own timeout included).
fn failure(shared: &Shared, requests: usize, e: &RedisError) -> StoreError {
    if e.is_timeout() {
        return timed_out(shared, requests);
    }
    shared.stats.failed(requests, format!("cluster: {e}"))
}

/// The error for requests the cluster did not answer in time.
fn timed_out(shared: &Shared, requests: usize) -> StoreError {
    shared.stats.timed_out(requests);
    StoreError::new(format!(
        "timeout: the cluster did not answer within {} ms (a write may have been applied)",
        shared.options.timeout.as_millis()
    ))
}
