//! [`DurablePipeline`]: a connection's way into the durable store. Writes are held back and
//! sent to the committer together, as one message, so that writes that arrived together
//! share one group commit and one wake-up; reads are served from the mirror, after the
//! writes held back before them.
//!
//! Order: a read, and a write on a bucket that does not exist yet (a `CREATE` held back may
//! make it), carry out what is held back first; everything else held back is answered at
//! the flush, in order. So answers always come in request order.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::committer::{Committed, Message};
use super::record::Op as Write;
use super::DurableStore;
use crate::memory::{out_of_memory, Buckets, MemoryBucket};
use crate::{Answer, Answers, Op, Pipeline, Store, StoreError, StoreReport, Subscription};

/// Sends `writes` to the committer as one message and waits for the verdict (the vector
/// comes back in it, emptied, for reuse; a new one if the committer is gone).
pub(super) async fn submit(committer: &mpsc::Sender<Message>, writes: Vec<Write>) -> Committed {
    let stopped = || Committed {
        verdict: Err(StoreError::new("the store is shutting down")),
        refused: Vec::new(),
        ops: Vec::new(),
    };
    let (ack, verdict) = oneshot::channel();
    if committer.send(Message::Writes(writes, ack)).await.is_err() {
        return stopped();
    }
    verdict.await.unwrap_or_else(|_| stopped())
}

/// A connection's way into a [`DurableStore`].
pub struct DurablePipeline {
    store: DurableStore,
    /// The mirror's buckets: reads are served from them, and writes name them.
    buckets: Buckets,
    /// Writes held back since the last flush; the allocation travels to the committer and
    /// back.
    held: Vec<Write>,
}

impl DurablePipeline {
    pub(super) fn new(store: DurableStore) -> Self {
        Self {
            buckets: Buckets::new(store.mirror.clone()),
            store,
            held: Vec::new(),
        }
    }

    /// `GET`, from the mirror, after the writes held back.
    async fn read(&mut self, name: &[u8], key: &[u8], answers: &mut impl Answers) {
        self.commit(answers).await;
        match self.buckets.get(name) {
            Some(bucket) => bucket.answer_get(key, answers),
            None => answers.answer(Answer::NoBucket),
        }
    }

    /// `CREATE`: held back unless the bucket exists and nothing is (then `Done` at once). A
    /// `CREATE` of a bucket that exists by the time it is committed changes nothing.
    fn create(&mut self, name: &[u8], answers: &mut impl Answers) {
        if self.held.is_empty() && self.buckets.get(name).is_some() {
            return answers.answer(Answer::Done);
        }
        let bucket = Bytes::copy_from_slice(name);
        self.held.push(Write::Create { bucket });
    }

    /// `PUT` or `DELETE` (`write` makes its record from the bucket), held back; `NoBucket`
    /// at once (after what is held back) if the bucket does not exist.
    async fn write(
        &mut self,
        name: &[u8],
        answers: &mut impl Answers,
        write: impl FnOnce(&MemoryBucket) -> Write,
    ) {
        if self.buckets.get(name).is_none() && !self.held.is_empty() {
            // A `CREATE` held back may make it: committed first, the lookup is right.
            self.commit(answers).await;
        }
        match self.buckets.get(name) {
            Some(bucket) => self.held.push(write(bucket)),
            None => answers.answer(Answer::NoBucket),
        }
    }

    /// Commits the writes held back, as one message, and answers each.
    async fn commit(&mut self, answers: &mut impl Answers) {
        if self.held.is_empty() {
            return;
        }
        let writes = self.held.len();
        let held = std::mem::take(&mut self.held);
        let mut committed = submit(&self.store.committer, held).await;
        // `refused` is in ascending order: walk it beside the writes.
        let mut refused = committed.refused.iter().peekable();
        for i in 0..writes {
            if refused.next_if_eq(&&i).is_some() {
                answers.answer(Answer::Failed(&out_of_memory()));
                continue;
            }
            match &committed.verdict {
                Ok(()) => answers.answer(Answer::Done),
                Err(e) => answers.answer(Answer::Failed(e)),
            }
        }
        self.held = std::mem::take(&mut committed.ops);
    }
}

impl Pipeline for DurablePipeline {
    async fn submit<A: Answers + Send>(&mut self, bucket: &[u8], op: Op<'_>, answers: &mut A) {
        match op {
            Op::Get { key } => self.read(bucket, key, answers).await,
            Op::Create => self.create(bucket, answers),
            Op::Put { key, value } => {
                let put = |bucket: &MemoryBucket| Write::Put {
                    bucket: bucket.name_bytes().clone(),
                    key: Bytes::copy_from_slice(key),
                    value: Bytes::copy_from_slice(value),
                };
                self.write(bucket, answers, put).await;
            }
            Op::Delete { key } => {
                let delete = |bucket: &MemoryBucket| Write::Delete {
                    bucket: bucket.name_bytes().clone(),
                    key: Bytes::copy_from_slice(key),
                };
                self.write(bucket, answers, delete).await;
            }
        }
    }

    async fn flush<A: Answers + Send>(&mut self, answers: &mut A) {
        self.commit(answers).await;
    }

    /// On the mirror's bucket: the committer publishes each write's event once it is on
    /// stable storage.
    async fn subscribe(
        &mut self,
        bucket: &[u8],
        buffer_bytes: usize,
    ) -> Result<Option<Subscription>, StoreError> {
        self.buckets.subscribe(bucket, buffer_bytes)
    }

    async fn subscribers(&mut self, bucket: &[u8]) -> Result<Option<usize>, StoreError> {
        self.buckets.subscribers(bucket)
    }

    /// Of the mirror: every write answered has been applied to it, in commit order.
    async fn backup(&mut self) -> Result<crate::Backup, StoreError> {
        crate::Backup::start(&self.store.mirror)
    }

    fn report(&self) -> StoreReport {
        self.store.report()
    }
}
