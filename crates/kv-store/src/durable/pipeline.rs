//! Sending writes to the committer: one message per batch of a connection's writes, so
//! writes that arrived together share one group commit and one wake-up.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::committer::{Committed, Message};
use super::record::Op;
use super::DurableBucket;
use crate::memory::out_of_memory;
use crate::{Outcome, Pipeline, StoreError};

/// Sends `ops` to the committer as one message and waits for the verdict (the vector comes
/// back in it, emptied, for reuse; a new one if the committer is gone).
pub(super) async fn submit(committer: &mpsc::Sender<Message>, ops: Vec<Op>) -> Committed {
    let stopped = || Committed {
        verdict: Err(StoreError::new("the store is shutting down")),
        refused: Vec::new(),
        ops: Vec::new(),
    };
    let (ack, verdict) = oneshot::channel();
    if committer.send(Message::Writes(ops, ack)).await.is_err() {
        return stopped();
    }
    verdict.await.unwrap_or_else(|_| stopped())
}

/// One result per write of a [`Committed`] message of `writes` writes, into `into`; a write
/// that succeeded is `ok`.
pub(super) fn results<T: Clone>(
    committed: &Committed,
    writes: usize,
    into: &mut Vec<Result<T, StoreError>>,
    ok: T,
) {
    into.clear();
    into.resize(writes, committed.verdict.clone().map(|()| ok));
    for &i in &committed.refused {
        if let Some(result) = into.get_mut(i) {
            *result = Err(out_of_memory());
        }
    }
}

/// A connection's queued durable writes: flushed as one message, so they are appended in
/// one frame with one sync (shared with whatever other connections sent meanwhile).
pub struct DurablePipeline {
    committer: mpsc::Sender<Message>,
    /// Writes queued since the last flush; the allocation travels to the committer and back.
    ops: Vec<Op>,
    /// The last flush's results, one per write.
    results: Vec<Result<Outcome, StoreError>>,
}

impl DurablePipeline {
    pub(super) fn new(committer: mpsc::Sender<Message>) -> Self {
        Self {
            committer,
            ops: Vec::new(),
            results: Vec::new(),
        }
    }
}

impl Pipeline for DurablePipeline {
    type Bucket = DurableBucket;

    fn put(
        &mut self,
        bucket: &DurableBucket,
        key: &[u8],
        value: &[u8],
    ) -> Option<Result<(), StoreError>> {
        self.ops.push(Op::Put {
            bucket: bucket.mirror.name_bytes().clone(),
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        });
        None
    }

    fn delete(&mut self, bucket: &DurableBucket, key: &[u8]) -> Option<Result<(), StoreError>> {
        self.ops.push(Op::Delete {
            bucket: bucket.mirror.name_bytes().clone(),
            key: Bytes::copy_from_slice(key),
        });
        None
    }

    fn queued(&self) -> usize {
        self.ops.len()
    }

    async fn flush(&mut self) -> &[Result<Outcome, StoreError>] {
        self.results.clear();
        let writes = self.ops.len();
        if writes > 0 {
            let ops = std::mem::take(&mut self.ops);
            let mut committed = submit(&self.committer, ops).await;
            results(&committed, writes, &mut self.results, Outcome::Written);
            self.ops = std::mem::take(&mut committed.ops);
        }
        &self.results
    }
}
