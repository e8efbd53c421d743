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
use kv_store::{Answer, Answers, Outcome, Pipeline, StoreError, StoreReport, Subscription};
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{RedisError, ServerErrorKind, Value};
use tokio::time::Instant;

use crate::layout::{self, Op};
use crate::Shared;

/// A `GET` submitted when this many reads are held back carries them out: the values they
/// read wait in memory until then, and the connection writes output only between lines, so
/// this bounds what one client's pipelined `GET`s make the server hold (64 values of up to
/// `--max-line-bytes` each); 2,000 pipelined requests still travel in about 32 round
/// trips. Writes are not bounded: their replies are a few bytes.
const MAX_HELD_READS: usize = 64;

/// One request held back.
struct Queued {
    /// The bucket's Redis key.
    key: Bytes,
    op: Op,
}

/// One connection's way into the cluster: every request is held back (each costs a round
/// trip, so those that arrived together travel together) until the flush, or until
/// [`MAX_HELD_READS`] reads are held.
pub struct ClusterPipeline {
    shared: Arc<Shared>,
    queue: Vec<Queued>,
    /// Reads in `queue`.
    reads: usize,
    /// The Redis key of the bucket named last: most clients work in one bucket, so this
    /// saves building the key per request.
    last_key: Option<Bytes>,
    /// Positions in `queue`, sorted by bucket for the flush (kept for its allocation).
    order: Vec<usize>,
    /// The flush's results, one per request (kept for its allocation).
    results: Vec<Result<Outcome, StoreError>>,
}

impl ClusterPipeline {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            queue: Vec::new(),
            reads: 0,
            last_key: None,
            order: Vec::new(),
            results: Vec::new(),
        }
    }

    /// The Redis key of the bucket named `name`, from the one-entry cache.
    fn key(&mut self, name: &[u8]) -> Bytes {
        match &self.last_key {
            Some(key) if key.strip_prefix(layout::KEY_PREFIX) == Some(name) => key.clone(),
            _ => {
                let key = layout::bucket_key(name);
                self.last_key = Some(key.clone());
                key
            }
        }
    }

    /// Carries out every request held back, the buckets' pipelines concurrently, and
    /// answers them in the order they were submitted.
    async fn carry_out(&mut self, answers: &mut impl Answers) {
        if self.queue.is_empty() {
            return;
        }
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
        for result in self.results.drain(..) {
            match &result {
                Ok(outcome) => answers.answer(outcome.as_answer()),
                Err(e) => answers.answer(Answer::Failed(e)),
            }
        }
        self.queue.clear();
        self.reads = 0;
    }
}

impl Pipeline for ClusterPipeline {
    async fn submit<A: Answers + Send>(
        &mut self,
        bucket: &[u8],
        op: kv_store::Op<'_>,
        answers: &mut A,
    ) {
        let op = match op {
            kv_store::Op::Create => Op::Create,
            kv_store::Op::Put { key, value } => {
                Op::Put(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value))
            }
            kv_store::Op::Get { key } => Op::Get(Bytes::copy_from_slice(key)),
            kv_store::Op::Delete { key } => Op::Delete(Bytes::copy_from_slice(key)),
        };
        self.reads += usize::from(!op.is_write());
        let key = self.key(bucket);
        self.queue.push(Queued { key, op });
        if self.reads >= MAX_HELD_READS {
            self.carry_out(answers).await;
        }
    }

    async fn flush<A: Answers + Send>(&mut self, answers: &mut A) {
        self.carry_out(answers).await;
    }

    /// Checks the bucket's marker, then subscribes through this front-end's hub
    /// (`subscriptions.rs`): the first local subscriber of a bucket waits for Redis to
    /// confirm its `SSUBSCRIBE`. Within the store timeout, both together.
    async fn subscribe(
        &mut self,
        bucket: &[u8],
        buffer_bytes: usize,
    ) -> Result<Option<Subscription>, StoreError> {
        let deadline = Instant::now() + self.shared.options.timeout;
        let key = self.key(bucket);
        if !bucket_exists(&self.shared, &key, deadline).await? {
            return Ok(None);
        }
        let hub = &self.shared.subscriptions;
        match hub.subscribe(&key, buffer_bytes, deadline).await {
            Ok(subscription) => Ok(Some(subscription)),
            Err(e) => Err(self.shared.stats.failed(1, e.message().to_string())),
        }
    }

    /// This front-end's subscribers of the bucket (the count is local, as in memory mode:
    /// SPEC §14 counts "connections of this server"); `None` if its marker is missing.
    async fn subscribers(&mut self, bucket: &[u8]) -> Result<Option<usize>, StoreError> {
        let deadline = Instant::now() + self.shared.options.timeout;
        let key = self.key(bucket);
        if !bucket_exists(&self.shared, &key, deadline).await? {
            return Ok(None);
        }
        Ok(Some(self.shared.subscriptions.subscribers(&key)))
    }

    /// The data is the cluster's: Redis' own tools back it up, master by master.
    async fn backup(&mut self) -> Result<kv_store::Backup, StoreError> {
        Err(StoreError::new(
            "BACKUP is not available in cluster mode: the data is in the Redis Cluster; back              up each master with Redis' own tools (redis-cli --rdb FILE, or BGSAVE)",
        ))
    }

    fn report(&self) -> StoreReport {
        self.shared.report()
    }
}

/// Whether the bucket under `key` exists (its marker is there): `HEXISTS` on its master,
/// within `deadline`.
async fn bucket_exists(shared: &Shared, key: &[u8], deadline: Instant) -> Result<bool, StoreError> {
    let mut command = redis::cmd("HEXISTS");
    command.arg(key).arg(layout::MARKER);
    let mut pipe = redis::pipe();
    pipe.add_command(command);
    let replies = send(shared, key, pipe, (1, false), deadline).await?;
    match replies.first() {
        Some(Value::Int(found)) => Ok(*found == 1),
        Some(Value::ServerError(e)) => Err(shared.stats.failed(1, format!("cluster: {e}"))),
        other => Err(shared
            .stats
            .failed(1, format!("cluster: unexpected reply {other:?}"))),
    }
}

/// Carries out `ops` on the bucket under `key` as one pipeline, ending in `WAIT` when it
/// writes and replicas must acknowledge; one result per op, in order.
///
/// A node without the write script (`NOSCRIPT`: a new or restarted node) ran none of the
/// writes that got that reply. Everything from the first of them on is sent again, the
/// writes with the script's text (`EVAL`, which names the key, so it follows redirects and
/// leaves the script cached on the right node), so that the reads after a write still see
/// it. What ran before it is not sent twice; a write after it that ran anyway (another
/// front-end loaded the script meanwhile) is, with the same value.
pub(crate) async fn execute(
    shared: &Shared,
    key: &[u8],
    ops: &[&Op],
    deadline: Instant,
) -> Vec<Result<Outcome, StoreError>> {
    shared.stats.sent(ops.len());
    let sha = shared.script.get_hash();
    let first = build(
        shared,
        ops.iter().map(|op| op.command(key, sha)),
        ops,
        deadline,
    );
    let mut replies = match send(shared, key, first, sending(shared, ops), deadline).await {
        Ok(replies) => replies,
        Err(e) => return vec![Err(e); ops.len()],
    };
    let Some(from) = replies.iter().take(ops.len()).position(is_no_script) else {
        return outcomes(shared, ops, replies);
    };
    let again = &ops[from..];
    let commands = again.iter().map(|op| match op.is_write() {
        true => op.command_with_script(key),
        false => op.command(key, sha),
    });
    let retry = build(shared, commands, again, deadline);
    let retried = match send(shared, key, retry, sending(shared, again), deadline).await {
        Ok(retried) => retried,
        Err(e) => {
            let mut results = outcomes(shared, ops, replies);
            results[from..].fill(Err(e));
            return results;
        }
    };
    // The retry's replies, its WAIT's included (which speaks for every write before it on
    // this connection), take the places of the first's from `from` on.
    for (slot, reply) in replies[from..].iter_mut().zip(retried) {
        *slot = reply;
    }
    outcomes(shared, ops, replies)
}

/// A pipeline of `commands` (one per op of `ops`), ending in `WAIT` if any op writes.
fn build(
    shared: &Shared,
    commands: impl Iterator<Item = redis::Cmd>,
    ops: &[&Op],
    deadline: Instant,
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for command in commands {
        pipe.add_command(command);
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
                (Err(e), true, Ok(Outcome::Done)) => Err(e.clone()),
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
/// hashes to, within `deadline`. A pipeline that ends in `WAIT` (`waits`) goes over a
/// connection of its own: Redis blocks the connection a `WAIT` was sent on until replicas
/// answer, and every other request queued behind it there would wait too.
async fn send(
    shared: &Shared,
    key: &[u8],
    pipe: redis::Pipeline,
    (requests, waits): (usize, bool),
    deadline: Instant,
) -> Result<Vec<Value>, StoreError> {
    let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
    let count = pipe.len();
    let mut connection = shared.connection(waits);
    shared.stats.round_trip();
    let sent = connection.route_pipeline(pipe, 0, count, route);
    match tokio::time::timeout_at(deadline, sent).await {
        Ok(Ok(replies)) => Ok(replies),
        Ok(Err(e)) => Err(failure(shared, requests, &e)),
        Err(_elapsed) => Err(timed_out(shared, requests)),
    }
}

/// What [`send`] needs to know of a pipeline carrying `ops`: how many client requests it
/// carries, and whether it ends in `WAIT`.
fn sending(shared: &Shared, ops: &[&Op]) -> (usize, bool) {
    let waits = shared.options.wait_replicas > 0 && ops.iter().any(|op| op.is_write());
    (ops.len(), waits)
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

/// The error for requests the cluster did not answer in time; and the alarm, since the
/// node may have stopped answering without dying, which the redis client does not notice
/// (`failover.rs`).
fn timed_out(shared: &Shared, requests: usize) -> StoreError {
    shared.stats.timed_out(requests);
    shared.alarm.ring();
    StoreError::new(format!(
        "timeout: the cluster did not answer within {} ms (a write may have been applied)",
        shared.options.timeout.as_millis()
    ))
}
