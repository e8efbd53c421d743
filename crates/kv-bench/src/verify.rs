//! Checking one reply against the bytes it must be.
//!
//! The fast path is a single comparison with the expected bytes. Only a reply that differs
//! needs the protocol's framing rules, to find where the wrong reply ends so that the
//! replies after it can still be checked (and counted) instead of all failing.

use kv_protocol::{Decoded, Reply};

use crate::workload::{Op, Proto};

/// The outcome of looking at the front of the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The expected reply, this many bytes long.
    Right(usize),
    /// A different, complete reply of this many bytes.
    Wrong(usize),
    /// Not enough bytes yet to tell.
    Incomplete,
}

/// Compares the front of `buf` with `expected`; `proto` and `op` say how to frame a reply
/// that is not the expected one.
pub fn check(buf: &[u8], expected: &[u8], proto: Proto, op: Op) -> Verdict {
    if buf.len() >= expected.len() {
        if buf[..expected.len()] == *expected {
            return Verdict::Right(expected.len());
        }
    } else if expected.starts_with(buf) {
        return Verdict::Incomplete;
    }
    match frame_len(buf, proto, op) {
        Some(len) => Verdict::Wrong(len),
        None => Verdict::Incomplete,
    }
}

/// Length of the first complete reply in `buf` under the protocol's framing, or `None` if
/// it is not complete yet.
pub fn frame_len(buf: &[u8], proto: Proto, op: Op) -> Option<usize> {
    let first = line_len(buf)?;
    let line = &buf[..first];
    match (proto, op) {
        (Proto::Echo, _) | (Proto::Memcached, Op::Put) => Some(first),
        // kv-server's own grammar says where each of its replies ends (a GET's spans two
        // lines, unless it is a one-line failure).
        (Proto::Kv, _) => match Reply::decode(buf, op.kv_verb()) {
            Decoded::Reply { len, .. } | Decoded::Unexpected { len, .. } => Some(len),
            Decoded::Incomplete => None,
        },
        (Proto::Redis, _) => match line.strip_prefix(b"$") {
            Some(rest) => match parse_len(trim_crlf(rest)) {
                Some(n) => {
                    let total = first + n + 2;
                    (buf.len() >= total).then_some(total)
                }
                // `$-1` (nil) or garbage: the line alone.
                None => Some(first),
            },
            None => Some(first),
        },
        (Proto::Memcached, Op::Get) => {
            let Some(header) = line.strip_prefix(b"VALUE ") else {
                return Some(first); // `END`, or an error line
            };
            let bytes = trim_crlf(header)
                .rsplit(|b| *b == b' ')
                .next()
                .and_then(parse_len);
            match bytes {
                Some(n) => {
                    let data_end = first + n + 2;
                    if buf.len() < data_end {
                        return None;
                    }
                    Some(data_end + line_len(&buf[data_end..])?)
                }
                None => Some(first),
            }
        }
    }
}

/// Length of the first line, `\n` included.
fn line_len(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|b| *b == b'\n').map(|i| i + 1)
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_len(digits: &[u8]) -> Option<usize> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_reply_is_right() {
        assert_eq!(
            check(b"v\r\nOK\r\nmore", b"v\r\nOK\r\n", Proto::Kv, Op::Get),
            Verdict::Right(7)
        );
    }

    #[test]
    fn a_prefix_of_the_expected_reply_waits_for_more() {
        assert_eq!(
            check(b"v\r\nO", b"v\r\nOK\r\n", Proto::Kv, Op::Get),
            Verdict::Incomplete
        );
    }

    #[test]
    fn a_kv_failure_line_is_one_wrong_reply() {
        assert_eq!(
            check(b"NOT FOUND\r\nOK\r\n", b"v\r\nOK\r\n", Proto::Kv, Op::Get),
            Verdict::Wrong(11)
        );
    }

    #[test]
    fn a_wrong_kv_value_spans_two_lines() {
        assert_eq!(
            check(b"w\r\nOK\r\n", b"v\r\nOK\r\n", Proto::Kv, Op::Get),
            Verdict::Wrong(7)
        );
        assert_eq!(
            check(b"w\r\nO", b"v\r\nOK\r\n", Proto::Kv, Op::Get),
            Verdict::Incomplete
        );
    }

    #[test]
    fn redis_bulk_strings_are_framed_by_their_length() {
        assert_eq!(
            check(b"$3\r\nabc\r\n", b"$3\r\nabd\r\n", Proto::Redis, Op::Get),
            Verdict::Wrong(9)
        );
        assert_eq!(
            check(b"$3\r\na", b"$2\r\nab\r\n", Proto::Redis, Op::Get),
            Verdict::Incomplete
        );
        assert_eq!(
            check(b"$-1\r\n", b"$2\r\nab\r\n", Proto::Redis, Op::Get),
            Verdict::Wrong(5)
        );
        assert_eq!(
            check(b"-ERR x\r\n", b"+OK\r\n", Proto::Redis, Op::Put),
            Verdict::Wrong(8)
        );
    }

    #[test]
    fn memcached_values_are_framed_through_end() {
        let got = b"VALUE k 0 2\r\nzz\r\nEND\r\n";
        let want = b"VALUE k 0 2\r\nab\r\nEND\r\n";
        assert_eq!(
            check(got, want, Proto::Memcached, Op::Get),
            Verdict::Wrong(got.len())
        );
        assert_eq!(
            check(b"END\r\n", want, Proto::Memcached, Op::Get),
            Verdict::Wrong(5)
        );
        assert_eq!(
            check(b"NOT_STORED\r\n", b"STORED\r\n", Proto::Memcached, Op::Put),
            Verdict::Wrong(12)
        );
    }
}
