//! Parsing and encoding requests: unit tests per rule, and properties against a plain
//! reading of the protocol.

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
        assert_parses_as(line, Parsed::Unknown);
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
        assert_parses_as(line, Parsed::CrossProtocol);
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
        assert_parses_as(line, Parsed::Unknown);
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
        Verb::Info if key.len() % 2 == 0 => Request::Info { section: None },
        Verb::Info => Request::Info {
            section: Some(bucket),
        },
        Verb::Subscribe => Request::Subscribe { bucket },
        Verb::Unsubscribe => Request::Unsubscribe,
        Verb::Count => Request::CountSubscriptions { bucket },
        Verb::Backup => Request::Backup,
    }
}

proptest! {
    /// The parser agrees with the plain reading of PROTOCOL.md, "KV mode": a valid request
    /// is never cross-protocol, and a line is cross-protocol exactly when it is no request
    /// and starts with `POST`/`Host:` or ends with `HTTP/...`.
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

/// `line` parses as `expected`; the failure names the line as text.
fn assert_parses_as(line: &[u8], expected: Parsed<'_>) {
    assert_eq!(
        Request::parse(line),
        expected,
        "{:?}",
        String::from_utf8_lossy(line)
    );
}
