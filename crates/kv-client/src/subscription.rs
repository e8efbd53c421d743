//! [`Subscription`]: a connection subscribed to a bucket (PROTOCOL.md, "Subscriptions"),
//! read as a stream of typed [`Event`]s.

use bytes::{Buf, Bytes, BytesMut};
use kv_protocol::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Client, Error, Stream};

/// One change to the subscribed bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A `PUT`: `key` now holds `value`.
    Set {
        /// The key.
        key: Bytes,
        /// Its new value.
        value: Bytes,
    },
    /// A `DELETE` of `key` (also of a key that was missing).
    Deleted {
        /// The key.
        key: Bytes,
    },
}

/// A connection that receives a bucket's changes; dropping it closes the connection.
pub struct Subscription {
    stream: Box<dyn Stream>,
    input: BytesMut,
}

impl Client {
    /// `SUBSCRIBE bucket`, then `PING` as a barrier: once this returns, no change to the
    /// bucket that takes effect from then on is missed (SPEC §14). Errors:
    /// [`Error::NotFound`] for a missing bucket, [`Error::Server`] for an `ERROR` (e.g. not
    /// authenticated), connection errors.
    pub async fn subscribe(mut self, bucket: impl AsRef<[u8]>) -> Result<Subscription, Error> {
        let subscribe = Request::Subscribe {
            bucket: bucket.as_ref(),
        };
        subscribe.validate()?;
        self.input.advance(std::mem::take(&mut self.returned));
        self.out.clear();
        subscribe.encode(&mut self.out);
        Request::Ping.encode(&mut self.out);
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        let mut subscription = Subscription {
            stream: self.stream,
            input: self.input,
        };
        match subscription.line().await?.as_deref() {
            Some(b"PONG") => Ok(subscription),
            Some(b"NOT FOUND") => Err(Error::NotFound),
            Some(line) => Err(refusal(line)),
            None => Err(Error::Closed),
        }
    }
}

impl Subscription {
    /// The next event; `Ok(None)` once the server has closed the connection. Errors: the
    /// server ended the subscription with a reason ([`Error::Server`]: `subscription
    /// lost`, `too slow: ...`), a line that is no event, connection errors.
    pub async fn next(&mut self) -> Result<Option<Event>, Error> {
        let Some(line) = self.line().await? else {
            return Ok(None);
        };
        match kv_protocol::Event::decode(&line) {
            Some(kv_protocol::Event::Set { key, value }) => Ok(Some(Event::Set {
                key: Bytes::copy_from_slice(key),
                value: Bytes::copy_from_slice(value),
            })),
            Some(kv_protocol::Event::Deleted { key }) => Ok(Some(Event::Deleted {
                key: Bytes::copy_from_slice(key),
            })),
            None => Err(refusal(&line)),
        }
    }

    /// Says `UNSUBSCRIBE` and waits for its `OK` (events that came before it are dropped),
    /// then closes.
    pub async fn unsubscribe(mut self) -> Result<(), Error> {
        self.stream.write_all(b"UNSUBSCRIBE\r\n").await?;
        self.stream.flush().await?;
        while let Some(line) = self.line().await? {
            if line == b"OK"[..] {
                return Ok(());
            }
        }
        Err(Error::Closed)
    }

    /// The next line without its terminator; `None` at the end of the stream.
    async fn line(&mut self) -> Result<Option<BytesMut>, Error> {
        loop {
            if let Some(end) = self.input.iter().position(|b| *b == b'\n') {
                let mut line = self.input.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return Ok(Some(line));
            }
            self.input.reserve(4096);
            if self.stream.read_buf(&mut self.input).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// What a line that is no event or `PONG` says: `ERROR reason` → [`Error::Server`].
fn refusal(line: &[u8]) -> Error {
    let text = String::from_utf8_lossy(line).into_owned();
    match text.strip_prefix("ERROR ") {
        Some(reason) => Error::Server(reason.to_owned()),
        None => Error::UnexpectedReply(text),
    }
}
