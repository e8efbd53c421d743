//! TLS through the real binary (PROTOCOL.md, "Security"): a session with `openssl
//! s_client`, TLS's `telnet`; client certificates; a plaintext client and a stalled
//! handshake on a TLS port; files that cannot be used end start-up. The machinery's TLS is
//! tested in-process in line-server's `tests/tls.rs`, kv-client's in its own tests.

pub mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{disk::arg, TestServer, PATIENCE};
use test_pki::TestPki;

fn pki() -> TestPki {
    TestPki::new().expect("test certificates")
}

/// `kv-server --port 0` speaking TLS with the test certificates, plus `extra` flags.
fn tls_server(pki: &TestPki, extra: &[&str]) -> TestServer {
    let (cert, key) = (pki.server_cert(), pki.server_key());
    let mut args = vec!["--tls-cert-file", arg(&cert), "--tls-key-file", arg(&key)];
    args.extend_from_slice(extra);
    TestServer::start(&args)
}

/// Runs `openssl s_client -quiet` against `port` with `input` on its stdin (which should
/// end with `QUIT`, so the server closes and s_client exits); returns whether it exited
/// successfully and what it printed. Killed after [`PATIENCE`].
fn s_client(
    port: u16,
    pki: &TestPki,
    identity: Option<(&Path, &Path)>,
    input: &[u8],
) -> (bool, Vec<u8>) {
    let connect = format!("127.0.0.1:{port}");
    let ca = pki.ca_cert();
    let mut command = Command::new("openssl");
    command.args([
        "s_client",
        "-connect",
        &connect,
        "-quiet",
        "-verify_return_error",
    ]);
    command.args(["-CAfile", arg(&ca)]);
    if let Some((cert, key)) = identity {
        command.args(["-cert", arg(cert), "-key", arg(key)]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed (Debian package openssl; .ci/run installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    // A refused handshake may close stdin's reader early: a failed write is part of that.
    let _ = stdin.write_all(input);
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for openssl") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openssl s_client did not exit within {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    (status.success(), reader.join().expect("the reader thread"))
}

const SESSION: &[u8] = b"CREATE shop\r\nPUT shop milk 1\r\nGET shop milk\r\nQUIT\r\n";
const ANSWERS: &[u8] = b"OK\r\nOK\r\n1\r\nOK\r\nOK\r\n";

#[test]
fn openssl_s_client_is_tls_telnet() {
    let pki = pki();
    let server = tls_server(&pki, &[]);
    server.wait_for_log(
        &format!("Accepting connections on port {} (TLS)", server.port()),
        PATIENCE,
    );
    let (ok, out) = s_client(server.port(), &pki, None, SESSION);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(ANSWERS)
    );
    assert!(ok, "s_client failed");
}

/// Collects what a child prints, in a thread, for a test to look at as it arrives.
fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            sink.lock()
                .expect("not poisoned")
                .extend_from_slice(&buf[..n]);
        }
    });
    seen
}

fn contains(seen: &Mutex<Vec<u8>>, needle: &str) -> bool {
    String::from_utf8_lossy(&seen.lock().expect("not poisoned")).contains(needle)
}

/// SPEC §9: refused at once with an alert (Redis does the same), so the client is never
/// left waiting for an answer that does not come. Its stdin stays open throughout: only
/// the server's answer can end s_client.
#[test]
fn a_tls_1_2_renegotiation_is_refused_with_an_alert_at_once() {
    let pki = pki();
    let server = tls_server(&pki, &[]);
    let connect = format!("127.0.0.1:{}", server.port());
    let ca = pki.ca_cert();
    let spawned = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &connect,
            "-tls1_2",
            "-CAfile",
            arg(&ca),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (Debian package openssl; .ci/run installs it)");
    let mut child = common::proc::Reaped(spawned);
    let child = &mut child.0;
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));
    stdin.write_all(b"PING\n").expect("write PING");
    let deadline = Instant::now() + PATIENCE;
    while !contains(&stdout, "PONG") {
        assert!(Instant::now() < deadline, "no PONG over TLS 1.2");
        thread::sleep(Duration::from_millis(20));
    }
    stdin
        .write_all(b"R\n")
        .expect("ask s_client to renegotiate");
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for openssl") {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "s_client still waiting 3 s after asking to renegotiate: {}",
            String::from_utf8_lossy(&stderr.lock().expect("not poisoned"))
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "s_client says the renegotiation failed");
    assert!(contains(&stderr, "RENEGOTIATING"), "s_client did try");
    assert!(
        contains(&stderr, "no renegotiation") || contains(&stderr, "alert"),
        "the server's alert: {}",
        String::from_utf8_lossy(&stderr.lock().expect("not poisoned"))
    );
    drop(stdin);
}

#[test]
fn with_a_ca_a_client_without_a_certificate_it_signed_is_refused_in_the_handshake() {
    let pki = pki();
    let ca = pki.ca_cert();
    let server = tls_server(&pki, &["--tls-ca-cert-file", arg(&ca)]);
    let (ok, out) = s_client(server.port(), &pki, None, SESSION);
    assert!(
        out.is_empty() && !ok,
        "served without a certificate: {out:?}"
    );
    let (cert, key) = pki.stranger();
    let (ok, out) = s_client(server.port(), &pki, Some((&cert, &key)), SESSION);
    assert!(
        out.is_empty() && !ok,
        "served with another CA's certificate: {out:?}"
    );

    let (cert, key) = (pki.client_cert(), pki.client_key());
    let (ok, out) = s_client(server.port(), &pki, Some((&cert, &key)), SESSION);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(ANSWERS)
    );
    assert!(ok);
}

#[test]
fn a_plaintext_client_on_a_tls_port_is_closed_unanswered() {
    let pki = pki();
    let server = tls_server(&pki, &[]);
    let mut plain = server.connect();
    plain.send(b"PING\r\n");
    let mut got = Vec::new();
    let _ = plain.stream().read_to_end(&mut got);
    assert!(
        !got.windows(4).any(|w| w == b"PONG"),
        "answered in plaintext: {got:?}"
    );
    let (ok, out) = s_client(server.port(), &pki, None, SESSION);
    assert!(ok && out == ANSWERS, "{out:?}");
}

/// SPEC: a handshake must finish within 5 s; meanwhile others are served.
#[test]
fn a_handshake_not_finished_in_5_s_is_closed_while_others_are_served() {
    let pki = pki();
    let server = tls_server(&pki, &[]);
    let stalled = server.connect();
    let opened = Instant::now();
    let (ok, out) = s_client(server.port(), &pki, None, SESSION);
    assert!(ok && out == ANSWERS, "{out:?}");
    let mut got = Vec::new();
    let mut stream = stalled.stream();
    let _ = stream.read_to_end(&mut got);
    let waited = opened.elapsed();
    assert!(got.is_empty(), "{got:?}");
    assert!(
        waited >= Duration::from_millis(4900) && waited < Duration::from_secs(5) + PATIENCE,
        "closed after {waited:?}"
    );
}

#[test]
fn tls_files_that_cannot_be_used_end_start_up_with_a_clear_message() {
    let pki = pki();
    let missing = pki.dir().join("missing.pem");
    let (cert, key) = (pki.server_cert(), pki.server_key());
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--tls-cert-file",
                arg(&missing),
                "--tls-key-file",
                arg(&key),
            ],
            "missing.pem",
        ),
        (
            &[
                "--tls-cert-file",
                arg(&cert),
                "--tls-key-file",
                arg(&missing),
            ],
            "missing.pem",
        ),
        (
            &["--tls-cert-file", arg(&key), "--tls-key-file", arg(&key)],
            "server.key",
        ),
        (&["--tls-cert-file", arg(&cert)], "--tls-key-file"),
    ];
    for (args, named) in cases {
        let finished = TestServer::builder().args(args).run_to_exit(PATIENCE);
        assert!(!finished.status.success(), "{args:?} started");
        assert!(
            finished.stderr.contains(named),
            "{args:?}: {}",
            finished.stderr
        );
    }
}
