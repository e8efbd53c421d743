//! Running a parsed request against the session's store: the server's half of each
//! command. The other half, the grammar (parsing, reply bytes), is `kv_protocol`'s.
//!
//! Each command appends its own reply, so that a GET can have the store append the value
//! straight into the output. A store failure is answered `ERROR <reason>` in one place;
//! a failed store operation appends nothing (`Bucket::get_into` promises so too), so the
//! `ERROR` line is the whole reply.
//!
//! Writes that arrived together travel together (PROTOCOL.md, "Pipelining"): `PUT` and
//! `DELETE` go into the store's [`Pipeline`], which the durable engine sends as one group
//! commit; the queue is flushed — and the queued writes answered, in order — before any
//! other request (so a `GET` sees the writes before it) and at the end of the batch. An
//! engine whose reads cost a round trip (the cluster engine) queues `GET`s too, so reads
//! and writes that arrived together travel together and are answered at the flush.

use bytes::BytesMut;
use kv_protocol::{Create, Delete, Get, Put, Reply, Request};
use kv_store::{Bucket, Outcome, Pipeline, Store, StoreError};
use line_server::Flow;

use super::counters::{self, ErrorKind};
use super::{cached_bucket, KvSession};

/// With an engine that queues reads: a GET that finds this many requests queued flushes
/// them. The values they read wait in memory until the flush, and the connection writes
/// output out only between lines, so this bounds what one client's pipelined GETs make the
/// server hold (64 values of up to `--max-line-bytes` each); 2,000 pipelined requests still
/// travel in about 32 round trips. Writes are not capped: their replies are a few bytes,
/// and a durable group commit should take all of them.
const MAX_QUEUED_READS: usize = 64;

impl<S: Store> KvSession<S> {
    /// Runs `request` and appends its reply to `out` (or queues a write, whose reply comes
    /// with the flush).
    pub(super) async fn apply(&mut self, request: Request<'_>, out: &mut BytesMut) -> Flow {
        // A GET flushes (or not) itself, once it knows whether the engine queues reads.
        if !matches!(
            request,
            Request::Put(_) | Request::Delete(_) | Request::Get(_)
        ) {
            self.flush_queued(out).await;
        }
        counters::count_verb(request.verb());
        let done = match request {
            Request::Create(create) => self.create(create, out).await,
            Request::Put(put) => self.put(put, out).await,
            Request::Get(get) => self.get(get, out).await,
            Request::Delete(delete) => self.delete(delete, out).await,
            Request::Ping => {
                Reply::Pong.encode(out);
                Ok(())
            }
            Request::Quit => {
                Reply::Ok.encode(out);
                return Flow::Close;
            }
            Request::Info { section } => {
                super::info::report(section, &self.server.snapshot(), &self.store.report(), out);
                Ok(())
            }
        };
        if let Err(e) = done {
            counters::count_error(ErrorKind::Store);
            Reply::Error(e.message().as_bytes()).encode(out);
        }
        Flow::Continue
    }

    /// `CREATE bucket` → `OK` (also if it exists).
    async fn create(&mut self, create: Create<'_>, out: &mut BytesMut) -> Result<(), StoreError> {
        self.store().create(create.bucket).await?;
        Reply::Ok.encode(out);
        Ok(())
    }

    /// `PUT bucket key value` → `OK` (now or at the flush), or `NOT FOUND` without the bucket.
    async fn put(&mut self, put: Put<'_>, out: &mut BytesMut) -> Result<(), StoreError> {
        let lookup = match cached_bucket(&self.store, &mut self.last_bucket, put.bucket).await {
            Ok(Some(bucket)) => {
                return answer_now(self.pipeline.put(bucket, put.key, put.value), out)
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        self.answer_unqueued(lookup, out).await
    }

    /// `GET bucket key` → `value\r\nOK`, `\r\nOK` for a missing key, `NOT FOUND` without the
    /// bucket. The store appends the value to `out` itself (the in-memory store copies it
    /// under its read lock: no `Bytes` handle is cloned and dropped per request); the
    /// reply's end follows it.
    ///
    /// An engine that queues reads answers at the flush; otherwise the writes queued before
    /// are flushed first, so the read sees them.
    async fn get(&mut self, get: Get<'_>, out: &mut BytesMut) -> Result<(), StoreError> {
        let lookup = cached_bucket(&self.store, &mut self.last_bucket, get.bucket).await;
        let bucket = match lookup {
            Ok(Some(bucket)) => bucket,
            Ok(None) => return self.answer_unqueued(Ok(()), out).await,
            Err(e) => return self.answer_unqueued(Err(e), out).await,
        };
        if self.pipeline.get(bucket, get.key) {
            if self.pipeline.queued() >= MAX_QUEUED_READS {
                flush_into(&mut self.pipeline, out).await;
            }
            return Ok(());
        }
        flush_into(&mut self.pipeline, out).await;
        let found = bucket.get_into(get.key, out).await?;
        counters::count_lookup(found);
        Reply::encode_value_end(out);
        Ok(())
    }

    /// `DELETE bucket key` → `OK` (also for a missing key; now or at the flush), `NOT FOUND`
    /// without the bucket.
    async fn delete(&mut self, delete: Delete<'_>, out: &mut BytesMut) -> Result<(), StoreError> {
        let lookup = match cached_bucket(&self.store, &mut self.last_bucket, delete.bucket).await {
            Ok(Some(bucket)) => return answer_now(self.pipeline.delete(bucket, delete.key), out),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        self.answer_unqueued(lookup, out).await
    }

    /// A write that cannot be queued — its bucket does not exist (`Ok`: `NOT FOUND`) or the
    /// lookup failed (`Err`) — is answered after the writes queued before it.
    async fn answer_unqueued(
        &mut self,
        lookup: Result<(), StoreError>,
        out: &mut BytesMut,
    ) -> Result<(), StoreError> {
        self.flush_queued(out).await;
        lookup.map(|()| not_found(out))
    }

    /// Carries out the queued requests and appends their replies, in order.
    pub(super) async fn flush_queued(&mut self, out: &mut BytesMut) {
        flush_into(&mut self.pipeline, out).await;
    }
}

/// Carries out `pipeline`'s queued requests and appends their replies, in order. A free
/// function over the one field, so a caller can hold a bucket lent from the session's
/// cache meanwhile.
async fn flush_into<P: Pipeline>(pipeline: &mut P, out: &mut BytesMut) {
    if pipeline.queued() == 0 {
        return;
    }
    for result in pipeline.flush().await {
        match result {
            Ok(Outcome::Written) => Reply::Ok.encode(out),
            Ok(Outcome::Value(value)) => {
                counters::count_lookup(value.is_some());
                if let Some(value) = value {
                    out.extend_from_slice(value);
                }
                Reply::encode_value_end(out);
            }
            Ok(Outcome::NoBucket) => not_found(out),
            Err(e) => {
                counters::count_error(ErrorKind::Store);
                Reply::Error(e.message().as_bytes()).encode(out);
            }
        }
    }
}

/// A write the engine carried out at once is answered now; a queued one (`None`) is
/// answered at the flush.
fn answer_now(done: Option<Result<(), StoreError>>, out: &mut BytesMut) -> Result<(), StoreError> {
    match done {
        Some(result) => result.map(|()| Reply::Ok.encode(out)),
        None => Ok(()),
    }
}

/// `NOT FOUND`, counted.
fn not_found(out: &mut BytesMut) {
    counters::count_error(ErrorKind::NotFound);
    Reply::NotFound.encode(out);
}
