//! What a client can send: a request of KV mode, `AUTH`, or a line as a person typed it.

use bytes::BufMut;
use kv_protocol::{Auth, Request};

use crate::{Error, Expect};

/// One line to send, and so which reply to read ([`Outgoing::expect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing<'a> {
    /// A request of KV mode, encoded by kv-protocol.
    Request(Request<'a>),
    /// `AUTH password`.
    Auth(Auth<'a>),
    /// A line kv-protocol does not know, sent as it is (without its terminator): a server
    /// may know it (`DEBUG ...` under `--debug-commands`, a newer server's verbs), and
    /// otherwise answers `UNKNOWN COMMAND`. Its reply is read as one line.
    Line(&'a [u8]),
}

impl Outgoing<'_> {
    /// Which reply this line gets.
    pub fn expect(&self) -> Expect {
        match self {
            Outgoing::Request(request) => Expect::Reply(request.verb()),
            Outgoing::Auth(_) | Outgoing::Line(_) => Expect::Line,
        }
    }

    /// Appends the line, `\r\n`-terminated, to `out`. Errors, with nothing appended: a word
    /// the protocol cannot carry ([`Error::InvalidArgument`]), or a raw line holding a
    /// `\r` or `\n`, which would be more than one line.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), Error> {
        match self {
            Outgoing::Request(request) => {
                request.validate()?;
                request.encode(out);
            }
            Outgoing::Auth(auth) => {
                auth.validate()?;
                auth.encode(out);
            }
            Outgoing::Line(line) => {
                if line.iter().any(|b| matches!(b, b'\r' | b'\n')) {
                    return Err(Error::InvalidArgument("a line break inside one line"));
                }
                out.put_slice(line);
                out.put_slice(b"\r\n");
            }
        }
        Ok(())
    }
}
