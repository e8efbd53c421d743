//! TLS for every connection of a server: the certificate, optional client certificates,
//! and the handshake, which runs on the connection's own task with a deadline (never in the
//! acceptor, so a client that stalls its handshake delays no one else).
//!
//! rustls on the `ring` provider, TLS 1.2 and 1.3 (rustls' safe defaults); PEM files are
//! read with `rustls-pki-types`. Once the handshake is done, the connection loop runs over
//! the TLS stream exactly as over TCP (`connection/transport.rs`): same framing, limits
//! and pipelining.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

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
