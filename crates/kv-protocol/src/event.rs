//! [`Event`]: what a subscriber of a bucket receives for each change to it (PROTOCOL.md,
//! "Subscriptions"), in the words of the Elixir guide's `SUBSCRIBE`: `milk SET TO 1`,
//! `milk DELETED`.

use bytes::BufMut;

/// One change to a bucket, as a subscriber receives it: one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A `PUT`: `key SET TO value\r\n`.
    Set {
        /// The key.
        key: &'a [u8],
        /// Its new value.
        value: &'a [u8],
    },
    /// A `DELETE` (also of a key that was missing): `key DELETED\r\n`.
    Deleted {
        /// The key.
        key: &'a [u8],
    },
}

const SET_TO: &[u8] = b" SET TO ";
const DELETED: &[u8] = b" DELETED";

impl<'a> Event<'a> {
    /// The line's length, terminator included: what [`Event::encode`] appends.
    pub fn len(&self) -> usize {
        match self {
            Event::Set { key, value } => key.len() + SET_TO.len() + value.len() + 2,
            Event::Deleted { key } => key.len() + DELETED.len() + 2,
        }
    }

    /// Never: an event is at least its words and terminator.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the event's line.
    pub fn encode(&self, out: &mut impl BufMut) {
        match self {
            Event::Set { key, value } => {
                out.put_slice(key);
                out.put_slice(SET_TO);
                out.put_slice(value);
            }
            Event::Deleted { key } => {
                out.put_slice(key);
                out.put_slice(DELETED);
            }
        }
        out.put_slice(b"\r\n");
    }

    /// The event a line holds (given without its terminator); `None` if it is none. Keys
    /// and values have no whitespace, so the words are found from both ends.
    pub fn decode(line: &'a [u8]) -> Option<Self> {
        if let Some(key) = line.strip_suffix(DELETED) {
            if !key.is_empty() && !key.contains(&b' ') {
                return Some(Event::Deleted { key });
            }
        }
        let at = line.windows(SET_TO.len()).position(|w| w == SET_TO)?;
        let (key, value) = (&line[..at], &line[at + SET_TO.len()..]);
        let word = |w: &[u8]| !w.is_empty() && !w.contains(&b' ');
        (word(key) && word(value)).then_some(Event::Set { key, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn events_read_as_the_guide_writes_them() {
        let mut out = Vec::new();
        Event::Set {
            key: b"milk",
            value: b"3",
        }
        .encode(&mut out);
        Event::Deleted { key: b"milk" }.encode(&mut out);
        assert_eq!(out, b"milk SET TO 3\r\nmilk DELETED\r\n");
        assert_eq!(
            Event::decode(b"milk SET TO 3"),
            Some(Event::Set {
                key: b"milk",
                value: b"3"
            })
        );
        assert_eq!(
            Event::decode(b"milk DELETED"),
            Some(Event::Deleted { key: b"milk" })
        );
        assert_eq!(Event::decode(b"OK"), None);
        assert_eq!(Event::decode(b" DELETED"), None);
    }

    fn word() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            any::<u8>().prop_filter("no separators", |b| !b" \t\r\n".contains(b)),
            1..16,
        )
    }

    proptest! {
        /// Any key and value survive encoding then decoding, and `len` is what is written.
        #[test]
        fn an_event_decodes_as_it_was_encoded(key in word(), value in word(), set in any::<bool>()) {
            let event = if set { Event::Set { key: &key, value: &value } } else { Event::Deleted { key: &key } };
            let mut out = Vec::new();
            event.encode(&mut out);
            prop_assert_eq!(out.len(), event.len());
            prop_assert_eq!(Event::decode(&out[..out.len() - 2]), Some(event));
        }
    }
}
