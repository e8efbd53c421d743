//! `CREATE bucket` → `OK` (also if the bucket exists).

use bytes::BufMut;

use super::encode_line;
use crate::Verb;

/// `CREATE bucket`: make the bucket if it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Create<'a> {
    /// The bucket's name.
    pub bucket: &'a [u8],
}

impl<'a> Create<'a> {
    /// The request from the words after the verb; `None` for any other number of words.
    #[inline]
    pub(super) fn parse(args: &[&'a [u8]]) -> Option<Self> {
        match args {
            [bucket] => Some(Self { bucket }),
            _ => None,
        }
    }

    /// The words after the verb, in wire order.
    pub(super) fn words(&self) -> [&'a [u8]; 1] {
        [self.bucket]
    }

    /// Appends `CREATE bucket\r\n`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_line(out, Verb::Create, &self.words());
    }
}
