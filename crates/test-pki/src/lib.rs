//! A throwaway public-key infrastructure for tests: a CA, a server certificate for
//! `localhost`, `127.0.0.1` and `::1`, and a client certificate, all signed by that CA and
//! written as PEM files into a temporary directory that is removed with the [`TestPki`].
//! Made fresh by every test that needs TLS, so no key is ever committed.
//!
//! Also a second, unrelated CA ([`TestPki::stranger`]) for certificates the server must
//! refuse.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// The PEM files of one test CA and what it signed.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Makes the CA, the server's and a client's certificates and keys.
    ///
    /// Errors: the temporary directory or a file cannot be written, or rcgen fails.
    pub fn new() -> io::Result<TestPki> {
        let dir = tempfile::tempdir()?;
        let (ca, ca_key) = authority("kv-server test CA").map_err(io::Error::other)?;
        write(dir.path(), "ca", &ca, &ca_key)?;
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let (server, server_key) = leaf(names, &ca, &ca_key).map_err(io::Error::other)?;
        write(dir.path(), "server", &server, &server_key)?;
        let (client, client_key) =
            leaf(vec!["client".into()], &ca, &ca_key).map_err(io::Error::other)?;
        write(dir.path(), "client", &client, &client_key)?;
        let (other, other_key) = authority("a stranger").map_err(io::Error::other)?;
        let (foreign, foreign_key) =
            leaf(vec!["client".into()], &other, &other_key).map_err(io::Error::other)?;
        write(dir.path(), "stranger", &foreign, &foreign_key)?;
        Ok(TestPki { dir })
    }

    /// The CA's certificate (PEM): what clients trust, and what a server checking client
    /// certificates is given.
    pub fn ca_cert(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The server's certificate (PEM), valid for `localhost`, `127.0.0.1` and `::1`.
    pub fn server_cert(&self) -> PathBuf {
        self.path("server.pem")
    }

    /// The server's private key (PEM, PKCS#8).
    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }

    /// A client certificate signed by the CA (PEM).
    pub fn client_cert(&self) -> PathBuf {
        self.path("client.pem")
    }

    /// The client certificate's key (PEM, PKCS#8).
    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }

    /// A client certificate and key signed by another CA, which the server must refuse.
    pub fn stranger(&self) -> (PathBuf, PathBuf) {
        (self.path("stranger.pem"), self.path("stranger.key"))
    }

    /// The directory holding the files, for tests that add their own (a broken PEM).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A self-signed CA certificate and its key.
fn authority(name: &str) -> Result<(Certificate, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    Ok((params.self_signed(&key)?, key))
}

/// A certificate for `names` (DNS names or IP addresses) signed by `ca`.
fn leaf(
    names: Vec<String>,
    ca: &Certificate,
    ca_key: &KeyPair,
) -> Result<(Certificate, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kv-server test");
    Ok((params.signed_by(&key, ca, ca_key)?, key))
}

fn write(dir: &Path, name: &str, cert: &Certificate, key: &KeyPair) -> io::Result<()> {
    fs::write(dir.join(format!("{name}.pem")), cert.pem())?;
    fs::write(dir.join(format!("{name}.key")), key.serialize_pem())
}
