//! Reading replies: the bytes come off the socket here; what they mean is decided by
//! `kv_protocol`'s [`Reply::decode`].

use bytes::{Buf, Bytes, BytesMut};
use kv_protocol::{Decoded, Reply, Verb};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;

/// Longest reply this client accepts: a GET's value line and its `OK`, each within the
/// server's default line limit (64 KiB); an `INFO` report is far shorter. A longer one is a
/// server gone wrong, and is not buffered further.
pub(crate) const MAX_REPLY_BYTES: usize = 2 * 64 * 1024;

/// Room reserved per read.
const READ_CHUNK: usize = 4096;

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `OK` to CREATE, PUT, DELETE or QUIT.
    Ok,
    /// The reply to GET: the value, or `None` for a missing key.
    Value(Option<Bytes>),
    /// `PONG`
    Pong,
    /// The report lines of `INFO` (`# Section`, `name:value`), without the final `OK`.
    Report(Bytes),
}

/// Which reply a request gets, so which decoder reads it: kv-protocol's
/// [`Reply::decode`] for a request of KV mode (a GET's value line carries no marker, so the
/// verb must be known), [`Reply::decode_line`] for a one-line reply (`AUTH`, or a line the
/// grammar does not know, sent as typed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The reply to a request with this verb.
    Reply(Verb),
    /// One line, whatever it says.
    Line,
}

impl Expect {
    fn decode(self, buf: &[u8]) -> Decoded<'_> {
        match self {
            Expect::Reply(verb) => Reply::decode(buf, verb),
            Expect::Line => Reply::decode_line(buf),
        }
    }
}

/// A reply as it came off the wire, borrowed from the client's input buffer until the next
/// read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// What it says; `None` for a line that is no reply kv-protocol knows, possible only
    /// with [`Expect::Line`] (for a request of KV mode such a line is an
    /// [`Error::UnexpectedReply`]).
    pub reply: Option<Reply<'a>>,
    /// Its exact bytes, terminators included: what a person is shown.
    pub wire: &'a [u8],
}

impl Received<'_> {
    /// Whether it reports a failure: `UNKNOWN COMMAND`, `ERROR ...`, or a line no reply
    /// knows. `NOT FOUND` is an answer, not a failure (redis-cli likewise exits 0 on a nil).
    pub fn is_error(&self) -> bool {
        matches!(
            self.reply,
            None | Some(Reply::UnknownCommand | Reply::Error(_))
        )
    }
}

/// Reads from `reader` into `input` until a whole reply to `expect` is at its front, and
/// returns its length (nothing is consumed). Bytes after it (replies to later pipelined
/// requests) stay in `input`.
///
/// Errors: the connection failed or closed ([`Error::Closed`] before any byte of the
/// reply), the bytes are no reply to `expect` ([`Error::UnexpectedReply`]), or the reply
/// grew past [`MAX_REPLY_BYTES`].
pub(crate) async fn fill_reply<R: AsyncRead + Unpin>(
    reader: &mut R,
    input: &mut BytesMut,
    expect: Expect,
) -> Result<usize, Error> {
    loop {
        match expect.decode(input) {
            Decoded::Reply { len, .. } => return Ok(len),
            Decoded::Unexpected { len, .. } if expect == Expect::Line => return Ok(len),
            Decoded::Unexpected { line, .. } => return Err(unexpected(line)),
            Decoded::Incomplete => {}
        }
        // `input` holds only the start of this reply: decoding starts at its front.
        if input.len() >= MAX_REPLY_BYTES {
            return Err(Error::UnexpectedReply("reply too long".into()));
        }
        input.reserve(READ_CHUNK);
        if reader.read_buf(input).await? == 0 {
            return Err(if input.is_empty() {
                Error::Closed
            } else {
                Error::UnexpectedReply("reply cut off".into())
            });
        }
    }
}

/// The reply of `len` bytes at the front of `input`, which [`fill_reply`] found there.
pub(crate) fn received(input: &[u8], len: usize, expect: Expect) -> Received<'_> {
    let wire = &input[..len];
    let reply = match expect.decode(wire) {
        Decoded::Reply { reply, .. } => Some(reply),
        Decoded::Unexpected { .. } | Decoded::Incomplete => None,
    };
    Received { reply, wire }
}

/// Reads the reply to a request that `asked` from the front of `input`, reading more from
/// `reader` into it as needed, and consumes it. Bytes after it (replies to later
/// pipelined requests) stay in `input`.
pub(crate) async fn read_reply<R: AsyncRead + Unpin>(
    reader: &mut R,
    input: &mut BytesMut,
    asked: Verb,
) -> Result<Response, Error> {
    let expect = Expect::Reply(asked);
    let len = fill_reply(reader, input, expect).await?;
    let outcome = match received(input, len, expect).reply {
        Some(reply) => response(reply),
        None => Err(Error::UnexpectedReply("no reply".into())),
    };
    input.advance(len);
    outcome
}

/// A decoded reply as this client's result: failures are errors.
fn response(reply: Reply<'_>) -> Result<Response, Error> {
    match reply {
        Reply::Ok => Ok(Response::Ok),
        Reply::Value(value) => Ok(Response::Value(value.map(Bytes::copy_from_slice))),
        Reply::Pong => Ok(Response::Pong),
        Reply::Report(lines) => Ok(Response::Report(Bytes::copy_from_slice(lines))),
        Reply::NotFound => Err(Error::NotFound),
        Reply::UnknownCommand => Err(Error::UnknownCommand),
        Reply::Error(reason) => Err(Error::Server(String::from_utf8_lossy(reason).into_owned())),
    }
}

fn unexpected(line: &[u8]) -> Error {
    Error::UnexpectedReply(String::from_utf8_lossy(line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_protocol::Request;

    async fn parse(wire: &[u8], request: Request<'_>) -> Result<Response, Error> {
        let mut reader = wire;
        read_reply(&mut reader, &mut BytesMut::new(), request.verb()).await
    }

    #[tokio::test]
    async fn reads_every_kind_of_reply() {
        let get = || Request::get("b", "k");
        assert_eq!(
            parse(b"OK\r\n", Request::create("b")).await,
            Ok(Response::Ok)
        );
        assert_eq!(
            parse(b"1\r\nOK\r\n", get()).await,
            Ok(Response::Value(Some("1".into())))
        );
        assert_eq!(parse(b"\r\nOK\r\n", get()).await, Ok(Response::Value(None)));
        assert_eq!(
            parse(b"OK\r\nOK\r\n", get()).await,
            Ok(Response::Value(Some("OK".into())))
        );
        assert_eq!(parse(b"NOT FOUND\r\n", get()).await, Err(Error::NotFound));
        assert_eq!(
            parse(b"UNKNOWN COMMAND\r\n", get()).await,
            Err(Error::UnknownCommand)
        );
        assert_eq!(
            parse(b"ERROR disk full\r\n", Request::put("b", "k", "v")).await,
            Err(Error::Server("disk full".into()))
        );
        assert_eq!(parse(b"PONG\r\n", Request::Ping).await, Ok(Response::Pong));
        assert_eq!(parse(b"", Request::Ping).await, Err(Error::Closed));
        assert!(matches!(
            parse(b"WHAT\r\n", Request::Ping).await,
            Err(Error::UnexpectedReply(_))
        ));
    }

    #[tokio::test]
    async fn a_reply_cut_off_by_the_close_is_unexpected() {
        assert_eq!(
            parse(b"1\r\nO", Request::get("b", "k")).await,
            Err(Error::UnexpectedReply("reply cut off".into()))
        );
    }

    #[tokio::test]
    async fn an_endless_reply_is_refused_not_buffered() {
        let endless = vec![b'x'; MAX_REPLY_BYTES + READ_CHUNK];
        assert_eq!(
            parse(&endless, Request::get("b", "k")).await,
            Err(Error::UnexpectedReply("reply too long".into()))
        );
    }

    #[tokio::test]
    async fn pipelined_replies_are_read_one_at_a_time() {
        let mut reader = &b"OK\r\nv\r\nOK\r\nPONG\r\n"[..];
        let mut input = BytesMut::new();
        for (asked, expected) in [
            (Verb::Put, Response::Ok),
            (Verb::Get, Response::Value(Some("v".into()))),
            (Verb::Ping, Response::Pong),
        ] {
            assert_eq!(
                read_reply(&mut reader, &mut input, asked).await,
                Ok(expected)
            );
        }
        assert!(input.is_empty());
    }
}
