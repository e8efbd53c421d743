//! A small async client for kv-server's KV protocol. Requests are encoded and replies
//! decoded by `kv-protocol`, the grammar the server itself parses and answers with;
//! [`Request`] is that crate's type.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kv_client::Error> {
//! use kv_client::Client;
//!
//! let mut client = Client::connect("127.0.0.1:4040").await?;
//! client.create("shopping").await?;
//! client.put("shopping", "milk", "1").await?;
//! assert_eq!(client.get("shopping", "milk").await?.as_deref(), Some(&b"1"[..]));
//! client.delete("shopping", "milk").await?;
//! assert_eq!(client.get("shopping", "milk").await?, None);
//! # Ok(()) }
//! ```
//!
//! Many requests can go out in one write, replies read back in order (pipelining):
//!
//! ```no_run
//! # async fn demo() -> Result<(), kv_client::Error> {
//! use kv_client::{Client, Request, Response};
//!
//! let mut client = Client::connect("127.0.0.1:4040").await?;
//! let replies = client
//!     .pipeline(&[
//!         Request::create("shopping"),
//!         Request::put("shopping", "eggs", "12"),
//!         Request::get("shopping", "eggs"),
//!     ])
//!     .await?;
//! assert_eq!(replies[2], Ok(Response::Value(Some("12".into()))));
//! # Ok(()) }
//! ```

mod error;
mod response;
pub mod tls;

pub use error::Error;
pub use kv_protocol::Request;
pub use response::Response;
pub use tls::TlsOptions;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

/// The connection under a [`Client`]: plain TCP or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A connection to a kv-server.
pub struct Client {
    stream: Box<dyn Stream>,
    /// Encoded requests waiting to be written (reused between calls).
    out: Vec<u8>,
    /// Bytes read and not yet decoded: the start of the next reply (reused).
    input: BytesMut,
}

impl Client {
    /// Connects to `addr` (e.g. `"127.0.0.1:4040"`).
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self::over(Box::new(stream)))
    }

    /// Connects to `addr` over TLS (a server started with `--tls-cert-file`), checking its
    /// certificate as `tls` says. Errors: as [`Client::connect`], or the handshake failed
    /// (an untrusted certificate, a refused client certificate, a TLS file unusable).
    pub async fn connect_tls(addr: impl ToSocketAddrs, tls: &TlsOptions) -> Result<Self, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self::over(Box::new(tls::handshake(stream, tls).await?)))
    }

    fn over(stream: Box<dyn Stream>) -> Self {
        Self {
            stream,
            out: Vec::new(),
            input: BytesMut::new(),
        }
    }

    /// Creates a bucket (succeeds if it exists).
    pub async fn create(&mut self, bucket: impl AsRef<[u8]>) -> Result<(), Error> {
        self.call(Request::create(&bucket)).await.map(drop)
    }

    /// Sets `key` to `value` in `bucket`.
    pub async fn put(
        &mut self,
        bucket: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.call(Request::put(&bucket, &key, &value))
            .await
            .map(drop)
    }

    /// The value of `key` in `bucket`, `None` if the key is missing.
    pub async fn get(
        &mut self,
        bucket: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>, Error> {
        match self.call(Request::get(&bucket, &key)).await? {
            Response::Value(value) => Ok(value),
            other => Err(Error::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// Removes `key` from `bucket` (succeeds if it was missing).
    pub async fn delete(
        &mut self,
        bucket: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.call(Request::delete(&bucket, &key)).await.map(drop)
    }

    /// Checks the server answers.
    pub async fn ping(&mut self) -> Result<(), Error> {
        self.call(Request::Ping).await.map(drop)
    }

    /// The server's `INFO` report (every section, or just `section`), as its lines
    /// (`# Section`, `name:value`, each ending `\r\n`).
    pub async fn info(&mut self, section: Option<&str>) -> Result<Bytes, Error> {
        let section = section.map(str::as_bytes);
        match self.call(Request::Info { section }).await? {
            Response::Report(lines) => Ok(lines),
            other => Err(Error::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// Sends one request and reads its reply.
    pub async fn call(&mut self, request: Request<'_>) -> Result<Response, Error> {
        let mut replies = self.pipeline(std::slice::from_ref(&request)).await?;
        replies.pop().unwrap_or(Err(Error::Closed))
    }

    /// Sends every request in one write, then reads the replies in order. The outer
    /// error is a connection failure, or a word the protocol cannot carry (then nothing
    /// was sent); each inner result is that request's reply.
    pub async fn pipeline(
        &mut self,
        requests: &[Request<'_>],
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        self.out.clear();
        for request in requests {
            request.validate()?;
            request.encode(&mut self.out);
        }
        self.stream.write_all(&self.out).await?;
        // Over TLS, the tail of the requests may wait in rustls' buffer until flushed.
        self.stream.flush().await?;
        let mut replies = Vec::with_capacity(requests.len());
        for request in requests {
            let asked = request.verb();
            match response::read_reply(&mut self.stream, &mut self.input, asked).await {
                Err(e) if e.is_connection_error() => return Err(e),
                reply => replies.push(reply),
            }
        }
        Ok(replies)
    }

    /// Says `QUIT` and reads its `OK`; the server closes the connection after it.
    pub async fn quit(mut self) -> Result<(), Error> {
        self.call(Request::Quit).await.map(drop)
    }
}
