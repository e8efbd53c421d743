//! TLS (docs/SECURITY.md, "Running it exposed"): the handshake on the connection's task with a
//! deadline, client certificates, a plaintext client on a TLS port, shutdown over TLS, and
//! files that cannot be used. In-process, against rustls clients; the binary's tests drive
//! it with `openssl s_client`.

pub mod common;

use std::io;
use std::time::Duration;

use common::tls::{connect_tls, pki, tls_config};
use common::{eventually, start, PATIENCE};
use line_server::{Echo, Faulty, ServerConfig, Tls, TlsError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

/// Writes `lines` and reads back exactly as many bytes; the bytes, or the error met.
async fn round_trip(stream: &mut TlsStream<TcpStream>, lines: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(lines).await?;
    let mut got = vec![0; lines.len()];
    timeout(PATIENCE, stream.read_exact(&mut got)).await??;
    Ok(got)
}

#[tokio::test]
async fn lines_are_echoed_over_tls_one_at_a_time_and_pipelined() {
    let pki = pki();
    let server = start(Echo, tls_config(&pki, false));
    let mut client = connect_tls(server.addr(), &pki, None)
        .await
        .expect("handshake");
    assert_eq!(
        round_trip(&mut client, b"hello\n").await.expect("echo"),
        b"hello\n"
    );
    let burst: Vec<u8> = (0..500)
        .flat_map(|i| format!("line {i}\r\n").into_bytes())
        .collect();
    assert_eq!(round_trip(&mut client, &burst).await.expect("echo"), burst);
    server.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_plaintext_client_on_a_tls_port_is_closed_and_harms_no_one() {
    let pki = pki();
    let server = start(Echo, tls_config(&pki, false));
    let stats = server.stats().await;
    let mut tls = connect_tls(server.addr(), &pki, None)
        .await
        .expect("handshake");

    let mut plain = server.connect().await;
    plain.send(b"PING\r\n").await;
    let answer = plain.read_to_end().await;
    assert!(
        !answer.windows(4).any(|w| w == b"PING"),
        "a plaintext line must not be served: {answer:?}"
    );
    assert_eq!(
        round_trip(&mut tls, b"still here\n").await.expect("echo"),
        b"still here\n"
    );
    eventually("the failed handshakes counted", || {
        stats.snapshot().tls_handshake_failures == 1
    })
    .await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_closed_at_the_deadline() {
    let pki = pki();
    let mut config = tls_config(&pki, false);
    config.tls = config
        .tls
        .map(|tls| tls.with_handshake_timeout(Duration::from_millis(300)));
    let server = start(Echo, config);
    let stats = server.stats().await;
    let mut stalled = server.connect().await;
    let mut served = connect_tls(server.addr(), &pki, None)
        .await
        .expect("handshake");
    assert_eq!(
        round_trip(&mut served, b"meanwhile\n").await.expect("echo"),
        b"meanwhile\n"
    );
    // Nothing sent: the server closes it, with nothing to say.
    assert_eq!(stalled.read_to_end().await, b"");
    eventually("the failed handshakes counted", || {
        stats.snapshot().tls_handshake_failures == 1
    })
    .await;
    assert_eq!(
        round_trip(&mut served, b"after\n").await.expect("echo"),
        b"after\n"
    );
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_a_certificate_it_signed_are_served() {
    let pki = pki();
    let server = start(Echo, tls_config(&pki, true));
    let stats = server.stats().await;

    let mut signed = connect_tls(
        server.addr(),
        &pki,
        Some((&pki.client_cert(), &pki.client_key())),
    )
    .await
    .expect("a client with a certificate the CA signed");
    assert_eq!(
        round_trip(&mut signed, b"hello\n").await.expect("echo"),
        b"hello\n"
    );

    let (stranger_cert, stranger_key) = pki.stranger();
    for identity in [
        None,
        Some((stranger_cert.as_path(), stranger_key.as_path())),
    ] {
        // With TLS 1.3 the client's side of the handshake ends before the server has
        // checked its certificate: the refusal shows on the first read.
        let refused = match connect_tls(server.addr(), &pki, identity).await {
            Err(_) => true,
            Ok(mut stream) => round_trip(&mut stream, b"hello\n").await.is_err(),
        };
        assert!(refused, "a client with {identity:?} must be refused");
    }
    eventually("the failed handshakes counted", || {
        stats.snapshot().tls_handshake_failures == 2
    })
    .await;
}

/// The shutdown drain reads what rustls and the socket hold, as over TCP.
#[tokio::test]
async fn at_shutdown_a_line_that_reached_the_server_over_tls_is_answered() {
    let pki = pki();
    for round in 0..30 {
        let server = start(Faulty::new(Echo), tls_config(&pki, false));
        let mut client = connect_tls(server.addr(), &pki, None)
            .await
            .expect("handshake");
        assert_eq!(
            round_trip(&mut client, b"first\n").await.expect("echo"),
            b"first\n"
        );
        client.write_all(b"last\n").await.expect("send");
        server.begin_shutdown();
        let mut rest = Vec::new();
        let read = timeout(PATIENCE, client.read_to_end(&mut rest)).await;
        // The server closes with close_notify, or just with a FIN: both end the stream.
        let _ = read.expect("the server closes within PATIENCE");
        assert_eq!(rest, b"last\n", "round {round}");
        server.returned().await.expect("a clean shutdown");
    }
}

#[test]
fn files_that_cannot_be_used_are_refused_with_their_name() {
    let pki = pki();
    let missing = pki.dir().join("missing.pem");
    let garbage = pki.dir().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let encrypted = pki.dir().join("encrypted.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\n\
         -----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .expect("write");
    let legacy = pki.dir().join("legacy.key");
    std::fs::write(
        &legacy,
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
         DEK-Info: AES-256-CBC,0123456789ABCDEF0123456789ABCDEF\n\nMIIEpAIBAAKCAQEA\n\
         -----END RSA PRIVATE KEY-----\n",
    )
    .expect("write");
    let cases = [
        (
            pki.server_cert(),
            encrypted,
            "encrypted.key: the private key is encrypted",
        ),
        (
            pki.server_cert(),
            legacy,
            "legacy.key: the private key is encrypted",
        ),
        (missing.clone(), pki.server_key(), "missing.pem"),
        (garbage.clone(), pki.server_key(), "garbage.pem"),
        (
            pki.server_cert(),
            garbage.clone(),
            "garbage.pem: no private key",
        ),
        // A key that is not the certificate's.
        (
            pki.server_cert(),
            pki.client_key(),
            "client.key: certificate and key refused",
        ),
    ];
    for (cert, key, named) in cases {
        let error = Tls::from_pem_files(&cert, &key, None).expect_err("unusable files");
        assert!(error.to_string().contains(named), "{error}");
    }
    let error = Tls::from_pem_files(&pki.server_cert(), &pki.server_key(), Some(&missing))
        .expect_err("a missing CA file");
    assert!(matches!(error, TlsError::File { .. }), "{error}");
}

/// Replies larger than the socket takes at once: what rustls holds back must be flushed,
/// or the tail waits there while the client waits for it (found in review: a 12 MB echo
/// with a slow reader stalled 52 KB short, about one run in five).
#[tokio::test]
async fn replies_larger_than_the_socket_buffer_arrive_whole_for_a_slow_reader() {
    let pki = pki();
    let server = start(Echo, tls_config(&pki, false));
    let client = connect_tls(server.addr(), &pki, None)
        .await
        .expect("handshake");
    let (mut reader, mut writer) = tokio::io::split(client);
    let line = [b'x'; 999];
    let lines = 12_000;
    let sending = tokio::spawn(async move {
        for _ in 0..lines {
            writer.write_all(&line).await?;
            writer.write_all(b"\n").await?;
        }
        writer.flush().await?;
        Ok::<_, io::Error>(writer)
    });
    let mut got = 0;
    let mut buf = vec![0; 64 * 1024];
    while got < lines * 1000 {
        // A slow reader: the server's writes keep meeting a full socket.
        tokio::time::sleep(Duration::from_micros(200)).await;
        match timeout(PATIENCE, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => panic!("only {got} of {} bytes arrived", lines * 1000),
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => panic!("after {got} bytes: {e}"),
        }
    }
    sending.await.expect("the sender").expect("sent");
}

/// The shutdown drain reads a request in records larger than one `read_tls` takes (4 KiB).
#[tokio::test]
async fn at_shutdown_a_long_line_behind_a_busy_command_is_answered_over_tls() {
    let pki = pki();
    let server = start(Faulty::new(Echo), tls_config(&pki, false));
    let mut client = connect_tls(server.addr(), &pki, None)
        .await
        .expect("handshake");
    let mut long = vec![b'y'; 10_000];
    long.push(b'\n');
    client.write_all(b"DEBUG SLEEP 300\n").await.expect("send");
    client.write_all(&long).await.expect("send");
    client.flush().await.expect("flush");
    server.begin_shutdown();
    let mut rest = Vec::new();
    let read = timeout(PATIENCE, client.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(_))), "{read:?}");
    let mut expected = b"OK\r\n".to_vec();
    expected.extend_from_slice(&long);
    assert_eq!(rest.len(), expected.len());
    assert!(rest == expected, "the long line was not answered");
    server.returned().await.expect("a clean shutdown");
}

/// A client over `max_connections` is closed without a reply: over TLS the line could only
/// follow a handshake (Redis does the same).
#[tokio::test]
async fn a_client_over_the_connection_limit_of_a_tls_port_is_closed_without_a_reply() {
    let pki = pki();
    let config = ServerConfig {
        max_connections: 1,
        ..tls_config(&pki, false)
    };
    let server = start(Echo, config);
    let stats = server.stats().await;
    let mut served = connect_tls(server.addr(), &pki, None)
        .await
        .expect("handshake");
    assert_eq!(
        round_trip(&mut served, b"one\n").await.expect("echo"),
        b"one\n"
    );
    let mut over = server.connect().await;
    assert_eq!(over.read_to_end().await, b"");
    assert_eq!(stats.snapshot().rejected_connections, 1);
}

/// The reload contract (SPEC §15) at the machinery's level: a replaced configuration is
/// what the next handshake gets, an open connection keeps the one it began with, and a
/// replacement that would change the client-certificate policy is refused.
#[tokio::test]
async fn a_replaced_certificate_serves_new_clients_and_open_connections_carry_on() {
    let (before, after) = (pki(), pki());
    let config = tls_config(&before, false);
    let tls = config.tls.clone().expect("TLS settings");
    let server = start(Echo, config);
    let mut open = connect_tls(server.addr(), &before, None)
        .await
        .expect("handshake with the first certificate");

    let fresh = Tls::from_pem_files(&after.server_cert(), &after.server_key(), None)
        .expect("the second certificate");
    tls.replace(&fresh).expect("same client-certificate policy");

    let mut new = connect_tls(server.addr(), &after, None)
        .await
        .expect("a new client sees the second certificate");
    assert_eq!(
        round_trip(&mut new, b"new\n").await.expect("echo"),
        b"new\n"
    );
    let old_ca = match connect_tls(server.addr(), &before, None).await {
        Err(_) => true,
        Ok(mut stream) => round_trip(&mut stream, b"x\n").await.is_err(),
    };
    assert!(
        old_ca,
        "a client trusting only the first CA must now be refused"
    );
    assert_eq!(
        round_trip(&mut open, b"old\n").await.expect("echo"),
        b"old\n"
    );

    let asks_for_clients = Tls::from_pem_files(
        &after.server_cert(),
        &after.server_key(),
        Some(&after.ca_cert()),
    )
    .expect("settings with a client CA");
    assert!(matches!(
        tls.replace(&asks_for_clients),
        Err(TlsError::ClientCertificatesChanged {
            required_before: false
        })
    ));
    server.stop().await.expect("a clean shutdown");
}
