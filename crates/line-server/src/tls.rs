//! TLS for every connection of a server: the certificate, optional client certificates,
//! and the handshake, which runs on the connection's own task with a deadline (never in the
//! acceptor, so a client that stalls its handshake delays no one else).
//!
//! rustls on the `ring` provider, TLS 1.2 and 1.3 (rustls' safe defaults); PEM files are
//! read with `rustls-pki-types`. Once the handshake is done, the connection loop runs over
//! the TLS stream exactly as over TCP: same framing, limits and pipelining.

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::connection::transport::{SocketReader, Transport};
use crate::connection::MAX_READ_SIZE;
use crate::stats::ServerStats;
use crate::throttle::Throttle;

/// Handshake failures are logged at most once a minute: any client can cause one.
static FAILURES_LOGGED: Throttle = Throttle::new(Duration::from_secs(60));

/// Counts a failed handshake and says why, at most once a minute (an operator needs the
/// reason — an untrusted CA, a missing or outdated client certificate, a plaintext client —
/// and a flood of bad clients must not flood the log); the rest at debug level.
pub(crate) fn handshake_failed(stats: &ServerStats, peer: SocketAddr, e: &io::Error) {
    stats.tls_handshake_failed();
    match FAILURES_LOGGED.allow() {
        Some(held_back) => info!(
            peer = %peer,
            "TLS handshake failed: {e} ({held_back} other failure(s) not logged in the last minute)"
        ),
        None => debug!(peer = %peer, "TLS handshake failed: {e}"),
    }
}

/// TLS settings of a server ([`crate::ServerConfig::tls`]): cheap to clone (the rustls
/// configuration is shared).
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    client_certificates: bool,
    handshake_timeout: Duration,
}

impl Tls {
    /// How long a client has to finish its handshake before it is closed (SPEC: 5 s).
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

    /// Reads the server's certificate chain and private key (PEM: the chain leaf first,
    /// the key in PKCS#8, PKCS#1 or SEC1 form) and, with `client_ca`, the CA certificates
    /// (PEM) a client's certificate must chain to: then a client without one is refused
    /// during the handshake.
    ///
    /// Errors: a file that cannot be read, holds no usable item, or a key that does not
    /// match the certificate; the message names the file.
    pub fn from_pem_files(
        cert_chain: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let chain = read_certificates(cert_chain)?;
        let key_file = key;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
            _ if is_encrypted_key(key) => TlsError::file(
                key,
                "the private key is encrypted (has a passphrase), which kv-server cannot use; \
                 decrypt it with `openssl pkey -in KEY -out PLAIN_KEY` and keep that file private",
            ),
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::file(
                key,
                "no private key (PKCS#8, PKCS#1 or SEC1; unencrypted) in the file",
            ),
            e => TlsError::file(key, e),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certificates(ca)? {
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::file(ca, format!("not a CA certificate: {e}")))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| TlsError::file(ca, e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|error| TlsError::Refused {
                cert_chain: cert_chain.to_owned(),
                key: key_file.to_owned(),
                error,
            })?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            client_certificates: client_ca.is_some(),
            handshake_timeout: Self::HANDSHAKE_TIMEOUT,
        })
    }

    /// TLS with a rustls configuration the embedder built. `client_certificates` says
    /// whether `config` refuses clients without a valid certificate (protected mode counts
    /// on it).
    pub fn from_config(config: Arc<ServerConfig>, client_certificates: bool) -> Self {
        Self {
            acceptor: TlsAcceptor::from(config),
            client_certificates,
            handshake_timeout: Self::HANDSHAKE_TIMEOUT,
        }
    }

    /// The same, with another handshake deadline (tests; slow links).
    pub fn with_handshake_timeout(self, handshake_timeout: Duration) -> Self {
        Self {
            handshake_timeout,
            ..self
        }
    }

    /// Whether every client must present a certificate signed by the configured CA.
    pub fn requires_client_certificates(&self) -> bool {
        self.client_certificates
    }

    /// Runs the server side of the handshake on `stream`, within the handshake deadline.
    /// Errors: the client's handshake failed or was refused, or the deadline passed
    /// (`TimedOut`).
    pub(crate) async fn handshake(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(stream)).await {
            Ok(done) => done,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake not finished in time",
            )),
        }
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("client_certificates", &self.client_certificates)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Two settings are equal when they share one rustls configuration.
impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(self.acceptor.config(), other.acceptor.config())
            && self.client_certificates == other.client_certificates
            && self.handshake_timeout == other.handshake_timeout
    }
}

impl Eq for Tls {}

/// Why TLS settings could not be made.
#[derive(Debug)]
pub enum TlsError {
    /// A PEM file could not be read or used.
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key together (e.g. the key is not the
    /// certificate's).
    Refused {
        /// The certificate chain's file.
        cert_chain: PathBuf,
        /// The key's file.
        key: PathBuf,
        /// rustls' reason.
        error: rustls::Error,
    },
    /// rustls refused its own settings (no TLS version the provider supports).
    Config(rustls::Error),
}

impl TlsError {
    fn file(path: &Path, reason: impl fmt::Display) -> Self {
        TlsError::File {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File { path, reason } => write!(f, "{}: {reason}", path.display()),
            TlsError::Refused {
                cert_chain,
                key,
                error,
            } => write!(
                f,
                "{} and {}: certificate and key refused: {error}",
                cert_chain.display(),
                key.display()
            ),
            TlsError::Config(e) => write!(f, "TLS settings refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Whether the PEM file at `path` holds a passphrase-protected key: PKCS#8's
/// `ENCRYPTED PRIVATE KEY` (RFC 5958), or OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` header
/// (RFC 1421). rustls reads neither, and skips the first as an unknown item, so without
/// this the error would say the file holds no key at all.
fn is_encrypted_key(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|pem| {
        let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
        has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
    })
}

/// Every certificate in a PEM file; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::file(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::file(path, "no certificate in the file"));
    }
    Ok(certs)
}

impl Transport for TlsStream<TcpStream> {
    /// rustls answers some records by itself (a TLS 1.2 renegotiation attempt with a
    /// `no_renegotiation` alert, a TLS 1.3 key update with one of its own) and keeps the
    /// answer until written: flushed here, or a client that waits for it hangs for ever.
    fn poll_send_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.get_ref().1.wants_write() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(self).poll_flush(cx)
    }

    /// Ready when rustls holds decrypted bytes (a record brought more than the last read
    /// took) or the peer closed; otherwise when the socket is.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (socket, session) = self.get_mut();
        let buffered = session
            .process_new_packets()
            // An error is for the read to report.
            .map_or(true, |state| {
                state.plaintext_bytes_to_read() > 0 || state.peer_has_closed()
            });
        if buffered {
            return Poll::Ready(Ok(()));
        }
        socket.poll_read_ready(cx)
    }

    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        let (socket, session) = self.get_mut();
        let mut ended = false;
        // rustls takes at most 4 KiB per `read_tls`: a larger record needs several.
        while session.wants_read() {
            match session.read_tls(&mut SocketReader(socket)) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
            session
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        let start = buf.len();
        buf.resize(start + MAX_READ_SIZE, 0);
        let read = session.reader().read(&mut buf[start..]);
        buf.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ended.then_some(0)),
            Err(e) => Err(e),
        }
    }
}
