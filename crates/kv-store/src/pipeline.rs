//! [`Pipeline`]: the writes of one connection that arrived together, on their way to the
//! store together.
//!
//! A client that pipelines 32 `PUT`s should pay for one sync (durable engine) or one
//! network round trip (a networked engine), not 32, as Redis writes everything one read
//! brought with one `fsync`. The protocol queues consecutive writes here and flushes them
//! before anything that must see them (a read of the same connection) and at the end of
//! what arrived together; replies stay in request order. An engine that gains nothing from
//! batching (the in-memory one) carries each write out at once instead, at no cost.

use std::future::Future;

use crate::{Bucket, StoreError};

/// One connection's queue of writes; made by [`crate::Store::pipeline`], reused for the
/// connection's life. An engine queues every write or none (replies are answered in order
/// on that promise).
pub trait Pipeline: Send + 'static {
    /// The engine's bucket handle.
    type Bucket: Bucket;

    /// Sets `key` to `value` in `bucket`: carried out now (`Some` with its result) by an
    /// engine that does not batch, or queued until [`flush`](Self::flush) (`None`).
    fn put(
        &mut self,
        bucket: &Self::Bucket,
        key: &[u8],
        value: &[u8],
    ) -> Option<Result<(), StoreError>>;

    /// Removes `key` from `bucket`; now or queued, as [`put`](Self::put).
    fn delete(&mut self, bucket: &Self::Bucket, key: &[u8]) -> Option<Result<(), StoreError>>;

    /// Writes queued since the last flush.
    fn queued(&self) -> usize;

    /// Carries out every queued write, in order, and returns one result per write in the
    /// order they were queued (the queue is then empty). Once it completes, the writes that
    /// succeeded are visible to every connection (and, in durable mode, on stable storage).
    fn flush(&mut self) -> impl Future<Output = &[Result<(), StoreError>]> + Send + '_;
}
