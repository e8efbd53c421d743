//! What a line typed or piped to kv-cli is, so what kv-cli does with it.
//!
//! Requests are recognised by kv-protocol's parser (the server's own), `AUTH` by its
//! `Auth`. A line neither knows is still sent as it is and its one-line reply read: the
//! server may know it (`DEBUG ...` under `--debug-commands`), and otherwise answers
//! `UNKNOWN COMMAND`, which a person should see.

use kv_client::{Auth, Outgoing};
use kv_protocol::{Parsed, Request};

/// A line, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed<'a> {
    /// Only spaces and tabs, or nothing: skipped, not sent (the server would answer
    /// `UNKNOWN COMMAND`, which no one typing Enter means to ask for).
    Blank,
    /// Sent, and its reply read.
    Send(Outgoing<'a>),
    /// `SUBSCRIBE bucket`: the connection then receives events instead of replies, which
    /// is a mode of its own (`subscribe.rs`: each event printed until interrupted, SPEC
    /// §16); from a script or a session it is not sent.
    Subscribe(&'a [u8]),
    /// Not sent, for the reason given: the server would close the connection at once (a
    /// line of HTTP, PROTOCOL.md "Cross-protocol requests"), or answer with bytes that are
    /// no lines (`BACKUP`, which has a mode of its own: `--backup FILE`).
    Refused(&'static str),
}

/// What `line` is (given without its line terminator; a trailing `\r` is dropped).
pub fn classify(line: &[u8]) -> Typed<'_> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match Request::parse(line) {
        Parsed::Request(Request::Subscribe { bucket }) => return Typed::Subscribe(bucket),
        Parsed::Request(Request::Backup) => return Typed::Refused(
            "BACKUP is answered with a backup file's bytes: take one with `kv-cli --backup FILE`",
        ),
        Parsed::Request(request) => return Typed::Send(Outgoing::Request(request)),
        Parsed::CrossProtocol => {
            return Typed::Refused("a line of HTTP: the server would close the connection")
        }
        Parsed::Unknown => {}
    }
    if let Some(auth) = Auth::parse(line) {
        return Typed::Send(Outgoing::Auth(auth));
    }
    let mut words = line
        .split(|b| matches!(b, b' ' | b'\t'))
        .filter(|w| !w.is_empty());
    match words.next() {
        None => Typed::Blank,
        Some(_) => Typed::Send(Outgoing::Line(line)),
    }
}

/// What kv-cli says of a `SUBSCRIBE` in a script or a session, which it does not send.
pub const SUBSCRIBE_NOT_YET: &str =
    "SUBSCRIBE takes the connection over: run it alone, `kv-cli SUBSCRIBE bucket`";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_by_the_servers_grammar() {
        assert_eq!(
            classify(b"get  shopping\tmilk\r"),
            Typed::Send(Outgoing::Request(Request::get("shopping", "milk")))
        );
        assert_eq!(
            classify(b"PING"),
            Typed::Send(Outgoing::Request(Request::Ping))
        );
    }

    #[test]
    fn auth_is_sent_as_auth() {
        assert_eq!(
            classify(b"auth pw"),
            Typed::Send(Outgoing::Auth(Auth::new("pw")))
        );
    }

    #[test]
    fn unknown_lines_are_sent_as_typed_for_the_server_to_judge() {
        assert_eq!(
            classify(b"DEBUG SLEEP 10"),
            Typed::Send(Outgoing::Line(b"DEBUG SLEEP 10"))
        );
        assert_eq!(classify(b"GET b"), Typed::Send(Outgoing::Line(b"GET b")));
    }

    #[test]
    fn blank_lines_subscribe_and_http_are_kept_back() {
        assert_eq!(classify(b" \t "), Typed::Blank);
        assert_eq!(classify(b""), Typed::Blank);
        assert_eq!(classify(b"subscribe b"), Typed::Subscribe(b"b"));
        assert!(matches!(classify(b"backup"), Typed::Refused(why) if why.contains("--backup")));
        assert!(matches!(classify(b"POST / HTTP/1.1"), Typed::Refused(_)));
    }
}
