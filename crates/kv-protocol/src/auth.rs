//! `AUTH password` → `OK`, or `ERROR WRONGPASS invalid password`, or
//! `ERROR AUTH no password is set` (PROTOCOL.md, "Security").
//!
//! Not a [`crate::Request`]: the server answers `AUTH` in its machinery, in front of every
//! protocol (echo mode too), so KV mode never sees it and does not count it; its reply is
//! one line, read with [`crate::Reply::decode_line`]. Clients encode it here, so that the
//! line is written in one place as every other request is.

use std::fmt;

use bytes::BufMut;

use crate::words::{check_word, is_separator, InvalidWord};

/// The verb, as encoders write it (the server reads it in any case).
const VERB: &[u8] = b"AUTH";

/// `AUTH password`: unlocks a connection to a server started with `--requirepass`.
/// Borrows the password; `Debug` never shows it, so a request logged by mistake leaks
/// nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    /// The password: one word (no space, tab, `\r` or `\n`), as the server's is.
    pub password: &'a [u8],
}

impl<'a> Auth<'a> {
    /// `AUTH password`.
    pub fn new(password: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Self {
            password: password.as_ref(),
        }
    }

    /// The `AUTH` request `line` is (given without its terminator, verb in any case), or
    /// `None` if its first word is not `AUTH` or it has not exactly one word after it.
    pub fn parse(line: &'a [u8]) -> Option<Self> {
        let mut words = line
            .split(|b| is_separator(*b))
            .filter(|word| !word.is_empty());
        if !words.next()?.eq_ignore_ascii_case(VERB) {
            return None;
        }
        let password = words.next()?;
        words.next().is_none().then_some(Self { password })
    }

    /// Whether `line` (without its terminator) starts with the word `AUTH` in any case,
    /// whatever follows: a line a client must keep out of logs and history.
    pub fn is_auth_line(line: &[u8]) -> bool {
        line.split(|b| is_separator(*b))
            .find(|word| !word.is_empty())
            .is_some_and(|verb| verb.eq_ignore_ascii_case(VERB))
    }

    /// Checks that the password can travel as one word ([`check_word`]).
    pub fn validate(&self) -> Result<(), InvalidWord> {
        check_word(self.password)
    }

    /// Appends `AUTH password\r\n`. [`Auth::parse`] reads it back (without its
    /// terminator) as this same request when [`Auth::validate`] passes.
    pub fn encode(&self, out: &mut impl BufMut) {
        super::request::encode_words(out, VERB, &[self.password]);
    }
}

impl fmt::Debug for Auth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Auth { password: <redacted> }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::tests::word;
    use proptest::prelude::*;

    #[test]
    fn encodes_the_verb_then_the_password() {
        let mut out = Vec::new();
        Auth::new("s3cret").encode(&mut out);
        assert_eq!(out, b"AUTH s3cret\r\n");
    }

    #[test]
    fn parses_in_any_case_with_exactly_one_word_after_the_verb() {
        assert_eq!(Auth::parse(b"auth pw"), Some(Auth::new("pw")));
        assert_eq!(Auth::parse(b" \tAuTh\t pw "), Some(Auth::new("pw")));
        assert_eq!(Auth::parse(b"AUTH"), None);
        assert_eq!(Auth::parse(b"AUTH a b"), None);
        assert_eq!(Auth::parse(b"AUTHX pw"), None);
        assert_eq!(Auth::parse(b"PING"), None);
    }

    #[test]
    fn any_line_starting_with_auth_is_one_to_keep_out_of_history() {
        assert!(Auth::is_auth_line(b"auth a b c"));
        assert!(Auth::is_auth_line(b"  AUTH"));
        assert!(!Auth::is_auth_line(b"GET auth x"));
        assert!(!Auth::is_auth_line(b""));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let shown = format!("{:?}", Auth::new("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_password_with_whitespace_cannot_travel() {
        assert_eq!(
            Auth::new("two words").validate(),
            Err(InvalidWord::Whitespace)
        );
        assert_eq!(Auth::new("").validate(), Err(InvalidWord::Empty));
    }

    proptest! {
        /// What is encoded parses back to the same request.
        #[test]
        fn an_encoded_auth_parses_back(password in word()) {
            let mut out = Vec::new();
            Auth::new(&password).encode(&mut out);
            let line = out.strip_suffix(b"\r\n").expect("a terminated line");
            prop_assert_eq!(Auth::parse(line), Some(Auth::new(&password)));
        }
    }
}
