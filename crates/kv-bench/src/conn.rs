//! The generator's connections: plain TCP or TLS over it (`--tls`), opened the same way by
//! the load run, its preload and idle mode.
//!
//! The TLS handshake happens in [`Connector::connect`], before a load run's window opens,
//! so a run measures record encryption, not handshakes.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use kv_client::TlsOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// Room reserved per read.
pub const READ_CHUNK: usize = 16 * 1024;

/// How every connection of a run is opened: one TLS configuration shared by all of them
/// (so its certificates are read once), or none; and the password to `AUTH` with, if any.
#[derive(Clone)]
pub struct Connector {
    transport: Transport,
    /// The `AUTH password` line sent first on every connection (`--password`).
    auth: Option<Vec<u8>>,
}

#[derive(Clone)]
enum Transport {
    /// Plain TCP.
    Plain,
    /// TLS with this configuration, checking the server's certificate for this name.
    Tls {
        /// kv-client's connector: the CA to trust and the client certificate, if any.
        connector: TlsConnector,
        /// What the server's certificate must be valid for (`--tls-server-name`).
        server_name: ServerName<'static>,
    },
}

impl Connector {
    /// The connector for `tls` (plain TCP when `None`), authenticating with `password`.
    /// Errors: a certificate or key file that cannot be read or used, a server name that
    /// is neither a DNS name nor an IP address, or a password that is not one word; the
    /// message says which.
    pub fn new(tls: Option<&TlsOptions>, password: Option<&str>) -> Result<Self, String> {
        let auth = password
            .map(|password| {
                kv_protocol::check_word(password.as_bytes())
                    .map(|()| format!("AUTH {password}\r\n").into_bytes())
                    .map_err(|e| format!("--password: {e}"))
            })
            .transpose()?;
        let Some(tls) = tls else {
            return Ok(Self {
                transport: Transport::Plain,
                auth,
            });
        };
        let connector = tls.connector().map_err(|e| format!("--tls: {e}"))?;
        let server_name = tls
            .server_name()
            .map_err(|e| format!("--tls-server-name {}: {e}", tls.server_name))?;
        Ok(Self {
            transport: Transport::Tls {
                connector,
                server_name,
            },
            auth,
        })
    }

    /// Runs `work` on one connection to `addr` (made within `limit`), on a runtime of its
    /// own: a step before a measured run (a preload, a bucket created). Errors say what
    /// failed, for the user.
    pub fn with_one_connection<T, F>(
        &self,
        addr: SocketAddr,
        limit: Duration,
        work: impl FnOnce(Conn) -> F,
    ) -> Result<T, String>
    where
        F: std::future::Future<Output = Result<T, String>>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        runtime.block_on(async move {
            let conn = self
                .connect(addr, limit)
                .await
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            work(conn).await
        })
    }

    /// Connects (with TCP_NODELAY: requests must not wait for Nagle), runs the TLS
    /// handshake and `AUTH`, if any, all within `limit`.
    pub async fn connect(&self, addr: SocketAddr, limit: Duration) -> io::Result<Conn> {
        let work = async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut conn = match &self.transport {
                Transport::Plain => Conn::Plain(stream),
                Transport::Tls {
                    connector,
                    server_name,
                } => {
                    let tls = connector.connect(server_name.clone(), stream).await?;
                    Conn::Tls(Box::new(tls))
                }
            };
            if let Some(line) = &self.auth {
                authenticate(&mut conn, line).await?;
            }
            Ok(conn)
        };
        timeout(limit, work)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }
}

/// Sends `AUTH password` and requires `OK`.
async fn authenticate(conn: &mut Conn, line: &[u8]) -> io::Result<()> {
    conn.write_all(line).await?;
    let mut reply = Vec::new();
    while !reply.contains(&b'\n') {
        if conn.read_some(&mut reply).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    if reply != b"OK\r\n" {
        let said = String::from_utf8_lossy(&reply);
        let message = format!("AUTH was answered {:?}", said.trim_end());
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, message));
    }
    Ok(())
}

/// One open connection.
pub enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP; boxed because a rustls connection is large next to a socket.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// Writes all of `bytes`. For TLS, also flushes: rustls may hold encrypted records a
    /// full socket would not take, and a request left there would never be answered.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(stream) => stream.write_all(bytes).await,
            Self::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
        }
    }

    /// Reads what is available into `input` (growing it by up to [`READ_CHUNK`]); `Ok(0)`
    /// is the end of the stream.
    pub async fn read_some(&mut self, input: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => read_some_tcp(stream, input).await,
            Self::Tls(stream) => {
                input.reserve(READ_CHUNK);
                stream.read_buf(input).await
            }
        }
    }
}

/// [`Conn::read_some`] for plain TCP.
///
/// A read that did not fill the room it was given drained the socket, so readiness is
/// cleared right away (a `try_io` that reports `WouldBlock` without a syscall): the next
/// call then parks on the reactor instead of first making a `recvfrom` that can only fail.
/// Clearing is safe: tokio only clears readiness it has already seen, so bytes that
/// arrive meanwhile raise a fresh event. TLS cannot do this: rustls may hold decrypted
/// bytes the socket no longer shows.
async fn read_some_tcp(stream: &TcpStream, input: &mut Vec<u8>) -> io::Result<usize> {
    input.reserve(READ_CHUNK);
    let room = input.capacity() - input.len();
    loop {
        match stream.try_read_buf(input) {
            Ok(n) => {
                if n > 0 && n < room {
                    let _ = stream.try_io(Interest::READABLE, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                }
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) => return Err(e),
        }
    }
}
