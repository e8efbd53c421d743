//! `PUT bucket key value` → `OK`, or `NOT FOUND` without the bucket.

use kv_store::{Bucket, Store};

use crate::kv::{KvSession, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put<'a> {
    pub bucket: &'a [u8],
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> Put<'a> {
    pub(super) fn parse(args: &[&'a [u8]]) -> Option<Self> {
        match args {
            [bucket, key, value] => Some(Self { bucket, key, value }),
            _ => None,
        }
    }

    pub(super) async fn apply<S: Store>(self, session: &mut KvSession<S>) -> Reply {
        let result = match session.bucket(self.bucket).await {
            Ok(Some(bucket)) => bucket.put(self.key, self.value).await,
            Ok(None) => return Reply::NotFound,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Reply::Ok,
            Err(e) => Reply::Error(e),
        }
    }
}
