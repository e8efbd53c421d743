//! The verb: a request's first word, which says what it asks.

/// What a request asks (PROTOCOL.md, "KV mode"). Parsed in any case; encoded in upper case.
///
/// It is also what a reply decoder must be told ([`crate::Reply::decode`]): the reply to a
/// GET is a value line then `OK`, and a value line carries no marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `CREATE bucket`
    Create,
    /// `PUT bucket key value`
    Put,
    /// `GET bucket key`
    Get,
    /// `DELETE bucket key`
    Delete,
    /// `PING`
    Ping,
    /// `QUIT`
    Quit,
    /// `INFO` or `INFO section`
    Info,
    /// `SUBSCRIBE bucket`
    Subscribe,
    /// `UNSUBSCRIBE`
    Unsubscribe,
    /// `COUNT SUBSCRIPTIONS bucket`
    Count,
    /// `BACKUP`
    Backup,
}

impl Verb {
    /// Every verb.
    pub const ALL: [Verb; 11] = [
        Verb::Create,
        Verb::Put,
        Verb::Get,
        Verb::Delete,
        Verb::Ping,
        Verb::Quit,
        Verb::Info,
        Verb::Subscribe,
        Verb::Unsubscribe,
        Verb::Count,
        Verb::Backup,
    ];

    /// The verb `word` names, in any case (`get`, `Get`, `GET`); `None` for any other
    /// word. Matches on the length first, so most words are turned away by one compare.
    #[inline]
    pub fn parse(word: &[u8]) -> Option<Verb> {
        match word.len() {
            3 if word.eq_ignore_ascii_case(b"PUT") => Some(Verb::Put),
            3 if word.eq_ignore_ascii_case(b"GET") => Some(Verb::Get),
            4 if word.eq_ignore_ascii_case(b"PING") => Some(Verb::Ping),
            4 if word.eq_ignore_ascii_case(b"QUIT") => Some(Verb::Quit),
            4 if word.eq_ignore_ascii_case(b"INFO") => Some(Verb::Info),
            5 if word.eq_ignore_ascii_case(b"COUNT") => Some(Verb::Count),
            6 if word.eq_ignore_ascii_case(b"CREATE") => Some(Verb::Create),
            6 if word.eq_ignore_ascii_case(b"DELETE") => Some(Verb::Delete),
            6 if word.eq_ignore_ascii_case(b"BACKUP") => Some(Verb::Backup),
            9 if word.eq_ignore_ascii_case(b"SUBSCRIBE") => Some(Verb::Subscribe),
            11 if word.eq_ignore_ascii_case(b"UNSUBSCRIBE") => Some(Verb::Unsubscribe),
            _ => None,
        }
    }

    /// The verb as encoders write it: upper-case ASCII.
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            Verb::Create => b"CREATE",
            Verb::Put => b"PUT",
            Verb::Get => b"GET",
            Verb::Delete => b"DELETE",
            Verb::Ping => b"PING",
            Verb::Quit => b"QUIT",
            Verb::Info => b"INFO",
            Verb::Subscribe => b"SUBSCRIBE",
            Verb::Unsubscribe => b"UNSUBSCRIBE",
            Verb::Count => b"COUNT",
            Verb::Backup => b"BACKUP",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_verb_parses_from_its_own_spelling() {
        for verb in Verb::ALL {
            assert_eq!(Verb::parse(verb.as_bytes()), Some(verb));
        }
    }

    #[test]
    fn other_words_are_no_verbs() {
        for word in [
            &b""[..],
            b"PUTS",
            b"GE",
            b"POST",
            b"DEBUG",
            b"CREATED",
            b"P\xc3\x9cT",
        ] {
            assert_eq!(Verb::parse(word), None, "{word:?}");
        }
    }

    proptest! {
        /// Verbs are case-insensitive: every mix of cases names the same verb.
        #[test]
        fn verbs_parse_in_any_case(
            index in 0..Verb::ALL.len(),
            upper in proptest::collection::vec(any::<bool>(), 11),
        ) {
            let verb = Verb::ALL[index];
            let word: Vec<u8> = verb
                .as_bytes()
                .iter()
                .zip(upper)
                .map(|(b, up)| if up { *b } else { b.to_ascii_lowercase() })
                .collect();
            prop_assert_eq!(Verb::parse(&word), Some(verb));
        }
    }
}
