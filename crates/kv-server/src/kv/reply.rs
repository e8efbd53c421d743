//! Replies: typed values, and the one place that turns them into bytes.

use bytes::{BufMut, Bytes, BytesMut};
use kv_store::StoreError;

/// Everything the KV protocol can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK`
    Ok,
    /// A `GET`: `value\r\nOK\r\n`, or `\r\nOK\r\n` for a missing key.
    Value(Option<Bytes>),
    /// A `GET` whose value (if any) the store has already appended to the output, copying
    /// it straight from its storage: only the `\r\nOK\r\n` that ends it is left to write.
    ValueWritten,
    /// `NOT FOUND`: the bucket does not exist.
    NotFound,
    /// `UNKNOWN COMMAND`: unknown verb, wrong number of words, empty line.
    UnknownCommand,
    /// `PONG`
    Pong,
    /// `ERROR <reason>`: the store failed; the write did not happen.
    Error(StoreError),
    /// No reply at all: the connection is closed without a word (a cross-protocol line,
    /// SPEC §4: an HTTP client gets nothing it could show to the page that sent it).
    Hangup,
}

impl Reply {
    /// Appends the reply's exact wire bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Reply::Ok => out.put_slice(b"OK\r\n"),
            Reply::Value(value) => {
                if let Some(value) = value {
                    out.put_slice(value);
                }
                out.put_slice(b"\r\nOK\r\n");
            }
            Reply::ValueWritten => out.put_slice(b"\r\nOK\r\n"),
            Reply::NotFound => out.put_slice(b"NOT FOUND\r\n"),
            Reply::UnknownCommand => out.put_slice(b"UNKNOWN COMMAND\r\n"),
            Reply::Pong => out.put_slice(b"PONG\r\n"),
            Reply::Error(e) => {
                out.put_slice(b"ERROR ");
                out.put_slice(e.message().as_bytes());
                out.put_slice(b"\r\n");
            }
            Reply::Hangup => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: Reply) -> Vec<u8> {
        let mut out = BytesMut::new();
        reply.encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn every_reply_has_the_contracts_exact_bytes() {
        assert_eq!(encoded(Reply::Ok), b"OK\r\n");
        assert_eq!(
            encoded(Reply::Value(Some(Bytes::from_static(b"1")))),
            b"1\r\nOK\r\n"
        );
        assert_eq!(encoded(Reply::Value(None)), b"\r\nOK\r\n");
        assert_eq!(encoded(Reply::ValueWritten), b"\r\nOK\r\n");
        assert_eq!(encoded(Reply::NotFound), b"NOT FOUND\r\n");
        assert_eq!(encoded(Reply::UnknownCommand), b"UNKNOWN COMMAND\r\n");
        assert_eq!(encoded(Reply::Pong), b"PONG\r\n");
        assert_eq!(
            encoded(Reply::Error(StoreError::new("disk full\nreally"))),
            b"ERROR disk full really\r\n"
        );
        assert_eq!(encoded(Reply::Hangup), b"");
    }
}
