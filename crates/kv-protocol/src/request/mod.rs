//! Requests: parsed from a line (the server's side) and encoded into one (the client's and
//! the bench's side), by the same types. One file per command with words.
//!
//! Parsing looks at nothing but the line, so a wrong number of words is `UNKNOWN COMMAND`
//! whether or not the bucket exists (PROTOCOL.md, "KV mode"). A line of HTTP is a parse result
//! of its own
//! ([`Parsed::CrossProtocol`]), looked for only among lines that are no request.

mod create;
mod delete;
mod get;
mod put;

pub use create::Create;
pub use delete::Delete;
pub use get::Get;
pub use put::Put;

use bytes::BufMut;

use crate::words::{self, check_word, InvalidWord, MAX_WORDS};
use crate::{cross_protocol, Verb};

/// One request of PROTOCOL.md, "KV mode". Borrows its words: from the line it was parsed from,
/// or from
/// whoever built it to encode it. Copying one copies a few slices, never bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `CREATE bucket`
    Create(Create<'a>),
    /// `PUT bucket key value`
    Put(Put<'a>),
    /// `GET bucket key`
    Get(Get<'a>),
    /// `DELETE bucket key`
    Delete(Delete<'a>),
    /// `PING`: answered `PONG`.
    Ping,
    /// `QUIT`: answered `OK`, then the server closes the connection.
    Quit,
}

/// What a line is, to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A valid request.
    Request(Request<'a>),
    /// Not a request: a line of HTTP, from a web browser or HTTP client talking to the
    /// wrong port (maybe sent by a hostile web page). PROTOCOL.md, "KV mode": the connection is
    /// closed
    /// without a reply, so that nothing after this line runs.
    CrossProtocol,
    /// Anything else — unknown verb, wrong number of words, empty line — answered
    /// `UNKNOWN COMMAND`.
    Unknown,
}

impl<'a> Request<'a> {
    /// Parses `line`, given without its terminator (`\n` or `\r\n`). Borrows the words
    /// from `line` and allocates nothing; any bytes at all are accepted (the answer may be
    /// [`Parsed::Unknown`]), none make it panic.
    // Inlinable across crates: it is the server's per-request hot path, and the servers
    // that call it live in another crate.
    #[inline]
    pub fn parse(line: &'a [u8]) -> Parsed<'a> {
        let mut words = [&line[..0]; MAX_WORDS];
        let mut count = 0;
        for word in words::split(line) {
            let Some(slot) = words.get_mut(count) else {
                return not_a_request(words[0], line);
            };
            *slot = word;
            count += 1;
        }
        let Some((verb, args)) = words[..count].split_first() else {
            return Parsed::Unknown;
        };
        let request = match Verb::parse(verb) {
            Some(Verb::Create) => Create::parse(args).map(Request::Create),
            Some(Verb::Put) => Put::parse(args).map(Request::Put),
            Some(Verb::Get) => Get::parse(args).map(Request::Get),
            Some(Verb::Delete) => Delete::parse(args).map(Request::Delete),
            Some(Verb::Ping) => args.is_empty().then_some(Request::Ping),
            Some(Verb::Quit) => args.is_empty().then_some(Request::Quit),
            None => None,
        };
        match request {
            Some(request) => Parsed::Request(request),
            None => not_a_request(verb, line),
        }
    }

    /// Appends the request's line: its verb in upper case, each word after one space, then
    /// `\r\n` (e.g. `PUT shopping milk 1\r\n`). [`Request::parse`] reads it back — without
    /// its terminator — as this same request, provided every word passes
    /// [`Request::validate`]; a word that does not would be read as different words.
    pub fn encode(&self, out: &mut impl BufMut) {
        match self {
            Request::Create(create) => create.encode(out),
            Request::Put(put) => put.encode(out),
            Request::Get(get) => get.encode(out),
            Request::Delete(delete) => delete.encode(out),
            Request::Ping => encode_line(out, Verb::Ping, &[]),
            Request::Quit => encode_line(out, Verb::Quit, &[]),
        }
    }

    /// What the request asks; what [`crate::Reply::decode`] needs to read its reply.
    pub fn verb(&self) -> Verb {
        match self {
            Request::Create(_) => Verb::Create,
            Request::Put(_) => Verb::Put,
            Request::Get(_) => Verb::Get,
            Request::Delete(_) => Verb::Delete,
            Request::Ping => Verb::Ping,
            Request::Quit => Verb::Quit,
        }
    }

    /// Checks that every word can travel as one ([`check_word`]): not empty, no
    /// whitespace. A request that passes survives [`Request::encode`] then
    /// [`Request::parse`] unchanged.
    pub fn validate(&self) -> Result<(), InvalidWord> {
        match self {
            Request::Create(create) => create.words().iter().try_for_each(|w| check_word(w)),
            Request::Put(put) => put.words().iter().try_for_each(|w| check_word(w)),
            Request::Get(get) => get.words().iter().try_for_each(|w| check_word(w)),
            Request::Delete(delete) => delete.words().iter().try_for_each(|w| check_word(w)),
            Request::Ping | Request::Quit => Ok(()),
        }
    }

    /// `CREATE bucket`.
    pub fn create(bucket: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Request::Create(Create {
            bucket: bucket.as_ref(),
        })
    }

    /// `PUT bucket key value`.
    pub fn put(
        bucket: &'a (impl AsRef<[u8]> + ?Sized),
        key: &'a (impl AsRef<[u8]> + ?Sized),
        value: &'a (impl AsRef<[u8]> + ?Sized),
    ) -> Self {
        Request::Put(Put {
            bucket: bucket.as_ref(),
            key: key.as_ref(),
            value: value.as_ref(),
        })
    }

    /// `GET bucket key`.
    pub fn get(
        bucket: &'a (impl AsRef<[u8]> + ?Sized),
        key: &'a (impl AsRef<[u8]> + ?Sized),
    ) -> Self {
        Request::Get(Get {
            bucket: bucket.as_ref(),
            key: key.as_ref(),
        })
    }

    /// `DELETE bucket key`.
    pub fn delete(
        bucket: &'a (impl AsRef<[u8]> + ?Sized),
        key: &'a (impl AsRef<[u8]> + ?Sized),
    ) -> Self {
        Request::Delete(Delete {
            bucket: bucket.as_ref(),
            key: key.as_ref(),
        })
    }
}

/// A line with at least one word that is no valid request: HTTP, or `UNKNOWN COMMAND`.
/// Valid requests never get here, so the check costs them nothing.
fn not_a_request<'a>(first_word: &[u8], line: &[u8]) -> Parsed<'a> {
    if cross_protocol::is_http(first_word, line) {
        Parsed::CrossProtocol
    } else {
        Parsed::Unknown
    }
}

/// Appends `VERB word word…\r\n`: the one place a request line is written.
fn encode_line(out: &mut impl BufMut, verb: Verb, words: &[&[u8]]) {
    out.put_slice(verb.as_bytes());
    for word in words {
        out.put_u8(b' ');
        out.put_slice(word);
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::tests::word;
    use proptest::prelude::*;

    /// The request `line` is, if it is one.
    fn request(line: &[u8]) -> Option<Request<'_>> {
        match Request::parse(line) {
            Parsed::Request(request) => Some(request),
            Parsed::CrossProtocol | Parsed::Unknown => None,
        }
    }

    fn wire(request: Request<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        request.encode(&mut out);
        out
    }

    #[test]
    fn parses_the_guides_commands() {
        assert_eq!(
            request(b"CREATE shopping"),
            Some(Request::Create(Create {
                bucket: b"shopping"
            }))
        );
        assert_eq!(
            request(b"PUT shopping milk 1"),
            Some(Request::Put(Put {
                bucket: b"shopping",
                key: b"milk",
                value: b"1"
            }))
        );
        assert_eq!(
            request(b"GET shopping milk"),
            Some(Request::Get(Get {
                bucket: b"shopping",
                key: b"milk"
            }))
        );
        assert_eq!(
            request(b"DELETE shopping eggs"),
            Some(Request::Delete(Delete {
                bucket: b"shopping",
                key: b"eggs"
            }))
        );
        assert_eq!(request(b"PING"), Some(Request::Ping));
        assert_eq!(request(b"QUIT"), Some(Request::Quit));
    }

    #[test]
    fn encodes_each_request_as_one_line() {
        assert_eq!(wire(Request::create("b")), b"CREATE b\r\n");
        assert_eq!(wire(Request::put("b", "k", "v")), b"PUT b k v\r\n");
        assert_eq!(wire(Request::get("b", "k")), b"GET b k\r\n");
        assert_eq!(wire(Request::delete("b", "k")), b"DELETE b k\r\n");
        assert_eq!(wire(Request::Ping), b"PING\r\n");
        assert_eq!(wire(Request::Quit), b"QUIT\r\n");
    }

    #[test]
    fn verbs_are_case_insensitive_and_arguments_are_not() {
        assert_eq!(
            request(b"pUt Shopping Milk One"),
            Some(Request::put("Shopping", "Milk", "One"))
        );
        assert_eq!(request(b"ping"), Some(Request::Ping));
    }

    #[test]
    fn runs_of_spaces_and_tabs_separate_words() {
        assert_eq!(request(b" \tGET\t\tb   k \t"), Some(Request::get("b", "k")));
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
                Request::parse(line),
                Parsed::Unknown,
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
                Request::parse(line),
                Parsed::CrossProtocol,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn valid_requests_with_http_looking_words_are_still_requests() {
        assert_eq!(
            request(b"PUT b k HTTP/1.1"),
            Some(Request::put("b", "k", "HTTP/1.1"))
        );
        assert_eq!(
            request(b"GET / HTTP/1.1"),
            Some(Request::get("/", "HTTP/1.1"))
        );
        assert_eq!(request(b"CREATE HTTP/2"), Some(Request::create("HTTP/2")));
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
                Request::parse(line),
                Parsed::Unknown,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn words_the_protocol_cannot_carry_are_refused() {
        assert_eq!(
            Request::put("b", "k", "two words").validate(),
            Err(InvalidWord::Whitespace)
        );
        assert_eq!(Request::get("b", "").validate(), Err(InvalidWord::Empty));
        assert_eq!(
            Request::create("a\nb").validate(),
            Err(InvalidWord::Whitespace)
        );
        assert_eq!(Request::put("b", "k", "v").validate(), Ok(()));
        assert_eq!(Request::Ping.validate(), Ok(()));
    }

    /// What PROTOCOL.md, "KV mode" says, written as plainly as possible: the oracle for the
    /// parser.
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

    /// Any request the encoder can be asked for, with valid words.
    fn any_request<'a>(verb: Verb, [bucket, key, value]: &'a [Vec<u8>; 3]) -> Request<'a> {
        match verb {
            Verb::Create => Request::create(bucket),
            Verb::Put => Request::put(bucket, key, value),
            Verb::Get => Request::get(bucket, key),
            Verb::Delete => Request::delete(bucket, key),
            Verb::Ping => Request::Ping,
            Verb::Quit => Request::Quit,
        }
    }

    proptest! {
        /// The parser agrees with the plain reading of PROTOCOL.md, "KV mode": a valid request
        /// is never
        /// cross-protocol, and a line is cross-protocol exactly when it is no request and
        /// starts with `POST`/`Host:` or ends with `HTTP/...`.
        #[test]
        fn cross_protocol_lines_are_exactly_the_http_lines_that_are_no_request(
            line in http_ish_line(),
        ) {
            let parsed = match Request::parse(&line) {
                Parsed::CrossProtocol => Some("cross-protocol"),
                Parsed::Request(_) => Some("request"),
                Parsed::Unknown => None,
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
                Request::parse(&line),
                Parsed::Request(Request::put(&bucket, &key, &value))
            );
            let line = [&b"GET "[..], &bucket, b" ", &value].concat();
            prop_assert_eq!(
                Request::parse(&line),
                Parsed::Request(Request::get(&bucket, &value))
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
            prop_assert_eq!(Request::parse(&line), Parsed::CrossProtocol);
        }

        /// Any bytes at all parse to something, never a panic.
        #[test]
        fn any_line_parses_without_panicking(line in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Request::parse(&line);
        }

        /// Every whitespace-free word survives parsing unchanged.
        #[test]
        fn put_carries_arbitrary_words(
            bucket in word(), key in word(), value in word(),
        ) {
            let line = [&b"PUT "[..], &bucket, b" ", &key, b"\t", &value].concat();
            prop_assert_eq!(
                Request::parse(&line),
                Parsed::Request(Request::put(&bucket, &key, &value))
            );
        }

        /// What the encoder writes, the parser reads back as the same request: one line,
        /// ending in `\r\n`, that is exactly that request without its terminator.
        #[test]
        fn an_encoded_request_parses_back_to_itself(
            verb in proptest::sample::select(&Verb::ALL[..]),
            words in [word(), word(), word()],
        ) {
            let request = any_request(verb, &words);
            prop_assert_eq!(request.validate(), Ok(()));
            prop_assert_eq!(request.verb(), verb);
            let line = wire(request);
            let body = line.strip_suffix(b"\r\n").expect("a request line ends in CRLF");
            prop_assert!(!body.contains(&b'\n'), "one line: {:?}", line);
            prop_assert_eq!(Request::parse(body), Parsed::Request(request));
        }
    }
}
