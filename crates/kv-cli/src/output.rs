//! What kv-cli prints, and the status it exits with (SPEC §16).
//!
//! Replies are printed as the server sent them, one line each, with `\n` for the server's
//! `\r\n` (a terminal would show a stray `\r`; scripts compare lines): a GET's value on its
//! own line, then `OK`; a missing key's empty value line, then `OK`. Messages of kv-cli's
//! own go to stderr, prefixed `kv-cli: `.

use std::io::{self, Write};

use kv_client::Received;

/// How a run ended: the process's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// 0: every reply was a normal one (`OK`, a value, `PONG`, `NOT FOUND`, a report).
    Ok,
    /// 1: some reply was `ERROR ...` or `UNKNOWN COMMAND`, or a line could not be sent.
    Error,
    /// 2: the server could not be reached or refused to authenticate kv-cli, or the
    /// connection was lost before every reply came.
    Unavailable,
    /// 2, as clap's own usage errors: flags that cannot work (a TLS file missing, an
    /// unreadable password file).
    Usage,
}

impl Status {
    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Error => 1,
            Status::Unavailable | Status::Usage => 2,
        }
    }

    /// The status of a run that got `reply`.
    pub fn of(reply: &Received<'_>) -> Status {
        if reply.is_error() {
            Status::Error
        } else {
            Status::Ok
        }
    }
}

/// Appends `wire` (one reply's bytes) to `out` with each `\r\n` as `\n`.
pub fn push_reply(out: &mut Vec<u8>, wire: &[u8]) {
    for line in wire.split_inclusive(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
}

/// Prints one reply to stdout. Errors: stdout is closed or full.
pub fn print_reply(wire: &[u8]) -> io::Result<()> {
    let mut text = Vec::with_capacity(wire.len());
    push_reply(&mut text, wire);
    let mut stdout = io::stdout().lock();
    stdout.write_all(&text)?;
    stdout.flush()
}

/// Prints `message` on stderr as kv-cli's own.
pub fn complain(message: &str) {
    eprintln!("kv-cli: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_reply(&mut out, wire);
        out
    }

    #[test]
    fn replies_are_shown_line_by_line_as_sent() {
        assert_eq!(shown(b"OK\r\n"), b"OK\n");
        assert_eq!(shown(b"1\r\nOK\r\n"), b"1\nOK\n");
        assert_eq!(shown(b"\r\nOK\r\n"), b"\nOK\n");
        assert_eq!(shown(b"v\nOK\n"), b"v\nOK\n");
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Status::Ok.code(), 0);
        assert_eq!(Status::Error.code(), 1);
        assert_eq!(Status::Unavailable.code(), 2);
        assert!(Status::Unavailable > Status::Error && Status::Error > Status::Ok);
    }
}
