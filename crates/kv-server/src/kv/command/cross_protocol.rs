//! A line of HTTP on the kv port → no reply, and the connection is closed (SPEC §4).
//!
//! Why: any web page a user opens can make their browser `POST` to `127.0.0.1:4040` with a
//! `text/plain` body of kv requests. A line protocol that answers each header with an error
//! and reads on would then run the body as the user — "cross-protocol scripting". Redis
//! closes such connections when it sees `POST` or `Host:` as a command
//! (`securityWarningCommand` in Redis' src/networking.c); so does kv-server, and it
//! also closes on a line that is no request and ends in `HTTP/...` (an HTTP request line
//! of any method, e.g. `OPTIONS * HTTP/1.1`).

use std::net::SocketAddr;
use std::time::Duration;

use tracing::warn;

use crate::kv::Reply;
use line_server::Flow;
use line_server::Throttle;

/// Process-wide, as Redis' `logged_time` is: each offending connection is cheap to open,
/// so a per-connection limit would still let a flood of them flood the log.
static WARNINGS: Throttle = Throttle::new(Duration::from_secs(60));

/// Whether a line that failed to parse as a request is HTTP: its first word is `POST` or
/// `Host:` (any case; a browser's cross-origin `POST` always carries both), or its last word
/// starts with `HTTP/` (the version that ends every HTTP/1.x request line; case-sensitive,
/// as RFC 9112 §2.3 spells it).
///
/// Only called for lines that are not valid requests (`POST` and `Host:` are no verbs, and
/// `GET / HTTP/1.1` is a valid `GET`), so the requests of ordinary clients pay nothing,
/// and a value such as `HTTP/1.1` in a valid `PUT` is just a value.
pub(super) fn is_http(first_word: &[u8], line: &[u8]) -> bool {
    first_word.eq_ignore_ascii_case(b"POST")
        || first_word.eq_ignore_ascii_case(b"HOST:")
        || last_word(line).is_some_and(|word| word.starts_with(b"HTTP/"))
}

/// Warns (at most once a minute, process-wide) and hangs up without a word: the client is
/// not a kv client, and nothing after this line on the connection may run.
pub(super) fn apply(peer: SocketAddr) -> (Reply, Flow) {
    if let Some(not_logged) = WARNINGS.allow() {
        // The offending bytes are not logged: they are the client's to choose.
        warn!(
            peer = %peer,
            similar_not_logged = not_logged,
            "possible SECURITY ATTACK: an HTTP request (POST, Host: or an HTTP request line) \
             reached the kv port, maybe from a web page using cross-protocol scripting; \
             connection closed without a reply (logged at most once a minute)"
        );
    }
    (Reply::Hangup, Flow::Close)
}

/// The last word of a line, if it has any words.
fn last_word(line: &[u8]) -> Option<&[u8]> {
    line.rsplit(|b| super::is_separator(*b))
        .find(|word| !word.is_empty())
}
