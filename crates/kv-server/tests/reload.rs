//! SIGHUP (SPEC §15, docs/SYSTEMD.md "Reloading"): never stops the server; re-reads the TLS
//! files and the password file, so that new connections get what was read while open ones
//! go on untouched; a file that cannot be used leaves the old material in use, with an
//! error logged. The machinery's swap is tested in-process in line-server's `tests/tls.rs`
//! and `auth.rs`.

pub mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::disk::{arg, temp_dir};
use common::openssl::{file_serial, served_serial, Session};
use common::{ask, TestServer, PATIENCE};
use tempfile::TempDir;
use test_pki::TestPki;

fn pki() -> TestPki {
    TestPki::new().expect("test certificates")
}

#[test]
fn sighup_keeps_the_server_serving_and_a_later_sigterm_exits_zero() {
    let mut server = TestServer::start(&[]);
    let mut client = server.connect();
    ask(&mut client, b"CREATE b\r\n", b"OK\r\n");
    for round in 1..=2 {
        server.signal(libc::SIGHUP);
        server.wait_for_log_count("reload (SIGHUP): nothing to reload", round, PATIENCE);
        assert!(server.is_running(), "SIGHUP must not end the process");
        ask(&mut client, b"PUT b k v\r\n", b"OK\r\n");
        ask(&mut server.connect(), b"GET b k\r\n", b"v\r\nOK\r\n");
    }
    server.stop();
}

/// The server's TLS files, in a directory of the test's own so they can be replaced.
struct TlsFiles {
    dir: TempDir,
}

impl TlsFiles {
    fn from(pki: &TestPki) -> TlsFiles {
        let files = TlsFiles {
            dir: temp_dir("tls-files"),
        };
        files.install(pki);
        files
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// Puts `pki`'s server certificate and key in place, as a certificate renewal does.
    fn install(&self, pki: &TestPki) {
        fs::copy(pki.server_cert(), self.cert()).expect("copy the certificate");
        fs::copy(pki.server_key(), self.key()).expect("copy the key");
    }

    fn start_server(&self) -> TestServer {
        let (cert, key) = (self.cert(), self.key());
        TestServer::start(&["--tls-cert-file", arg(&cert), "--tls-key-file", arg(&key)])
    }
}

fn pong(session: &mut Session) -> Option<String> {
    session.ask("PING\n", PATIENCE)
}

#[test]
fn a_renewed_certificate_is_what_new_clients_see_and_an_open_tls_connection_carries_on() {
    let (first, renewed) = (pki(), pki());
    let files = TlsFiles::from(&first);
    let server = files.start_server();
    let mut open = Session::connect(server.port(), &first.ca_cert());
    assert_eq!(pong(&mut open).as_deref(), Some("PONG"));
    assert_eq!(
        served_serial(server.port(), &first.ca_cert()),
        Some(file_serial(&first.server_cert()))
    );

    files.install(&renewed);
    server.signal(libc::SIGHUP);
    server.wait_for_log("reload (SIGHUP): TLS files", PATIENCE);

    assert_eq!(
        served_serial(server.port(), &renewed.ca_cert()),
        Some(file_serial(&renewed.server_cert())),
        "a new client gets the renewed certificate"
    );
    assert_eq!(
        served_serial(server.port(), &first.ca_cert()),
        None,
        "the first certificate is no longer presented"
    );
    assert_eq!(pong(&mut open).as_deref(), Some("PONG"), "the open session");
    server.stop();
}

#[test]
fn an_unusable_certificate_on_sighup_keeps_the_old_one_logs_an_error_and_serves_on() {
    let first = pki();
    let files = TlsFiles::from(&first);
    let server = files.start_server();
    let mut open = Session::connect(server.port(), &first.ca_cert());
    assert_eq!(pong(&mut open).as_deref(), Some("PONG"));

    fs::write(files.cert(), b"-----BEGIN CERTIFICATE-----\nbroken\n").expect("write");
    server.signal(libc::SIGHUP);
    let error = server.wait_for_log("reload (SIGHUP)", PATIENCE);
    assert_eq!(common::log_level(&error), Some("ERROR"), "{error}");
    assert!(
        error.contains(arg(&files.cert())),
        "names the file: {error}"
    );

    // A renewal caught half-way: the new certificate with the old key.
    fs::copy(pki().server_cert(), files.cert()).expect("copy a certificate");
    server.signal(libc::SIGHUP);
    server.wait_for_log("certificate and key refused", PATIENCE);

    fs::remove_file(files.key()).expect("remove the key");
    server.signal(libc::SIGHUP);
    server.wait_for_log_count("reload (SIGHUP)", 3, PATIENCE);
    assert_eq!(server.logs_at("ERROR").len(), 3, "{:?}", server.logs());

    assert_eq!(
        served_serial(server.port(), &first.ca_cert()),
        Some(file_serial(&first.server_cert())),
        "new clients still get the certificate read at start"
    );
    assert_eq!(pong(&mut open).as_deref(), Some("PONG"));
    server.stop();
}

fn write_password(path: &Path, password: &str) {
    fs::write(path, format!("{password}\n")).expect("write the password file");
}

#[test]
fn a_changed_password_file_is_needed_from_then_on_and_authenticated_clients_stay_in() {
    let dir = temp_dir("password");
    let file = dir.path().join("password");
    write_password(&file, "old-secret");
    let server = TestServer::start(&["--requirepass-file", arg(&file)]);
    let mut authenticated = server.connect();
    ask(&mut authenticated, b"AUTH old-secret\r\n", b"OK\r\n");
    let mut waiting = server.connect();
    ask(
        &mut waiting,
        b"PING\r\n",
        b"ERROR NOAUTH authentication required\r\n",
    );

    write_password(&file, "new-secret");
    server.signal(libc::SIGHUP);
    server.wait_for_log("reload (SIGHUP): password file", PATIENCE);

    let mut new = server.connect();
    ask(
        &mut new,
        b"AUTH old-secret\r\n",
        b"ERROR WRONGPASS invalid password\r\n",
    );
    ask(&mut new, b"AUTH new-secret\r\n", b"OK\r\n");
    ask(&mut new, b"PING\r\n", b"PONG\r\n");
    ask(&mut authenticated, b"PING\r\n", b"PONG\r\n");
    // A connection that had not authenticated needs the new password too: a rotated
    // password that leaked opens nothing any more.
    ask(
        &mut waiting,
        b"AUTH old-secret\r\n",
        b"ERROR WRONGPASS invalid password\r\n",
    );
    ask(&mut waiting, b"AUTH new-secret\r\n", b"OK\r\n");
    server.stop();
}

#[test]
fn a_missing_or_empty_password_file_on_sighup_keeps_the_password_in_use() {
    let dir = temp_dir("password");
    let file = dir.path().join("password");
    write_password(&file, "s3cret");
    let server = TestServer::start(&["--requirepass-file", arg(&file)]);
    fs::write(&file, b"").expect("empty the file");
    server.signal(libc::SIGHUP);
    let error = server.wait_for_log("the password is empty", PATIENCE);
    assert_eq!(common::log_level(&error), Some("ERROR"), "{error}");
    fs::remove_file(&file).expect("remove the file");
    server.signal(libc::SIGHUP);
    let error = server.wait_for_log("cannot read the password file", PATIENCE);
    assert_eq!(common::log_level(&error), Some("ERROR"), "{error}");
    let mut client = server.connect();
    ask(&mut client, b"AUTH s3cret\r\n", b"OK\r\n");
    assert!(
        !server.logs().iter().any(|l| l.contains("s3cret")),
        "the password is never logged"
    );
    server.stop();
}
