//! Where and how to connect: address, TLS, password, and a deadline for it all; the errors
//! of connecting, by stage, so that a program can tell a person what to do.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::{Error, Secret, Stream, TlsOptions};

/// Default for [`ConnectOptions::timeout`]: as long as the server's own TLS handshake
/// deadline plus slack, so that a slow handshake fails on the server's side first.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything needed to open (and re-open) a connection: [`crate::Client::connect_with`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The server's host: a name (`localhost`) or an IP address (`127.0.0.1`, `::1`).
    pub host: String,
    /// The server's TCP port.
    pub port: u16,
    /// Speak TLS, checking the server's certificate as this says; `None`: plain TCP.
    pub tls: Option<TlsOptions>,
    /// Sent with `AUTH` as soon as the connection is open (a server started with
    /// `--requirepass`); `None`: no `AUTH`.
    pub password: Option<Secret>,
    /// Longest wait for the whole set-up: TCP connect, TLS handshake and `AUTH`.
    pub timeout: Duration,
}

impl ConnectOptions {
    /// Plain TCP to `host`:`port`, no password, [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: None,
            password: None,
            timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// `host:port`, with an IPv6 address in brackets (`[::1]:4040`), as people write it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Opens the connection these options describe, without `AUTH` (the caller sends it,
    /// so that its error is told apart).
    pub(crate) async fn open(&self) -> Result<Box<dyn Stream>, ConnectError> {
        let address = self.address();
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| ConnectError::Connect {
                address: address.clone(),
                source,
            })?;
        // Requests are small and a person or a pipeline waits on each write's reply.
        tcp.set_nodelay(true)
            .map_err(|source| ConnectError::Connect {
                address: address.clone(),
                source,
            })?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let connector = tls.connector().map_err(ConnectError::TlsSetup)?;
        let name = tls.server_name().map_err(ConnectError::TlsSetup)?;
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|source| ConnectError::Handshake { address, source })?;
        Ok(Box::new(stream))
    }
}

/// Why a connection could not be set up, by stage.
#[derive(Debug)]
pub enum ConnectError {
    /// The TCP connection failed: nothing listens there (`ConnectionRefused`), the name
    /// does not resolve, the network is unreachable...
    Connect {
        /// `host:port`
        address: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A TLS file (CA, client certificate or key) cannot be read or used; the message
    /// names it. Nothing was sent.
    TlsSetup(io::Error),
    /// The TLS handshake failed; [`TlsOptions::explain`] says why in words.
    Handshake {
        /// `host:port`
        address: String,
        /// What rustls or the OS said.
        source: io::Error,
    },
    /// The connection is open, and `AUTH` was refused (`ERROR WRONGPASS ...`,
    /// `ERROR AUTH no password is set`) or failed.
    Auth(Error),
    /// The set-up took longer than [`ConnectOptions::timeout`].
    TimedOut {
        /// `host:port`
        address: String,
        /// The deadline that passed.
        after: Duration,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Connect { address, source } => {
                write!(f, "cannot connect to {address}: {source}")
            }
            ConnectError::TlsSetup(e) => write!(f, "TLS set-up: {e}"),
            ConnectError::Handshake { address, source } => {
                write!(f, "TLS handshake with {address} failed: {source}")
            }
            ConnectError::Auth(e) => write!(f, "AUTH failed: {e}"),
            ConnectError::TimedOut { address, after } => {
                write!(f, "no connection to {address} within {after:?}")
            }
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Connect { source, .. } | ConnectError::Handshake { source, .. } => {
                Some(source)
            }
            ConnectError::TlsSetup(e) => Some(e),
            ConnectError::Auth(e) => Some(e),
            ConnectError::TimedOut { .. } => None,
        }
    }
}
