//! [`StoreClient`]: a pipeline of one, for tests, examples and tools that want one answer
//! per request, with any engine.

use crate::pipeline::{Op, Outcome, Pipeline};
use crate::Store;

/// Runs one request at a time through a pipeline of its own and returns its outcome: what
/// a connection that never pipelines would get. Generic over the engine, so the same test
/// runs against each.
pub struct StoreClient<S: Store> {
    pipeline: S::Pipeline,
    /// Answers of the request in flight (reused).
    outcomes: Vec<Outcome>,
}

impl<S: Store> StoreClient<S> {
    /// A client of `store`.
    pub fn new(store: &S) -> Self {
        Self {
            pipeline: store.pipeline(),
            outcomes: Vec::with_capacity(1),
        }
    }

    /// Carries out `op` on `bucket` and returns what became of it. Panics if the engine
    /// answers it other than once (an engine's bug, which is what tests are for).
    pub async fn run(&mut self, bucket: &[u8], op: Op<'_>) -> Outcome {
        self.outcomes.clear();
        self.pipeline.submit(bucket, op, &mut self.outcomes).await;
        self.pipeline.flush(&mut self.outcomes).await;
        match (self.outcomes.pop(), self.outcomes.is_empty()) {
            (Some(outcome), true) => outcome,
            (outcome, _) => panic!("one request, answered {outcome:?} and {:?}", self.outcomes),
        }
    }

    /// `CREATE bucket`.
    pub async fn create(&mut self, bucket: &[u8]) -> Outcome {
        self.run(bucket, Op::Create).await
    }

    /// `PUT bucket key value`.
    pub async fn put(&mut self, bucket: &[u8], key: &[u8], value: &[u8]) -> Outcome {
        self.run(bucket, Op::Put { key, value }).await
    }

    /// `GET bucket key`.
    pub async fn get(&mut self, bucket: &[u8], key: &[u8]) -> Outcome {
        self.run(bucket, Op::Get { key }).await
    }

    /// `DELETE bucket key`.
    pub async fn delete(&mut self, bucket: &[u8], key: &[u8]) -> Outcome {
        self.run(bucket, Op::Delete { key }).await
    }
}
