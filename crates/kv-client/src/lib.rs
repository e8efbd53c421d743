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

//!
//! A server started with a password and TLS, the set-up to expose one, with
//! [`ConnectOptions`] (the password is a [`Secret`], sent with `AUTH` on connecting):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kv_client::{Client, ConnectOptions, Secret, TlsOptions};
//!
//! let mut options = ConnectOptions::new("kv.example.com", 4040);
//! options.tls = Some(TlsOptions {
//!     ca_cert: "/etc/kv/ca.pem".into(),
//!     server_name: "kv.example.com".into(),
//!     identity: None,
//! });
//! options.password = Some(Secret::from_file("/etc/kv/password".as_ref())?);
//! let mut client = Client::connect_with(&options).await?;
//! client.ping().await?;
//! // After the server restarts, the same options connect and authenticate again:
//! client.reconnect().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Client`] (here): one connection; typed calls, [`Client::pipeline`], and
//!   [`Client::exchange`] for a line as a person typed it ([`Outgoing`]).
//! - `options`: [`ConnectOptions`] and the stages that can fail ([`ConnectError`]).
//! - `secret`: [`Secret`], a password `Debug` does not show.
//! - [`tls`]: [`TlsOptions`], rustls set-up, and failures explained in words.
//! - `split`: [`Sender`] and [`Receiver`], a connection's halves, for a stream of
//!   requests with many in flight.
//! - `response`: reading replies ([`Response`], [`Received`], [`Expect`]).
//! - `backup`: [`BackupStream`], the bytes `BACKUP` answers with.

mod backup;
mod error;
mod options;
mod outgoing;
mod response;
mod secret;
mod split;
mod subscription;
pub mod tls;

pub use backup::BackupStream;
pub use error::Error;
pub use kv_protocol::{Auth, Reply, Request};
pub use options::{ConnectError, ConnectOptions, DEFAULT_CONNECT_TIMEOUT};
pub use outgoing::Outgoing;
pub use response::{Expect, Received, Response};
pub use secret::Secret;
pub use split::{Receiver, Sender, FLUSH_BYTES};
pub use subscription::{Event, Subscription};
pub use tls::TlsOptions;

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{lookup_host, ToSocketAddrs};

/// The connection under a [`Client`]: plain TCP or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A connection to a kv-server.
pub struct Client {
    stream: Box<dyn Stream>,
    /// How it was opened: what [`Client::reconnect`] opens again.
    options: ConnectOptions,
    /// Encoded requests waiting to be written (reused between calls).
    out: Vec<u8>,
    /// Bytes read and not yet consumed: the start of the next reply (reused).
    input: BytesMut,
    /// Length of the reply [`Client::exchange`] last lent out, consumed at the next call.
    returned: usize,
}

impl Client {
    /// Connects to `addr` (e.g. `"127.0.0.1:4040"`): the first of its addresses that
    /// accepts. Errors: [`Error::Io`] when none does (the last one's error).
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, Error> {
        Self::connect_resolved(addr, None).await
    }

    /// Connects to `addr` over TLS (a server started with `--tls-cert-file`), checking its
    /// certificate as `tls` says. Errors: as [`Client::connect`], or the handshake failed
    /// (an untrusted certificate, a refused client certificate, a TLS file unusable).
    pub async fn connect_tls(addr: impl ToSocketAddrs, tls: &TlsOptions) -> Result<Self, Error> {
        Self::connect_resolved(addr, Some(tls)).await
    }

    /// Connects as `options` say: TCP, then TLS if asked, then `AUTH` if a password is
    /// given, all within `options.timeout`. Errors name the stage that failed.
    pub async fn connect_with(options: &ConnectOptions) -> Result<Self, ConnectError> {
        let setup = async {
            let stream = options.open().await?;
            let mut client = Self::over(stream, options.clone());
            if let Some(password) = &options.password {
                client.auth(password).await.map_err(ConnectError::Auth)?;
            }
            Ok(client)
        };
        tokio::time::timeout(options.timeout, setup)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectError::TimedOut {
                    address: options.address(),
                    after: options.timeout,
                })
            })
    }

    /// Opens the connection again, as it was first opened (address, TLS, `AUTH`): after
    /// the server restarted, or any connection error. Requests in flight on the old
    /// connection are lost. Errors: as [`Client::connect_with`]; the old connection is
    /// left as it was.
    pub async fn reconnect(&mut self) -> Result<(), ConnectError> {
        *self = Self::connect_with(&self.options).await?;
        Ok(())
    }

    /// How this client connects (its address, TLS and password).
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// Sends `AUTH` with `password`. Errors: [`Error::Server`] with the server's reason
    /// (`WRONGPASS invalid password`, `AUTH no password is set`); after the third wrong
    /// password the server closes the connection.
    pub async fn auth(&mut self, password: &Secret) -> Result<(), Error> {
        let auth = Outgoing::Auth(Auth::new(password.expose()));
        match self.exchange(&auth).await?.reply {
            Some(Reply::Ok) => Ok(()),
            Some(Reply::Error(reason)) => {
                Err(Error::Server(String::from_utf8_lossy(reason).into_owned()))
            }
            _ => Err(Error::UnexpectedReply("to AUTH".into())),
        }
    }

    async fn connect_resolved(
        addr: impl ToSocketAddrs,
        tls: Option<&TlsOptions>,
    ) -> Result<Self, Error> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
        for address in lookup_host(addr).await? {
            let mut options = ConnectOptions::new(address.ip().to_string(), address.port());
            options.tls = tls.cloned();
            match options.open().await {
                Ok(stream) => return Ok(Self::over(stream, options)),
                Err(ConnectError::Connect { source, .. }) => last = source,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Io(last))
    }

    fn over(stream: Box<dyn Stream>, options: ConnectOptions) -> Self {
        Self {
            stream,
            options,
            out: Vec::new(),
            input: BytesMut::new(),
            returned: 0,
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

    /// Sends one line — a request, `AUTH`, or a line as a person typed it — and reads its
    /// reply, exactly as it came (borrowed until the next call). Errors: the line cannot be
    /// sent (nothing was), or a connection error ([`Error::is_connection_error`]).
    pub async fn exchange(&mut self, outgoing: &Outgoing<'_>) -> Result<Received<'_>, Error> {
        self.input.advance(std::mem::take(&mut self.returned));
        self.out.clear();
        outgoing.encode(&mut self.out)?;
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        let expect = outgoing.expect();
        let len = response::fill_reply(&mut self.stream, &mut self.input, expect).await?;
        self.returned = len;
        Ok(response::received(&self.input, len, expect))
    }

    /// Splits the connection into a writing and a reading half, for a stream of requests
    /// with many in flight (a task each). The halves cannot reconnect.
    pub fn into_split(mut self) -> (Sender, Receiver) {
        self.input.advance(self.returned);
        let (read, write) = tokio::io::split(self.stream);
        (Sender::new(write), Receiver::new(read, self.input))
    }

    /// Sends every request in one write, then reads the replies in order. The outer
    /// error is a connection failure, or a word the protocol cannot carry (then nothing
    /// was sent); each inner result is that request's reply.
    pub async fn pipeline(
        &mut self,
        requests: &[Request<'_>],
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        self.input.advance(std::mem::take(&mut self.returned));
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
