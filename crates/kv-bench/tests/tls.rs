//! kv-bench over TLS against a real kv-server in this process (line-server's `serve` with
//! KV mode over the in-memory store, with test-pki's throwaway certificates): a load run
//! preloads and verifies every reply, a client certificate is presented when the server
//! asks for one, a certificate the client cannot trust stops the run with a message, idle
//! mode opens TLS connections, and `--password` authenticates every connection first.

pub mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::KvServer;
use kv_bench::idle::{self, IdleConfig};
use kv_bench::load::{self, LoadConfig};
use kv_bench::stats::Record;
use kv_bench::workload::Proto;
use kv_client::TlsOptions;
use line_server::{ServerConfig, Tls};
use test_pki::TestPki;

/// A TLS kv-server on a runtime of its own (kv-bench blocks the test's thread and runs
/// its own runtimes); stopped when dropped.
/// A TLS kv-server with `pki`'s certificates, asking clients for one of theirs if
/// `require_client_cert`.
fn tls_server(pki: &TestPki, require_client_cert: bool) -> KvServer {
    tls_server_with_password(pki, require_client_cert, None)
}

/// [`tls_server`], clients having to `AUTH` with `password` if one is given.
fn tls_server_with_password(
    pki: &TestPki,
    require_client_cert: bool,
    password: Option<&str>,
) -> KvServer {
    let ca = pki.ca_cert();
    let tls = Tls::from_pem_files(
        &pki.server_cert(),
        &pki.server_key(),
        require_client_cert.then_some(ca.as_path()),
    )
    .expect("test certificates load");
    let config = ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    };
    KvServer::start(config, password)
}

fn options(
    pki: &TestPki,
    identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> TlsOptions {
    TlsOptions {
        ca_cert: pki.ca_cert(),
        server_name: "localhost".into(),
        identity,
    }
}

fn config(addr: SocketAddr, tls: TlsOptions) -> LoadConfig {
    LoadConfig {
        label: "kv-server-tls".into(),
        tls: Some(tls),
        ..common::short_load(addr, Proto::Kv)
    }
}

#[test]
fn a_tls_run_verifies_every_reply_and_says_tls() {
    let pki = TestPki::new().expect("test PKI");
    let server = tls_server(&pki, false);
    let report = load::run(config(server.addr, options(&pki, None))).expect("run");
    assert!(report.ops > 0, "{report:?}");
    assert_eq!((report.errors, report.conn_errors), (0, 0), "{report:?}");
    assert!(report.tls, "{report:?}");
    assert!(
        report.table().contains("(kv over TLS)"),
        "{}",
        report.table()
    );
    let line = serde_json::to_string(&Record::Load(report)).expect("JSON");
    let json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(json["tls"], true, "{line}");
}

#[test]
fn ping_pong_over_tls_works_too() {
    let pki = TestPki::new().expect("test PKI");
    let server = tls_server(&pki, false);
    let mut c = config(server.addr, options(&pki, None));
    (c.conns, c.pipeline, c.threads) = (1, 1, 1);
    let report = load::run(c).expect("run");
    assert!(report.ops > 0, "{report:?}");
    assert_eq!((report.errors, report.conn_errors), (0, 0), "{report:?}");
}

#[test]
fn a_client_certificate_is_presented_when_the_server_asks_for_one() {
    let pki = TestPki::new().expect("test PKI");
    let server = tls_server(&pki, true);
    let identity = Some((pki.client_cert(), pki.client_key()));
    let report = load::run(config(server.addr, options(&pki, identity))).expect("run");
    assert!(report.ops > 0, "{report:?}");
    assert_eq!((report.errors, report.conn_errors), (0, 0), "{report:?}");

    // Without one, the server refuses the handshake: the run stops at its preload.
    let message = load::run(config(server.addr, options(&pki, None)))
        .expect_err("no client certificate, no run");
    assert!(message.contains("preload"), "{message}");
}

#[test]
fn a_server_certificate_the_client_cannot_trust_stops_the_run_with_a_message() {
    let pki = TestPki::new().expect("test PKI");
    let server = tls_server(&pki, false);
    // The stranger's certificate is from another CA, so the server's does not chain to it.
    let (stranger, _) = pki.stranger();
    let tls = TlsOptions {
        ca_cert: stranger,
        ..options(&pki, None)
    };
    let message = load::run(config(server.addr, tls)).expect_err("an untrusted server");
    assert!(message.contains("cannot connect"), "{message}");
}

#[test]
fn a_missing_ca_file_is_named_before_any_connection() {
    let pki = TestPki::new().expect("test PKI");
    let tls = TlsOptions {
        ca_cert: pki.dir().join("absent.pem"),
        ..options(&pki, None)
    };
    let addr: SocketAddr = "127.0.0.1:1".parse().expect("address");
    let message = load::run(config(addr, tls)).expect_err("no CA, no run");
    assert!(message.contains("absent.pem"), "{message}");
}

#[test]
fn idle_mode_opens_tls_connections() {
    let pki = TestPki::new().expect("test PKI");
    let server = tls_server(&pki, false);
    let report = idle::run(IdleConfig {
        label: "kv-server-tls".into(),
        addr: server.addr,
        proto: Proto::Kv,
        conns: 20,
        server_pid: Some(std::process::id()),
        settle: Duration::from_millis(10),
        ping: true,
        tls: Some(options(&pki, None)),
        password: None,
    })
    .expect("idle run");
    assert_eq!((report.open, report.errors), (20, 0), "{report:?}");
    assert!(report.tls && report.bytes_per_conn.is_some(), "{report:?}");
}

/// An exposed server has a password as well as TLS: `--password` sends `AUTH` first on
/// every connection; without it, or with a wrong one, the run stops with the server's
/// answer instead of counting errors.
#[test]
fn a_password_is_sent_first_on_every_connection() {
    let pki = TestPki::new().expect("test PKI");
    let server = tls_server_with_password(&pki, false, Some("s3cret"));
    let with = |password: Option<&str>| LoadConfig {
        password: password.map(String::from),
        ..config(server.addr, options(&pki, None))
    };
    let report = load::run(with(Some("s3cret"))).expect("run");
    assert!(report.ops > 0, "{report:?}");
    assert_eq!((report.errors, report.conn_errors), (0, 0), "{report:?}");

    let refused = load::run(with(Some("wrong"))).expect_err("a wrong password");
    assert!(refused.contains("WRONGPASS"), "{refused}");
    let missing = load::run(with(None)).expect_err("no password");
    assert!(missing.contains("NOAUTH"), "{missing}");
}
