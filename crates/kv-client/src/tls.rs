//! TLS for the client: trust a CA (the server's), optionally present a client certificate.
//! rustls on the `ring` provider, as the server.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots);
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
                    .map_err(io::Error::other)?
            }
        };
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// The server name to check the certificate against.
    pub fn server_name(&self) -> io::Result<ServerName<'static>> {
        ServerName::try_from(self.server_name.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }
}

/// Runs the client side of the handshake on a connected socket.
pub(crate) async fn handshake(
    stream: TcpStream,
    options: &TlsOptions,
) -> io::Result<TlsStream<TcpStream>> {
    options
        .connector()?
        .connect(options.server_name()?, stream)
        .await
}

fn file(path: &std::path::Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {e}", path.display()),
    )
}
