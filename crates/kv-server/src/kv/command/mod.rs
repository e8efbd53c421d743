//! Typed commands: [`Command::parse`] turns a line into one, [`Command::apply`] runs it.
//!
//! Parsing looks at nothing but the line, so a wrong number of words is
//! `UNKNOWN COMMAND` whether or not the bucket exists (SPEC §4). A line of HTTP is a parse
//! result too ([`Command::CrossProtocol`]), found only among lines that are no request.

mod create;
mod cross_protocol;
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
use line_server::Flow;

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
    /// Not a request: a line of HTTP, from a web browser or HTTP client talking to the
    /// wrong port (maybe sent by a hostile web page). Answered by closing the connection
    /// without a reply, so that nothing after it runs; see `cross_protocol.rs`.
    CrossProtocol,
}

impl<'a> Command<'a> {
    /// Parses a line without its terminator; `None` is `UNKNOWN COMMAND`.
    pub fn parse(line: &'a [u8]) -> Option<Command<'a>> {
        let mut words = [&line[..0]; MAX_WORDS];
        let mut count = 0;
        for word in line.split(|b| is_separator(*b)).filter(|w| !w.is_empty()) {
            let Some(slot) = words.get_mut(count) else {
                return Self::not_a_request(words[0], line);
            };
            *slot = word;
            count += 1;
        }
        let (verb, args) = words[..count].split_first()?;
        let command = match verb.len() {
            3 if verb.eq_ignore_ascii_case(b"PUT") => Put::parse(args).map(Command::Put),
            3 if verb.eq_ignore_ascii_case(b"GET") => Get::parse(args).map(Command::Get),
            4 if verb.eq_ignore_ascii_case(b"PING") => no_args(args, Command::Ping),
            4 if verb.eq_ignore_ascii_case(b"QUIT") => no_args(args, Command::Quit),
            6 if verb.eq_ignore_ascii_case(b"CREATE") => Create::parse(args).map(Command::Create),
            6 if verb.eq_ignore_ascii_case(b"DELETE") => Delete::parse(args).map(Command::Delete),
            _ => None,
        };
        command.or_else(|| Self::not_a_request(verb, line))
    }

    /// A line with at least one word that is no valid request: HTTP, or `UNKNOWN COMMAND`.
    /// Valid requests never get here, so the check costs them nothing.
    fn not_a_request(first_word: &[u8], line: &'a [u8]) -> Option<Command<'a>> {
        cross_protocol::is_http(first_word, line).then_some(Command::CrossProtocol)
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
            Command::CrossProtocol => return cross_protocol::apply(session.peer()),
        };
        (reply, Flow::Continue)
    }
}

fn no_args<'a>(args: &[&[u8]], command: Command<'a>) -> Option<Command<'a>> {
    args.is_empty().then_some(command)
}

/// Words are separated by runs of spaces and tabs (SPEC §4).
fn is_separator(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
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

    #[test]
    fn lines_of_http_are_cross_protocol() {
        for line in [
            &b"POST / HTTP/1.1"[..],
            b"post /submit http/1.1",
            b"POST",
            b"Host: 127.0.0.1:4040",
            b"host: 127.0.0.1:4040",
            b"HOST:",
            b"\thOsT:  a b c d e f g",
            b"POST a b c d e f g h",
            b"OPTIONS * HTTP/1.1",
            b"HEAD / HTTP/1.0",
            b"PUT / HTTP/1.1",
            b"GET /a?b=c d HTTP/1.1",
            b"GET /a b c d e HTTP/1.1",
            b"HTTP/1.1",
            b"PING HTTP/1.1 \t ",
        ] {
            assert_eq!(
                Command::parse(line),
                Some(Command::CrossProtocol),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn valid_requests_with_http_looking_words_are_still_requests() {
        assert_eq!(
            Command::parse(b"PUT b k HTTP/1.1"),
            Some(Command::Put(Put {
                bucket: b"b",
                key: b"k",
                value: b"HTTP/1.1"
            }))
        );
        assert_eq!(
            Command::parse(b"GET / HTTP/1.1"),
            Some(Command::Get(Get {
                bucket: b"/",
                key: b"HTTP/1.1"
            }))
        );
        assert_eq!(
            Command::parse(b"CREATE HTTP/2"),
            Some(Command::Create(Create { bucket: b"HTTP/2" }))
        );
    }

    #[test]
    fn lines_that_only_look_like_http_are_unknown_commands() {
        for line in [
            &b"HTTP/1.1 200 OK"[..],
            b"Hosts: x",
            b"X-Host: x",
            b"Host:127.0.0.1",
            b"POSTS /",
            b"Content-Type: text/plain",
            b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
            b"GET b k http/1.1",
            b"GET b k HTTP",
            b"FROB a b c d e",
        ] {
            assert_eq!(
                Command::parse(line),
                None,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// What SPEC §4 says, written as plainly as possible: the oracle for the parser.
    fn reference(line: &[u8]) -> Option<&'static str> {
        let words: Vec<&[u8]> = line
            .split(|b| *b == b' ' || *b == b'\t')
            .filter(|w| !w.is_empty())
            .collect();
        let first = words.first()?.to_ascii_uppercase();
        let valid = matches!(
            (&first[..], words.len()),
            (b"CREATE", 2) | (b"PUT", 4) | (b"GET" | b"DELETE", 3) | (b"PING" | b"QUIT", 1)
        );
        let http = &first[..] == b"POST"
            || &first[..] == b"HOST:"
            || words.last().is_some_and(|w| w.starts_with(b"HTTP/"));
        match (valid, http) {
            (true, _) => Some("request"),
            (false, true) => Some("cross-protocol"),
            (false, false) => None,
        }
    }

    /// Lines built from words that matter here, and arbitrary ones, with any separators.
    fn http_ish_line() -> impl Strategy<Value = Vec<u8>> {
        let word = prop_oneof![
            Just(b"PUT".to_vec()),
            Just(b"get".to_vec()),
            Just(b"DELETE".to_vec()),
            Just(b"create".to_vec()),
            Just(b"ping".to_vec()),
            Just(b"POST".to_vec()),
            Just(b"pOsT".to_vec()),
            Just(b"Host:".to_vec()),
            Just(b"host:".to_vec()),
            Just(b"/".to_vec()),
            Just(b"HTTP/1.1".to_vec()),
            Just(b"http/1.1".to_vec()),
            Just(b"HTTP/".to_vec()),
            word(),
        ];
        let separator = prop_oneof![Just(&b" "[..]), Just(&b"\t"[..]), Just(&b" \t  "[..])];
        proptest::collection::vec((separator, word), 0..8).prop_map(|parts| {
            parts
                .into_iter()
                .flat_map(|(separator, word)| [separator.to_vec(), word])
                .flatten()
                .collect()
        })
    }

    proptest! {
        /// The parser agrees with the plain reading of SPEC §4: a valid request is never
        /// cross-protocol, and a line is cross-protocol exactly when it is no request and
        /// starts with `POST`/`Host:` or ends with `HTTP/...`.
        #[test]
        fn cross_protocol_lines_are_exactly_the_http_lines_that_are_no_request(
            line in http_ish_line(),
        ) {
            let parsed = match Command::parse(&line) {
                Some(Command::CrossProtocol) => Some("cross-protocol"),
                Some(_) => Some("request"),
                None => None,
            };
            prop_assert_eq!(parsed, reference(&line), "{:?}", String::from_utf8_lossy(&line));
        }

        /// A valid request is that request, whatever its words look like.
        #[test]
        fn valid_requests_are_never_cross_protocol(
            bucket in word(), key in word(), value in word(), http in any::<bool>(),
        ) {
            let value = if http { [&b"HTTP/"[..], &value].concat() } else { value };
            let line = [&b"PUT "[..], &bucket, b" ", &key, b" ", &value].concat();
            prop_assert_eq!(
                Command::parse(&line),
                Some(Command::Put(Put { bucket: &bucket, key: &key, value: &value }))
            );
            let line = [&b"GET "[..], &bucket, b" ", &value].concat();
            prop_assert_eq!(
                Command::parse(&line),
                Some(Command::Get(Get { bucket: &bucket, key: &value }))
            );
        }

        /// `POST` or `Host:` first, in any case, closes whatever follows.
        #[test]
        fn a_line_starting_with_post_or_host_is_cross_protocol(
            verb in prop_oneof![Just(&b"post"[..]), Just(&b"host:"[..])],
            upper in proptest::collection::vec(any::<bool>(), 5),
            rest in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let verb: Vec<u8> = verb
                .iter()
                .zip(upper)
                .map(|(b, up)| if up { b.to_ascii_uppercase() } else { *b })
                .collect();
            let line = [&verb[..], b" ", &rest].concat();
            prop_assert_eq!(Command::parse(&line), Some(Command::CrossProtocol));
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
