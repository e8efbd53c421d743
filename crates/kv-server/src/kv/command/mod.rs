//! Typed commands: [`Command::parse`] turns a line into one, [`Command::apply`] runs it.
//!
//! Parsing looks at nothing but the line, so a wrong number of words is
//! `UNKNOWN COMMAND` whether or not the bucket exists (SPEC §4).

mod create;
mod delete;
mod get;
mod put;

pub use create::Create;
pub use delete::Delete;
pub use get::Get;
pub use put::Put;

use bytes::BytesMut;
use kv_store::Store;

use super::{KvSession, Reply};
use crate::protocol::Flow;

/// Most words any request has (`PUT bucket key value`).
const MAX_WORDS: usize = 4;

/// A parsed request; borrows its words from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    Create(Create<'a>),
    Put(Put<'a>),
    Get(Get<'a>),
    Delete(Delete<'a>),
    Ping,
    Quit,
}

impl<'a> Command<'a> {
    /// Parses a line without its terminator; `None` is `UNKNOWN COMMAND`.
    pub fn parse(line: &'a [u8]) -> Option<Command<'a>> {
        let mut words = [&line[..0]; MAX_WORDS];
        let mut count = 0;
        for word in line
            .split(|b| *b == b' ' || *b == b'\t')
            .filter(|w| !w.is_empty())
        {
            *words.get_mut(count)? = word;
            count += 1;
        }
        let (verb, args) = words[..count].split_first()?;
        let command = match verb.len() {
            3 if verb.eq_ignore_ascii_case(b"PUT") => Command::Put(Put::parse(args)?),
            3 if verb.eq_ignore_ascii_case(b"GET") => Command::Get(Get::parse(args)?),
            4 if verb.eq_ignore_ascii_case(b"PING") => no_args(args, Command::Ping)?,
            4 if verb.eq_ignore_ascii_case(b"QUIT") => no_args(args, Command::Quit)?,
            6 if verb.eq_ignore_ascii_case(b"CREATE") => Command::Create(Create::parse(args)?),
            6 if verb.eq_ignore_ascii_case(b"DELETE") => Command::Delete(Delete::parse(args)?),
            _ => return None,
        };
        Some(command)
    }

    /// Runs the command against the session's store. A GET's value may be appended to
    /// `out` by the store directly ([`Reply::ValueWritten`]); every other reply is left to
    /// the caller to encode after it.
    pub async fn apply<S: Store>(
        self,
        session: &mut KvSession<S>,
        out: &mut BytesMut,
    ) -> (Reply, Flow) {
        let reply = match self {
            Command::Create(c) => c.apply(session).await,
            Command::Put(c) => c.apply(session).await,
            Command::Get(c) => c.apply(session, out).await,
            Command::Delete(c) => c.apply(session).await,
            Command::Ping => Reply::Pong,
            Command::Quit => return (Reply::Ok, Flow::Close),
        };
        (reply, Flow::Continue)
    }
}

fn no_args<'a>(args: &[&[u8]], command: Command<'a>) -> Option<Command<'a>> {
    args.is_empty().then_some(command)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_guides_commands() {
        assert_eq!(
            Command::parse(b"CREATE shopping"),
            Some(Command::Create(Create {
                bucket: b"shopping"
            }))
        );
        assert_eq!(
            Command::parse(b"PUT shopping milk 1"),
            Some(Command::Put(Put {
                bucket: b"shopping",
                key: b"milk",
                value: b"1"
            }))
        );
        assert_eq!(
            Command::parse(b"GET shopping milk"),
            Some(Command::Get(Get {
                bucket: b"shopping",
                key: b"milk"
            }))
        );
        assert_eq!(
            Command::parse(b"DELETE shopping eggs"),
            Some(Command::Delete(Delete {
                bucket: b"shopping",
                key: b"eggs"
            }))
        );
        assert_eq!(Command::parse(b"PING"), Some(Command::Ping));
        assert_eq!(Command::parse(b"QUIT"), Some(Command::Quit));
    }

    #[test]
    fn verbs_are_case_insensitive_and_arguments_are_not() {
        assert_eq!(
            Command::parse(b"pUt Shopping Milk One"),
            Some(Command::Put(Put {
                bucket: b"Shopping",
                key: b"Milk",
                value: b"One"
            }))
        );
        assert_eq!(Command::parse(b"ping"), Some(Command::Ping));
    }

    #[test]
    fn runs_of_spaces_and_tabs_separate_words() {
        assert_eq!(
            Command::parse(b" \tGET\t\tb   k \t"),
            Some(Command::Get(Get {
                bucket: b"b",
                key: b"k"
            }))
        );
    }

    #[test]
    fn wrong_word_counts_and_unknown_verbs_are_unknown_commands() {
        for line in [
            &b""[..],
            b"   ",
            b"CREATE",
            b"CREATE a b",
            b"PUT a b",
            b"PUT a b c d",
            b"GET a",
            b"GET a b c",
            b"DELETE a",
            b"PING x",
            b"QUIT now",
            b"FROB a b",
            b"PUTS a b c",
            b"DEBUG PANIC",
        ] {
            assert_eq!(
                Command::parse(line),
                None,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    proptest! {
        /// Any bytes at all parse to a command or to `None`, never a panic.
        #[test]
        fn any_line_parses_without_panicking(line in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Command::parse(&line);
        }

        /// Every whitespace-free word survives parsing unchanged.
        #[test]
        fn put_carries_arbitrary_words(
            bucket in word(), key in word(), value in word(),
        ) {
            let line = [&b"PUT "[..], &bucket, b" ", &key, b"\t", &value].concat();
            prop_assert_eq!(
                Command::parse(&line),
                Some(Command::Put(Put { bucket: &bucket, key: &key, value: &value }))
            );
        }
    }

    /// A non-empty byte string without spaces, tabs or newlines.
    pub(crate) fn word() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            any::<u8>().prop_filter("no separators", |b| !b" \t\r\n".contains(b)),
            1..24,
        )
    }
}
