//! Which lines are HTTP, not requests: [`crate::Parsed::CrossProtocol`] (PROTOCOL.md, "KV
//! mode").
//!
//! Why it is grammar: any web page a user opens can make their browser `POST` to
//! `127.0.0.1:4040` with a `text/plain` body of kv requests. A line protocol that answers
//! each header with an error and reads on would then run the body as the user —
//! "cross-protocol scripting". Redis closes such connections when it sees `POST` or
//! `Host:` as a command (`securityWarningCommand` in Redis' src/networking.c); kv-server
//! does too, and also on a line that is no request and ends in `HTTP/...` (an HTTP request
//! line of any method, e.g. `OPTIONS * HTTP/1.1`). What a server does about such a line
//! (close, warn) is the server's business; which lines they are is decided here.

use crate::words;

/// Whether a line that is no valid request is HTTP: its first word is `POST` or `Host:`
/// (any case; a browser's cross-origin `POST` always carries both), or its last word
/// starts with `HTTP/` (the version that ends every HTTP/1.x request line; case-sensitive,
/// as RFC 9112 §2.3 spells it).
///
/// Only called for lines that are not valid requests (`POST` and `Host:` are no verbs, and
/// `GET / HTTP/1.1` is a valid `GET`), so the requests of ordinary clients pay nothing,
/// and a value such as `HTTP/1.1` in a valid `PUT` is just a value.
pub(crate) fn is_http(first_word: &[u8], line: &[u8]) -> bool {
    first_word.eq_ignore_ascii_case(b"POST")
        || first_word.eq_ignore_ascii_case(b"HOST:")
        || words::split(line)
            .next_back()
            .is_some_and(|word| word.starts_with(b"HTTP/"))
}
