//! TLS for the client: trust a CA (the server's), optionally present a client certificate.
//!
//! The configuration is built with rustls' process-default crypto provider
//! (`ClientConfig::builder`), as rustls asks of libraries: an application picks the
//! provider once (`CryptoProvider::install_default`, e.g. aws-lc-rs for post-quantum key
//! exchange) and every library follows it. With no provider installed, rustls takes the one
//! its crate features name: *ring*, which this crate enables, as the server uses. This
//! calls no provider by name, so rustls deprecating one (0.23.48 deprecates
//! `crypto::ring::default_provider`) cannot break a build that denies warnings. rustls
//! panics only if two providers are compiled in and the application installed neither.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// How to reach a server over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates (PEM) the server's certificate must chain to.
    pub ca_cert: PathBuf,
    /// The name the server's certificate must be valid for: a DNS name or an IP address.
    pub server_name: String,
    /// A client certificate chain and its key (PEM), for a server started with
    /// `--tls-ca-cert-file`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl TlsOptions {
    /// A connector for these options, to open many connections with one configuration
    /// (kv-bench does). Errors: a file that cannot be read or used (the message names it).
    pub fn connector(&self) -> io::Result<TlsConnector> {
        let mut roots = RootCertStore::empty();
        for cert in
            CertificateDer::pem_file_iter(&self.ca_cert).map_err(|e| file(&self.ca_cert, e))?
        {
            roots
                .add(cert.map_err(|e| file(&self.ca_cert, e))?)
                .map_err(|e| file(&self.ca_cert, e))?;
        }
        if roots.is_empty() {
            return Err(file(&self.ca_cert, "no certificate in it"));
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| file(cert, e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| file(cert, e))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file(key, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| file(cert, e))?
            }
        };
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// The server name to check the certificate against.
    pub fn server_name(&self) -> io::Result<ServerName<'static>> {
        ServerName::try_from(self.server_name.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    /// What a person should know about `error`, a failure of a connection made with these
    /// options, if TLS caused it: which certificate, and why. `None` for an error TLS did
    /// not cause. In TLS 1.3 a server refuses a client certificate only after the client
    /// has finished its handshake, so this applies to errors of the first reads too.
    pub fn explain(&self, error: &io::Error) -> Option<String> {
        let ca = self.ca_cert.display();
        let name = &self.server_name;
        if let Some(e) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Some(match e {
                rustls::Error::InvalidCertificate(cert) => match cert {
                    CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                        "the server's certificate is not signed by a CA in {ca} \
                         (is --cacert the CA that signed the server's certificate?)"
                    ),
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. } => format!(
                        "the server's certificate is not valid for the name {name} \
                         (connect by a name the certificate lists, or give it with --sni)"
                    ),
                    CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                        "the server's certificate has expired".into()
                    }
                    CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                        "the server's certificate is not valid yet (check the clocks)".into()
                    }
                    other => format!("the server's certificate was refused: {other:?}"),
                },
                rustls::Error::AlertReceived(alert) => match alert {
                    AlertDescription::CertificateRequired => {
                        "the server requires a client certificate (give --cert and --key)".into()
                    }
                    AlertDescription::UnknownCA
                    | AlertDescription::BadCertificate
                    | AlertDescription::CertificateUnknown => match &self.identity {
                        Some((cert, _)) => format!(
                            "the server refused the client certificate {}: it is not signed \
                             by the CA the server trusts (--tls-ca-cert-file)",
                            cert.display()
                        ),
                        None => "the server refused the connection's certificate".into(),
                    },
                    other => format!("the server ended the TLS handshake: {other:?}"),
                },
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                    "the server does not speak TLS on this port (drop --tls?)".into()
                }
                other => format!("TLS failed: {other}"),
            });
        }
        (error.kind() == io::ErrorKind::UnexpectedEof).then(|| {
            "the server closed the connection during the TLS handshake (is this its TLS port? \
             does it require a client certificate?)"
                .into()
        })
    }
}

fn file(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {e}", path.display()),
    )
}
