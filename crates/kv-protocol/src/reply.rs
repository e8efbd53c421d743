//! Replies: the one place that writes their bytes (for the server) and reads them back
//! (for clients and the bench).
//!
//! Every reply ends in `\r\n`. A reply is one line, except GET's: a value line, then `OK`.
//! The value line carries no marker (a value may even be `OK`), so a GET reply can only be
//! read knowing that a GET was asked: [`Reply::decode`] takes the request's [`Verb`].

use bytes::BufMut;

use crate::Verb;

/// Every reply of PROTOCOL.md, "KV mode". (A line of HTTP gets none: the connection is
/// closed instead.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `OK`: a CREATE, PUT, DELETE or QUIT was carried out.
    Ok,
    /// The reply to a GET: `value\r\nOK\r\n`, or `\r\nOK\r\n` for a missing key (`None`).
    /// A value is never empty (an empty value line is how a missing key is written) and
    /// is written as is.
    Value(Option<&'a [u8]>),
    /// `NOT FOUND`: the bucket of a PUT, GET or DELETE does not exist.
    NotFound,
    /// `UNKNOWN COMMAND`: unknown verb, wrong number of words, empty line.
    UnknownCommand,
    /// `PONG`: the reply to `PING`.
    Pong,
    /// The reply to `INFO`: report lines (`# Section`, `name:value`, each ending `\r\n`),
    /// then `OK`. Holds the report lines with their terminators; empty for an unknown
    /// section. A report line is never `OK` (names and section titles are not).
    Report(&'a [u8]),
    /// `ERROR <reason>`: the request was not carried out (the store failed, or the server
    /// refused the line or the connection). The reason is written on one line: a `\r` or
    /// `\n` in it becomes a space.
    Error(&'a [u8]),
}

/// What reading one reply from the front of a buffer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A reply, `len` bytes long (terminators included): consume that many, and the next
    /// reply starts there.
    Reply {
        /// The reply.
        reply: Reply<'a>,
        /// Its length in bytes.
        len: usize,
    },
    /// Complete bytes that are no reply to what was asked (e.g. `PONG` to a PUT, or
    /// garbage): `line` is the offending line without its terminator, and consuming `len`
    /// bytes skips the whole would-be reply, so that the next one can still be read.
    Unexpected {
        /// The line that did not fit, without its terminator.
        line: &'a [u8],
        /// The length in bytes of the would-be reply, terminators included.
        len: usize,
    },
    /// The buffer ends inside the reply: read more, then decode again from the same start.
    Incomplete,
}

impl<'a> Reply<'a> {
    /// `ERROR too many connections`: what the server's acceptor sends a client beyond its
    /// connection limit. The server machinery writes these bytes itself (it serves other
    /// protocols too); a kv client reads them like any `ERROR`.
    pub const TOO_MANY_CONNECTIONS: Reply<'static> = Reply::Error(b"too many connections");

    /// `ERROR line too long`: what the server sends before closing a connection whose
    /// line passed its length limit (also written by the server machinery).
    pub const LINE_TOO_LONG: Reply<'static> = Reply::Error(b"line too long");

    /// Appends the reply's exact wire bytes (PROTOCOL.md, "KV mode") to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        match self {
            Reply::Ok => out.put_slice(b"OK\r\n"),
            Reply::Value(value) => {
                if let Some(value) = value {
                    out.put_slice(value);
                }
                Reply::encode_value_end(out);
            }
            Reply::NotFound => out.put_slice(b"NOT FOUND\r\n"),
            Reply::UnknownCommand => out.put_slice(b"UNKNOWN COMMAND\r\n"),
            Reply::Pong => out.put_slice(b"PONG\r\n"),
            Reply::Report(lines) => {
                out.put_slice(lines);
                out.put_slice(b"OK\r\n");
            }
            Reply::Error(reason) => {
                out.put_slice(b"ERROR ");
                // A line end inside the reason would end the reply early and leave the
                // rest to be read as the next reply.
                for (i, part) in reason.split(|b| matches!(b, b'\r' | b'\n')).enumerate() {
                    if i > 0 {
                        out.put_u8(b' ');
                    }
                    out.put_slice(part);
                }
                out.put_slice(b"\r\n");
            }
        }
    }

    /// Appends what ends a GET reply whose value (if any) is already in `out`: value and
    /// end together are exactly the bytes of [`Reply::Value`]. It lets a server's store
    /// copy a value straight from its storage into the output, with no handle to the value
    /// made and dropped per GET.
    pub fn encode_value_end(out: &mut impl BufMut) {
        out.put_slice(b"\r\nOK\r\n");
    }

    /// Reads the reply at the front of `buf` to a request that `asked` (the request's
    /// [`Verb`]: it says whether a value line comes first, and which success reply fits).
    ///
    /// `NOT FOUND`, `UNKNOWN COMMAND` and `ERROR <reason>` may answer any request; `OK`
    /// answers CREATE, PUT, DELETE and QUIT, `PONG` answers PING, and a GET gets a value
    /// line then `OK`. Lines end at `\n`; a `\r` before it is dropped. Borrows from `buf`,
    /// allocates nothing, and never panics, whatever `buf` holds.
    pub fn decode(buf: &'a [u8], asked: Verb) -> Decoded<'a> {
        let Some((line, first)) = next_line(buf) else {
            return Decoded::Incomplete;
        };
        let one_line = |reply| Decoded::Reply { reply, len: first };
        match line {
            b"NOT FOUND" => return one_line(Reply::NotFound),
            b"UNKNOWN COMMAND" => return one_line(Reply::UnknownCommand),
            _ => {}
        }
        if let Some(reason) = line.strip_prefix(b"ERROR ") {
            return one_line(Reply::Error(reason));
        }
        let expected = match asked {
            Verb::Get | Verb::Count => return decode_value(line, first, &buf[first..]),
            Verb::Info => return decode_report(buf),
            Verb::Ping => (&b"PONG"[..], Reply::Pong),
            Verb::Create | Verb::Put | Verb::Delete | Verb::Quit | Verb::Unsubscribe => {
                (&b"OK"[..], Reply::Ok)
            }
            // A subscription that took has no reply: what follows are events. A backup that
            // started is answered with the backup's bytes, not lines.
            Verb::Subscribe | Verb::Backup => return Decoded::Unexpected { line, len: first },
        };
        if line == expected.0 {
            one_line(expected.1)
        } else {
            Decoded::Unexpected { line, len: first }
        }
    }
}

impl<'a> Reply<'a> {
    /// Reads a one-line reply at the front of `buf`, for a request answered in one line
    /// whatever it asks: [`crate::Auth`], and lines this grammar does not know but a server
    /// may (`DEBUG ...` under `--debug-commands`, a newer server's verbs) — a client that
    /// forwards a person's line as typed reads its reply with this.
    ///
    /// `OK`, `PONG`, `NOT FOUND`, `UNKNOWN COMMAND` and `ERROR <reason>` are replies; any
    /// other complete line is [`Decoded::Unexpected`] (its `len` skips it). Borrows from
    /// `buf`, allocates nothing, never panics.
    pub fn decode_line(buf: &'a [u8]) -> Decoded<'a> {
        let Some((line, len)) = next_line(buf) else {
            return Decoded::Incomplete;
        };
        let reply = match line {
            b"OK" => Reply::Ok,
            b"PONG" => Reply::Pong,
            b"NOT FOUND" => Reply::NotFound,
            b"UNKNOWN COMMAND" => Reply::UnknownCommand,
            _ => match line.strip_prefix(b"ERROR ") {
                Some(reason) => Reply::Error(reason),
                None => return Decoded::Unexpected { line, len },
            },
        };
        Decoded::Reply { reply, len }
    }
}

/// The rest of a GET reply whose first line, `first` bytes long, was no failure: it is the
/// value, and `OK` must follow in `rest`.
fn decode_value<'a>(value: &'a [u8], first: usize, rest: &'a [u8]) -> Decoded<'a> {
    let Some((ok, second)) = next_line(rest) else {
        return Decoded::Incomplete;
    };
    let len = first + second;
    if ok != b"OK" {
        return Decoded::Unexpected { line: ok, len };
    }
    let reply = Reply::Value((!value.is_empty()).then_some(value));
    Decoded::Reply { reply, len }
}

/// An INFO reply: lines up to and including the first `OK` line.
fn decode_report(buf: &[u8]) -> Decoded<'_> {
    let mut at = 0;
    while let Some((line, len)) = next_line(&buf[at..]) {
        if line == b"OK" {
            let reply = Reply::Report(&buf[..at]);
            return Decoded::Reply {
                reply,
                len: at + len,
            };
        }
        at += len;
    }
    Decoded::Incomplete
}

/// The first line of `buf` without its terminator, and its length with it; `None` until
/// its `\n` has arrived.
fn next_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.iter().position(|b| *b == b'\n')?;
    let line = &buf[..end];
    Some((line.strip_suffix(b"\r").unwrap_or(line), end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::tests::word;
    use proptest::prelude::*;

    fn encoded(reply: Reply<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        reply.encode(&mut out);
        out
    }

    /// Shorthand for [`Reply::decode`].
    fn decoded(wire: &[u8], asked: Verb) -> Decoded<'_> {
        Reply::decode(wire, asked)
    }

    fn reply(reply: Reply<'_>, len: usize) -> Decoded<'_> {
        Decoded::Reply { reply, len }
    }

    #[test]
    fn every_reply_has_the_contracts_exact_bytes() {
        assert_eq!(encoded(Reply::Ok), b"OK\r\n");
        assert_eq!(encoded(Reply::Value(Some(b"1"))), b"1\r\nOK\r\n");
        assert_eq!(encoded(Reply::Value(None)), b"\r\nOK\r\n");
        assert_eq!(encoded(Reply::NotFound), b"NOT FOUND\r\n");
        assert_eq!(encoded(Reply::UnknownCommand), b"UNKNOWN COMMAND\r\n");
        assert_eq!(encoded(Reply::Pong), b"PONG\r\n");
        assert_eq!(
            encoded(Reply::Report(b"# Server\r\nmode:kv\r\n")),
            b"# Server\r\nmode:kv\r\nOK\r\n"
        );
        assert_eq!(encoded(Reply::Report(b"")), b"OK\r\n");
        assert_eq!(encoded(Reply::Error(b"disk full")), b"ERROR disk full\r\n");
        assert_eq!(
            encoded(Reply::TOO_MANY_CONNECTIONS),
            b"ERROR too many connections\r\n"
        );
        assert_eq!(encoded(Reply::LINE_TOO_LONG), b"ERROR line too long\r\n");
    }

    #[test]
    fn an_error_reason_stays_on_one_line() {
        assert_eq!(
            encoded(Reply::Error(b"disk full\nreally\r\n")),
            b"ERROR disk full really  \r\n"
        );
    }

    #[test]
    fn a_value_written_in_two_steps_is_the_same_reply() {
        let mut out = b"1".to_vec();
        Reply::encode_value_end(&mut out);
        assert_eq!(out, encoded(Reply::Value(Some(b"1"))));
        let mut out = Vec::new();
        Reply::encode_value_end(&mut out);
        assert_eq!(out, encoded(Reply::Value(None)));
    }

    #[test]
    fn reads_every_kind_of_reply() {
        assert_eq!(decoded(b"OK\r\n", Verb::Create), reply(Reply::Ok, 4));
        assert_eq!(
            decoded(b"1\r\nOK\r\n", Verb::Get),
            reply(Reply::Value(Some(b"1")), 7)
        );
        assert_eq!(
            decoded(b"\r\nOK\r\n", Verb::Get),
            reply(Reply::Value(None), 6)
        );
        assert_eq!(
            decoded(b"NOT FOUND\r\n", Verb::Get),
            reply(Reply::NotFound, 11)
        );
        assert_eq!(
            decoded(b"UNKNOWN COMMAND\r\n", Verb::Get),
            reply(Reply::UnknownCommand, 17)
        );
        assert_eq!(
            decoded(b"ERROR disk full\r\n", Verb::Put),
            reply(Reply::Error(b"disk full"), 17)
        );
        assert_eq!(
            decoded(b"ERROR line too long\r\n", Verb::Get),
            reply(Reply::LINE_TOO_LONG, 21)
        );
        assert_eq!(decoded(b"PONG\r\n", Verb::Ping), reply(Reply::Pong, 6));
        assert_eq!(decoded(b"OK\r\n", Verb::Quit), reply(Reply::Ok, 4));
    }

    #[test]
    fn a_get_reads_its_first_line_as_the_value_whatever_it_says() {
        assert_eq!(
            decoded(b"OK\r\nOK\r\n", Verb::Get),
            reply(Reply::Value(Some(b"OK")), 8)
        );
        assert_eq!(
            decoded(b"PONG\r\nOK\r\n", Verb::Get),
            reply(Reply::Value(Some(b"PONG")), 10)
        );
    }

    #[test]
    fn a_bare_newline_ends_a_line_too() {
        assert_eq!(decoded(b"OK\n", Verb::Put), reply(Reply::Ok, 3));
        assert_eq!(
            decoded(b"v\nOK\n", Verb::Get),
            reply(Reply::Value(Some(b"v")), 5)
        );
    }

    #[test]
    fn replies_that_do_not_fit_the_request_are_unexpected() {
        assert_eq!(
            decoded(b"WHAT\r\nOK\r\n", Verb::Ping),
            Decoded::Unexpected {
                line: b"WHAT",
                len: 6
            }
        );
        assert_eq!(
            decoded(b"PONG\r\n", Verb::Put),
            Decoded::Unexpected {
                line: b"PONG",
                len: 6
            }
        );
        assert_eq!(
            decoded(b"v\r\nNO\r\n", Verb::Get),
            Decoded::Unexpected {
                line: b"NO",
                len: 7
            }
        );
        assert_eq!(
            decoded(b"ERROR\r\n", Verb::Put),
            Decoded::Unexpected {
                line: b"ERROR",
                len: 7
            }
        );
    }

    #[test]
    fn a_one_line_reply_is_read_whatever_was_asked() {
        assert_eq!(Reply::decode_line(b"OK\r\nPONG\r\n"), reply(Reply::Ok, 4));
        assert_eq!(Reply::decode_line(b"PONG\n"), reply(Reply::Pong, 5));
        assert_eq!(
            Reply::decode_line(b"ERROR WRONGPASS invalid password\r\n"),
            reply(Reply::Error(b"WRONGPASS invalid password"), 34)
        );
        assert_eq!(
            Reply::decode_line(b"UNKNOWN COMMAND\r\n"),
            reply(Reply::UnknownCommand, 17)
        );
        assert_eq!(
            Reply::decode_line(b"NOT FOUND\r\n"),
            reply(Reply::NotFound, 11)
        );
        assert_eq!(
            Reply::decode_line(b"k SET TO v\r\n"),
            Decoded::Unexpected {
                line: b"k SET TO v",
                len: 12
            }
        );
        assert_eq!(Reply::decode_line(b"OK"), Decoded::Incomplete);
    }

    #[test]
    fn a_reply_cut_short_needs_more_bytes() {
        assert_eq!(decoded(b"", Verb::Put), Decoded::Incomplete);
        assert_eq!(decoded(b"OK\r", Verb::Put), Decoded::Incomplete);
        assert_eq!(decoded(b"v\r\nO", Verb::Get), Decoded::Incomplete);
        assert_eq!(decoded(b"v\r\n", Verb::Get), Decoded::Incomplete);
    }

    /// A reply that `asked` can get, built from generated parts.
    fn fitting_reply(asked: Verb, kind: u8, bytes: &[u8]) -> Reply<'_> {
        match (kind % 5, asked) {
            (0, _) => Reply::NotFound,
            (1, _) => Reply::UnknownCommand,
            (2, _) => Reply::Error(bytes),
            (3, Verb::Get | Verb::Count) => Reply::Value(Some(bytes)),
            (_, Verb::Get | Verb::Count) => Reply::Value(None),
            (_, Verb::Subscribe | Verb::Backup) => Reply::NotFound,
            (_, Verb::Ping) => Reply::Pong,
            (3, Verb::Info) => Reply::Report(b"# Stats\r\nkeys:1\r\n"),
            (_, Verb::Info) => Reply::Report(b""),
            (_, Verb::Create | Verb::Put | Verb::Delete | Verb::Quit | Verb::Unsubscribe) => {
                Reply::Ok
            }
        }
    }

    proptest! {
        /// What the encoder writes, the decoder reads back as the same reply, taking
        /// exactly its bytes and leaving whatever follows for the next reply; any shorter
        /// prefix of it asks for more bytes.
        #[test]
        fn an_encoded_reply_decodes_back_to_itself(
            asked in proptest::sample::select(&Verb::ALL[..]),
            kind in any::<u8>(),
            bytes in word(),
            after in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let reply = fitting_reply(asked, kind, &bytes);
            let wire = encoded(reply);
            let buffer = [&wire[..], &after].concat();
            prop_assert_eq!(
                Reply::decode(&buffer, asked),
                Decoded::Reply { reply, len: wire.len() }
            );
            for cut in 0..wire.len() {
                prop_assert_eq!(Reply::decode(&wire[..cut], asked), Decoded::Incomplete);
            }
        }

        /// Any bytes at all decode to something, never a panic, and what is consumed is a
        /// non-empty part of the buffer.
        #[test]
        fn any_bytes_decode_without_panicking(
            asked in proptest::sample::select(&Verb::ALL[..]),
            buffer in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), any::<u8>()], 0..48,
            ),
        ) {
            match Reply::decode(&buffer, asked) {
                Decoded::Reply { len, .. } | Decoded::Unexpected { len, .. } => {
                    prop_assert!(0 < len && len <= buffer.len());
                    prop_assert_eq!(buffer[len - 1], b'\n');
                }
                Decoded::Incomplete => {}
            }
        }
    }
}
