//! [`Pipeline`]: the requests of one connection that arrived together, on their way to the
//! store together.
//!
//! A client that pipelines 32 `PUT`s should pay for one sync (durable engine) or one
//! network round trip (a networked engine), not 32, as Redis writes everything one read
//! brought with one `fsync`. The protocol queues consecutive writes here and flushes them
//! before anything that must see them (a read of the same connection) and at the end of
//! what arrived together; replies stay in request order. An engine that gains nothing from
//! batching (the in-memory one) carries each write out at once instead, at no cost.
//!
//! An engine for which a read also costs a round trip (the cluster engine) queues reads
//! too ([`Pipeline::get`]), so that a run of `PUT`s and `GET`s travels as one batch; the
//! engines whose reads are cheap decline, and the protocol reads through
//! [`Bucket::get_into`] after flushing the writes before it.

use std::future::Future;

use bytes::Bytes;

use crate::{Bucket, StoreError};

/// What a queued request came to, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A `PUT` or `DELETE` was carried out.
    Written,
    /// A `GET` found this value (`None`: the bucket has no such key).
    Value(Option<Bytes>),
    /// The bucket does not exist: from an engine that checks as it carries requests out
    /// rather than when it hands out a handle (see [`crate::Store::bucket`]).
    NoBucket,
}

/// One connection's queue of requests; made by [`crate::Store::pipeline`], reused for the
/// connection's life. An engine queues every write or none, and every read or none
/// (replies are answered in order on that promise).
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

    /// Queues a read of `key` in `bucket`, answered at the flush ([`Outcome::Value`]), and
    /// says `true`; or, for an engine whose reads cost no round trip (the default), queues
    /// nothing and says `false`: the caller then flushes and reads through the bucket.
    fn get(&mut self, bucket: &Self::Bucket, key: &[u8]) -> bool {
        let _ = (bucket, key);
        false
    }

    /// Requests queued since the last flush.
    fn queued(&self) -> usize;

    /// Carries out every queued request, each seeing the effect of those queued before it,
    /// and returns one result per request in the order they were queued (the queue is then
    /// empty). Once it completes, the writes that succeeded are visible to every connection
    /// (and, in durable mode, on stable storage).
    fn flush(&mut self) -> impl Future<Output = &[Result<Outcome, StoreError>]> + Send + '_;
}
