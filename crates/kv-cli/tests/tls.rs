//! kv-cli over TLS (crates/test-pki's throwaway CA): the right CA and client certificate
//! work; each wrong one exits 2 saying which certificate and why.

pub mod common;

use std::path::Path;

use common::{assert_pong, code, kv_cli, run, stderr, stdout, Spec, TestServer};
use line_server::Tls;
use test_pki::TestPki;

fn tls_server(pki: &TestPki, client_ca: Option<&Path>) -> TestServer {
    let tls = Tls::from_pem_files(&pki.server_cert(), &pki.server_key(), client_ca)
        .expect("TLS settings");
    TestServer::with(Spec {
        tls: Some(tls),
        ..Spec::default()
    })
}

fn ping_over_tls(port: u16, ca: &Path, identity: Option<(&Path, &Path)>) -> std::process::Output {
    let mut command = kv_cli(port);
    command.arg("--tls").arg("--cacert").arg(ca);
    if let Some((cert, key)) = identity {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    command.arg("PING");
    run(command, b"")
}

#[test]
fn over_tls_with_the_servers_ca_ping_exits_0() {
    let pki = TestPki::new().expect("test certificates");
    let server = tls_server(&pki, None);
    let output = ping_over_tls(server.port, &pki.ca_cert(), None);
    assert_pong(&output);
    server.stop();
}

#[test]
fn a_ca_that_did_not_sign_the_servers_certificate_exits_2_naming_it() {
    let pki = TestPki::new().expect("test certificates");
    let other = TestPki::new().expect("another CA");
    let server = tls_server(&pki, None);
    let output = ping_over_tls(server.port, &other.ca_cert(), None);
    assert_eq!(code(&output), 2);
    let message = stderr(&output);
    assert!(message.contains("not signed by a CA in"), "{message}");
    assert!(
        message.contains(&other.ca_cert().display().to_string()),
        "{message}"
    );
    server.stop();
}

#[test]
fn a_server_asking_for_a_client_certificate_gets_one_and_refusals_are_explained() {
    let pki = TestPki::new().expect("test certificates");
    let server = tls_server(&pki, Some(&pki.ca_cert()));

    let without = ping_over_tls(server.port, &pki.ca_cert(), None);
    assert_eq!(code(&without), 2);
    assert!(
        stderr(&without).contains("client certificate"),
        "{}",
        stderr(&without)
    );

    let (cert, key) = pki.stranger();
    let stranger = ping_over_tls(server.port, &pki.ca_cert(), Some((&cert, &key)));
    assert_eq!(code(&stranger), 2);
    assert!(
        stderr(&stranger).contains("stranger.pem"),
        "{}",
        stderr(&stranger)
    );

    let (cert, key) = (pki.client_cert(), pki.client_key());
    let with = ping_over_tls(server.port, &pki.ca_cert(), Some((&cert, &key)));
    assert_eq!(
        (code(&with), stdout(&with)),
        (0, "PONG\n".into()),
        "{}",
        stderr(&with)
    );
    server.stop();
}

#[test]
fn plaintext_to_a_tls_port_exits_2_and_suggests_tls() {
    let pki = TestPki::new().expect("test certificates");
    let server = tls_server(&pki, None);
    let mut command = kv_cli(server.port);
    command.arg("PING");
    let output = run(command, b"");
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("--tls"), "{}", stderr(&output));
    server.stop();
}

#[test]
fn tls_without_a_ca_is_a_usage_error() {
    let mut command = kv_cli(1);
    command.args(["--tls", "PING"]);
    let output = run(command, b"");
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("--cacert"), "{}", stderr(&output));
}

/// Over TLS the server pushes a backup through the connection itself (a thread of its own
/// cannot seal TLS records): the file lands whole, and checks out.
#[test]
fn a_backup_over_tls_lands_whole() {
    let pki = TestPki::new().expect("test certificates");
    let server = tls_server(&pki, None);
    let mut script = String::from("CREATE shopping\n");
    for i in 0..2_000 {
        script.push_str(&format!(
            "PUT shopping item{i} {}\n",
            "x".repeat(i % 700 + 1)
        ));
    }
    let mut load = kv_cli(server.port);
    load.arg("--tls").arg("--cacert").arg(pki.ca_cert());
    let loaded = run(load, script.as_bytes());
    assert_eq!(code(&loaded), 0, "{}", stderr(&loaded));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("shopping.kvb");
    let mut backup = kv_cli(server.port);
    backup.arg("--tls").arg("--cacert").arg(pki.ca_cert());
    backup.arg("--backup").arg(&file);
    let output = run(backup, b"");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("1 bucket(s), 2000 key(s)"),
        "{}",
        stdout(&output)
    );
    let summary = kv_store::backup::verify(&file).expect("the file checks out");
    assert_eq!(summary.keys, 2_000);
    server.stop();
}
