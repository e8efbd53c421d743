//! Words: how a line splits into them, and which byte strings can be one.
//!
//! PROTOCOL.md, "KV mode": a line is split on runs of spaces and tabs, leading and trailing
//! ones ignored; bucket names, keys and values are case-sensitive opaque byte strings
//! without whitespace.

use std::fmt;

/// Most words any request has (`PUT bucket key value`). A line with more is no request,
/// which the parser knows without looking at the rest of it.
pub const MAX_WORDS: usize = 4;

/// Whether `byte` separates words: a space or a tab. A run of them is one separator.
#[inline]
pub fn is_separator(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// The words of `line` in order: never empty, never holding a separator. Borrows from
/// `line`; allocates nothing.
#[inline]
pub(crate) fn split(line: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    line.split(|b| is_separator(*b))
        .filter(|word| !word.is_empty())
}

/// Why a byte string cannot travel as one word of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidWord {
    /// It is empty: the server would see one word fewer.
    Empty,
    /// It holds a space or tab (the server would see more words) or a `\r` or `\n` (the
    /// line would end, or lose its last byte, early).
    Whitespace,
}

impl fmt::Display for InvalidWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidWord::Empty => "empty word",
            InvalidWord::Whitespace => "whitespace in a word",
        })
    }
}

impl std::error::Error for InvalidWord {}

/// Checks that `word` can be a bucket name, key or value: not empty, and without space,
/// tab, `\r` or `\n`. Every word that passes comes back from [`crate::Request::parse`]
/// unchanged.
pub fn check_word(word: &[u8]) -> Result<(), InvalidWord> {
    if word.is_empty() {
        Err(InvalidWord::Empty)
    } else if word
        .iter()
        .any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        Err(InvalidWord::Whitespace)
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A non-empty byte string without spaces, tabs or line ends: any valid word.
    pub(crate) fn word() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            any::<u8>().prop_filter("no separators", |b| !b" \t\r\n".contains(b)),
            1..24,
        )
    }

    #[test]
    fn runs_of_spaces_and_tabs_are_one_separator_and_ends_are_ignored() {
        let words: Vec<&[u8]> = split(b" \tGET\t\tb   k \t").collect();
        assert_eq!(words, [&b"GET"[..], b"b", b"k"]);
        assert_eq!(split(b"").count(), 0);
        assert_eq!(split(b" \t ").count(), 0);
    }

    #[test]
    fn a_word_is_non_empty_and_holds_no_whitespace() {
        assert_eq!(check_word(b"milk"), Ok(()));
        assert_eq!(check_word(b"HTTP/1.1"), Ok(()));
        assert_eq!(check_word(b""), Err(InvalidWord::Empty));
        for word in [&b"two words"[..], b"a\tb", b"a\rb", b"a\nb", b"v\r"] {
            assert_eq!(check_word(word), Err(InvalidWord::Whitespace), "{word:?}");
        }
    }

    proptest! {
        /// Words joined by any separators split back into the same words.
        #[test]
        fn words_joined_by_separators_split_back(
            words in proptest::collection::vec(word(), 0..6),
            separator in prop_oneof![Just(&b" "[..]), Just(&b"\t"[..]), Just(&b" \t "[..])],
        ) {
            prop_assert!(words.iter().all(|w| check_word(w).is_ok()));
            let line = words.join(separator);
            let split: Vec<&[u8]> = split(&line).collect();
            prop_assert_eq!(split, words.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }
    }
}
