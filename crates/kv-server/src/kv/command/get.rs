//! `GET bucket key` → `value\r\nOK`, `\r\nOK` for a missing key, `NOT FOUND` without the
//! bucket.

use bytes::BytesMut;
use kv_store::{Bucket, Store};

use crate::kv::{KvSession, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Get<'a> {
    pub bucket: &'a [u8],
    pub key: &'a [u8],
}

impl<'a> Get<'a> {
    pub(super) fn parse(args: &[&'a [u8]]) -> Option<Self> {
        match args {
            [bucket, key] => Some(Self { bucket, key }),
            _ => None,
        }
    }

    /// The store appends the value to `out` itself (the in-memory store copies it under
    /// its read lock: no `Bytes` handle is cloned and dropped per request); the reply
    /// then ends it.
    pub(super) async fn apply<S: Store>(
        self,
        session: &mut KvSession<S>,
        out: &mut BytesMut,
    ) -> Reply {
        let result = match session.bucket(self.bucket).await {
            Ok(Some(bucket)) => bucket.get_into(self.key, out).await,
            Ok(None) => return Reply::NotFound,
            Err(e) => Err(e),
        };
        match result {
            Ok(_found) => Reply::ValueWritten,
            Err(e) => Reply::Error(e),
        }
    }
}
