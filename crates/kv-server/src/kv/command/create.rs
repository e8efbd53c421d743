//! `CREATE bucket` → `OK` (also if it exists).

use kv_store::Store;

use crate::kv::{KvSession, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Create<'a> {
    pub bucket: &'a [u8],
}

impl<'a> Create<'a> {
    pub(super) fn parse(args: &[&'a [u8]]) -> Option<Self> {
        match args {
            [bucket] => Some(Self { bucket }),
            _ => None,
        }
    }

    pub(super) async fn apply<S: Store>(self, session: &mut KvSession<S>) -> Reply {
        match session.store().create(self.bucket).await {
            Ok(()) => Reply::Ok,
            Err(e) => Reply::Error(e),
        }
    }
}
