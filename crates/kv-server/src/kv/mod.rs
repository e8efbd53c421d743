//! KV mode: the bucket protocol of SPEC §4 over any [`Store`].
//!
//! A line is parsed into a typed [`Command`] before anything is looked up, the command is
//! applied to the store, and the resulting [`Reply`] is encoded — in that order, each in
//! its own place: `command/` (one file per command), `reply.rs` (the only code that writes
//! reply bytes), and this file (the session that ties them to a connection).

pub mod command;
pub mod reply;

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use kv_store::{Store, StoreError};

pub use command::Command;
pub use reply::Reply;

use crate::framing::trim_terminator;
use crate::protocol::{Flow, Protocol, Session};

/// The KV protocol over a store shared by every connection.
#[derive(Clone)]
pub struct Kv<S> {
    store: S,
}

impl<S: Store> Kv<S> {
    /// Serves `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }
}

impl<S: Store> Protocol for Kv<S> {
    type Session = KvSession<S>;

    fn open_session(&self, _peer: SocketAddr) -> KvSession<S> {
        KvSession {
            store: self.store.clone(),
            last_bucket: None,
        }
    }
}

/// One client's KV conversation.
pub struct KvSession<S: Store> {
    store: S,
    /// The bucket used last, by name: most clients work in one bucket, so this saves a
    /// registry lookup per request. Safe because buckets are never removed.
    last_bucket: Option<(Bytes, S::Bucket)>,
}

impl<S: Store> KvSession<S> {
    /// The named bucket, if it exists.
    pub(crate) async fn bucket(&mut self, name: &[u8]) -> Result<Option<S::Bucket>, StoreError> {
        if let Some((cached, bucket)) = &self.last_bucket {
            if cached == name {
                return Ok(Some(bucket.clone()));
            }
        }
        let found = self.store.bucket(name).await?;
        if let Some(bucket) = &found {
            self.last_bucket = Some((Bytes::copy_from_slice(name), bucket.clone()));
        }
        Ok(found)
    }

    /// The store itself, for commands that act on the registry.
    pub(crate) fn store(&self) -> &S {
        &self.store
    }
}

impl<S: Store> Session for KvSession<S> {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        let (reply, flow) = match Command::parse(trim_terminator(line)) {
            Some(command) => command.apply(self).await,
            None => (Reply::UnknownCommand, Flow::Continue),
        };
        reply.encode(out);
        flow
    }
}
