//! `PUT bucket key value` → `OK`, or `NOT FOUND` without the bucket.

use bytes::BufMut;

use super::encode_line;
use crate::Verb;

/// `PUT bucket key value`: set `key` to `value` in an existing bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put<'a> {
    /// The bucket's name.
    pub bucket: &'a [u8],
    /// The key.
    pub key: &'a [u8],
    /// The value, stored as these exact bytes.
    pub value: &'a [u8],
}

impl<'a> Put<'a> {
    /// The request from the words after the verb; `None` for any other number of words.
    #[inline]
    pub(super) fn parse(args: &[&'a [u8]]) -> Option<Self> {
        match args {
            [bucket, key, value] => Some(Self { bucket, key, value }),
            _ => None,
        }
    }

    /// The words after the verb, in wire order.
    pub(super) fn words(&self) -> [&'a [u8]; 3] {
        [self.bucket, self.key, self.value]
    }

    /// Appends `PUT bucket key value\r\n`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_line(out, Verb::Put, &self.words());
    }
}
