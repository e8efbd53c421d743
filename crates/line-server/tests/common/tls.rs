//! TLS for tests: certificates from test-pki, a server configuration using them, and a
//! rustls client trusting their CA.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use line_server::{ServerConfig, Tls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use test_pki::TestPki;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::PATIENCE;

/// Fresh test certificates.
pub fn pki() -> TestPki {
    TestPki::new().expect("test certificates")
}

/// TLS with the test certificates; with `client_ca`, clients need one the CA signed.
pub fn tls_config(pki: &TestPki, client_ca: bool) -> ServerConfig {
    let ca = client_ca.then(|| pki.ca_cert());
    let tls = Tls::from_pem_files(&pki.server_cert(), &pki.server_key(), ca.as_deref())
        .expect("TLS settings from the test certificates");
    ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    }
}

/// A rustls client trusting the test CA, presenting `identity` (certificate, key) if any.
pub async fn connect_tls(
    addr: SocketAddr,
    pki: &TestPki,
    identity: Option<(&Path, &Path)>,
) -> io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.ca_cert()).map_err(io::Error::other)?)
        .map_err(io::Error::other)?;
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = vec![CertificateDer::from_pem_file(cert).map_err(io::Error::other)?];
            let key = PrivateKeyDer::from_pem_file(key).map_err(io::Error::other)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(io::Error::other)?
        }
    };
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    let connect = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    timeout(PATIENCE, connect).await?
}
