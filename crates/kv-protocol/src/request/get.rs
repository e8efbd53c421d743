//! `GET bucket key` → `value\r\nOK`, `\r\nOK` for a missing key, `NOT FOUND` without the
//! bucket.

use bytes::BufMut;

use super::encode_line;
use crate::Verb;

/// `GET bucket key`: the value of `key` in an existing bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Get<'a> {
    /// The bucket's name.
    pub bucket: &'a [u8],
    /// The key.
    pub key: &'a [u8],
}

impl<'a> Get<'a> {
    /// The request from the words after the verb; `None` for any other number of words.
    #[inline]
    pub(super) fn parse(args: &[&'a [u8]]) -> Option<Self> {
        match args {
            [bucket, key] => Some(Self { bucket, key }),
            _ => None,
        }
    }

    /// The words after the verb, in wire order.
    pub(super) fn words(&self) -> [&'a [u8]; 2] {
        [self.bucket, self.key]
    }

    /// Appends `GET bucket key\r\n`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_line(out, Verb::Get, &self.words());
    }
}
