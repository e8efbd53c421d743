//! Running a parsed request against the session's store: the server's half of each
//! command. The other half, the grammar (parsing, reply bytes), is `kv_protocol`'s.
//!
//! Each command appends its own reply, so that a GET can have the store append the value
//! straight into the output. A store failure is answered `ERROR <reason>` in one place;
//! a failed store operation appends nothing (`Bucket::get_into` promises so too), so the
//! `ERROR` line is the whole reply.

use bytes::BytesMut;
use kv_protocol::{Create, Delete, Get, Put, Reply, Request};
use kv_store::{Bucket, Store, StoreError};
use line_server::Flow;

use super::KvSession;

impl<S: Store> KvSession<S> {
    /// Runs `request` and appends its reply to `out`.
    pub(super) async fn apply(&mut self, request: Request<'_>, out: &mut BytesMut) -> Flow {
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
        };
        if let Err(e) = done {
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

    /// `PUT bucket key value` → `OK`, or `NOT FOUND` without the bucket.
    async fn put(&mut self, put: Put<'_>, out: &mut BytesMut) -> Result<(), StoreError> {
        let reply = match self.bucket(put.bucket).await? {
            Some(bucket) => {
                bucket.put(put.key, put.value).await?;
                Reply::Ok
            }
            None => Reply::NotFound,
        };
        reply.encode(out);
        Ok(())
    }

    /// `GET bucket key` → `value\r\nOK`, `\r\nOK` for a missing key, `NOT FOUND` without the
    /// bucket. The store appends the value to `out` itself (the in-memory store copies it
    /// under its read lock: no `Bytes` handle is cloned and dropped per request); the
    /// reply's end follows it.
    async fn get(&mut self, get: Get<'_>, out: &mut BytesMut) -> Result<(), StoreError> {
        match self.bucket(get.bucket).await? {
            Some(bucket) => {
                bucket.get_into(get.key, out).await?;
                Reply::encode_value_end(out);
            }
            None => Reply::NotFound.encode(out),
        }
        Ok(())
    }

    /// `DELETE bucket key` → `OK` (also for a missing key), `NOT FOUND` without the bucket.
    async fn delete(&mut self, delete: Delete<'_>, out: &mut BytesMut) -> Result<(), StoreError> {
        let reply = match self.bucket(delete.bucket).await? {
            Some(bucket) => {
                bucket.delete(delete.key).await?;
                Reply::Ok
            }
            None => Reply::NotFound,
        };
        reply.encode(out);
        Ok(())
    }
}
