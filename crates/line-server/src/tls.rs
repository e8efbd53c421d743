//! TLS for every connection of a server: the certificate, optional client certificates,
//! and the handshake, which runs on the connection's own task with a deadline (never in the
//! acceptor, so a client that stalls its handshake delays no one else).
//!
//! rustls on the `ring` provider, TLS 1.2 and 1.3 (rustls' safe defaults); PEM files are
//! read with `rustls-pki-types`. Once the handshake is done, the connection loop runs over
//! the TLS stream exactly as over TCP (`connection/transport.rs`): same framing, limits
//! and pipelining.
//!
//! The rustls configuration sits in an `ArcSwap`, so that a running server can be given a
//! new certificate ([`Tls::replace`]) without a lock on the handshake path: a new
//! connection loads the current configuration once (no lock, no shared write beyond the
//! reference count every handshake already paid), and rustls keeps the one a connection
//! started with for its whole life.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
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

/// TLS settings of a server ([`crate::ServerConfig::tls`]): cheap to clone, and every clone
/// shares one replaceable rustls configuration, so the embedder keeps a clone to hand the
/// running server a new certificate with ([`Tls::replace`]).
#[derive(Clone)]
pub struct Tls {
    /// What the next handshake uses; connections hold their own `Arc` of what they began
    /// with, so replacing it leaves them untouched.
    config: Arc<ArcSwap<ServerConfig>>,
    /// Whether every configuration this holds refuses clients without a certificate.
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
        let config = read_config(cert_chain, key, client_ca)?;
        Ok(Self::from_config(Arc::new(config), client_ca.is_some()))
    }

    /// TLS with a rustls configuration the embedder built. `client_certificates` says
    /// whether `config` refuses clients without a valid certificate (protected mode counts
    /// on it).
    pub fn from_config(config: Arc<ServerConfig>, client_certificates: bool) -> Self {
        Self {
            config: Arc::new(ArcSwap::new(config)),
            client_certificates,
            handshake_timeout: Self::HANDSHAKE_TIMEOUT,
        }
    }

    /// Makes every handshake from now on, by this value and all its clones (the server
    /// serving with it included), use `fresh`'s rustls configuration: its certificate
    /// chain, key and client CAs. Handshakes under way and connections already open keep
    /// the configuration they began with. The swap is atomic: a handshake sees the old
    /// configuration or the new one, never a mix. `fresh`'s handshake deadline is not
    /// taken (a server's deadline is its own).
    ///
    /// Errors: [`TlsError::ClientCertificatesChanged`] when `fresh` asks for client
    /// certificates and `self` does not, or the other way round (protected mode was decided
    /// on it when the server started); nothing is replaced then.
    pub fn replace(&self, fresh: &Tls) -> Result<(), TlsError> {
        if fresh.client_certificates != self.client_certificates {
            return Err(TlsError::ClientCertificatesChanged {
                required_before: self.client_certificates,
            });
        }
        self.config.store(fresh.config.load_full());
        Ok(())
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

    /// The handshake of a client accepted now: with the configuration current at this
    /// moment, whatever [`Tls::replace`] does while it runs.
    pub(crate) fn handshake(&self) -> Handshake {
        Handshake {
            acceptor: TlsAcceptor::from(self.config.load_full()),
            timeout: self.handshake_timeout,
        }
    }
}

/// The server side of one client's handshake, with the configuration current when the
/// client was accepted.
pub(crate) struct Handshake {
    acceptor: TlsAcceptor,
    timeout: Duration,
}

impl Handshake {
    /// Runs the handshake on `stream` within its deadline. Errors: the client's handshake
    /// failed or was refused, or the deadline passed (`TimedOut`).
    pub(crate) async fn run(self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        match tokio::time::timeout(self.timeout, self.acceptor.accept(stream)).await {
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

/// Two settings are equal when they share one replaceable rustls configuration (one is a
/// clone of the other).
impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
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
    /// [`Tls::replace`] was given settings that ask for client certificates where the
    /// server's did not, or the other way round.
    ClientCertificatesChanged {
        /// Whether the server's settings required them.
        required_before: bool,
    },
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
            TlsError::ClientCertificatesChanged { required_before } => {
                let (before, now) = match required_before {
                    true => ("required", "do not"),
                    false => ("did not require", "do"),
                };
                write!(
                    f,
                    "the server {before} client certificates and the new settings {now}; \
                     that takes a restart"
                )
            }
        }
    }
}

impl std::error::Error for TlsError {}

/// The rustls configuration of [`Tls::from_pem_files`].
fn read_config(
    cert_chain: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let chain = read_certificates(cert_chain)?;
    let private_key = read_key(key)?;
    // rustls' process-default provider, as rustls asks of libraries: the one this crate's
    // features compile in (ring), unless the embedding application installed another; no
    // provider named here, so rustls deprecating one cannot break a build that denies
    // warnings. TLS 1.2 and 1.3, rustls' safe defaults.
    let builder = ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca)?),
    };
    builder
        .with_single_cert(chain, private_key)
        .map_err(|error| TlsError::Refused {
            cert_chain: cert_chain.to_owned(),
            key: key.to_owned(),
            error,
        })
}

/// The private key in the PEM file at `path`, with a reason an operator can act on when
/// there is none rustls can use.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        _ if is_encrypted_key(path) => TlsError::file(
            path,
            "the private key is encrypted (has a passphrase), which kv-server cannot use; \
             decrypt it with `openssl pkey -in KEY -out PLAIN_KEY` and keep that file private",
        ),
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::file(
            path,
            "no private key (PKCS#8, PKCS#1 or SEC1; unencrypted) in the file",
        ),
        e => TlsError::file(path, e),
    })
}

/// Refuses, in the handshake, clients without a certificate signed by a CA in the PEM file
/// at `ca`.
fn client_verifier(
    ca: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::file(ca, format!("not a CA certificate: {e}")))?;
    }
    WebPkiClientVerifier::builder(roots.into())
        .build()
        .map_err(|e| TlsError::file(ca, e))
}

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
