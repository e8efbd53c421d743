//! kv-client against a real kv-server running in this process (line-server's `serve` with
//! KV mode over the in-memory store, on a free loopback port): the README's example, then
//! each error reply as the client's error.

use std::net::SocketAddr;

use kv_client::{Client, ConnectError, ConnectOptions, Error, Request, Response, Secret};
use kv_server::kv::Kv;
use kv_store::MemoryStore;
use line_server::{bind, serve, Auth, Password, ServeError, ServerConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A kv-server served by a task of this test's runtime.
struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    serving: JoinHandle<Result<(), ServeError>>,
}

impl Server {
    /// Starts serving an empty in-memory store on 127.0.0.1, port 0.
    fn start(config: ServerConfig) -> Self {
        Self::start_at(([127, 0, 0, 1], 0).into(), config, None)
    }

    /// Starts serving an empty in-memory store on `addr`, behind `password` if given (as
    /// `kv-server --requirepass` does).
    fn start_at(addr: SocketAddr, config: ServerConfig, password: Option<&str>) -> Self {
        let listener = bind(addr).expect("bind the port");
        let addr = listener.local_addr().expect("the bound address");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let password = password.map(|p| Password::new(p.as_bytes()));
        let protocol = Auth::new(Kv::new(MemoryStore::new()), password.map(Into::into), true);
        let serving = tokio::spawn(async move { serve(listener, &config, protocol, token).await });
        Self {
            addr,
            shutdown,
            serving,
        }
    }

    async fn connect(&self) -> Client {
        Client::connect(self.addr).await.expect("connect")
    }

    /// Shuts the server down and waits until it has stopped.
    async fn stop(self) {
        self.shutdown.cancel();
        self.serving
            .await
            .expect("serve does not panic")
            .expect("serve stops cleanly when cancelled");
    }
}

#[tokio::test]
async fn the_readmes_example_creates_puts_gets_and_pipelines() {
    let server = Server::start(ServerConfig::default());
    let mut client = server.connect().await;

    client.create("shopping").await.expect("create");
    client.put("shopping", "milk", "1").await.expect("put");
    assert_eq!(
        client
            .get("shopping", "milk")
            .await
            .expect("get")
            .as_deref(),
        Some(&b"1"[..])
    );
    // Many requests in one write, replies in order:
    let replies = client
        .pipeline(&[
            Request::put("shopping", "eggs", "12"),
            Request::get("shopping", "eggs"),
        ])
        .await
        .expect("pipeline");
    assert_eq!(
        replies,
        [Ok(Response::Ok), Ok(Response::Value(Some("12".into())))]
    );

    client.quit().await.expect("quit");
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_key_reads_back_as_none_and_ping_is_answered() {
    let server = Server::start(ServerConfig::default());
    let mut client = server.connect().await;

    client.create(b"b").await.expect("create");
    client.put(b"b", b"k", b"v").await.expect("put");
    client.delete(b"b", b"k").await.expect("delete");
    assert_eq!(client.get(b"b", b"k").await, Ok(None));
    client
        .delete(b"b", b"k")
        .await
        .expect("deleting a missing key is fine");
    client.ping().await.expect("ping");

    server.stop().await;
}

#[tokio::test]
async fn a_missing_bucket_is_not_found_and_the_connection_goes_on() {
    let server = Server::start(ServerConfig::default());
    let mut client = server.connect().await;

    assert_eq!(client.put("nowhere", "k", "v").await, Err(Error::NotFound));
    assert_eq!(client.get("nowhere", "k").await, Err(Error::NotFound));
    assert_eq!(client.delete("nowhere", "k").await, Err(Error::NotFound));
    let replies = client
        .pipeline(&[
            Request::get("nowhere", "k"),
            Request::create("somewhere"),
            Request::get("somewhere", "k"),
        ])
        .await
        .expect("a NOT FOUND inside a pipeline is that request's reply");
    assert_eq!(
        replies,
        [
            Err(Error::NotFound),
            Ok(Response::Ok),
            Ok(Response::Value(None))
        ]
    );

    server.stop().await;
}

#[tokio::test]
async fn words_the_protocol_cannot_carry_are_refused_before_anything_is_sent() {
    let server = Server::start(ServerConfig::default());
    let mut client = server.connect().await;
    client.create("b").await.expect("create");

    assert!(matches!(
        client.put("b", "k", "two words").await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        client
            .pipeline(&[Request::put("b", "k", "1"), Request::get("b", "")])
            .await,
        Err(Error::InvalidArgument(_))
    ));
    // Nothing of the refused pipeline was sent: the PUT in it did not happen.
    assert_eq!(client.get("b", "k").await, Ok(None));

    server.stop().await;
}

#[tokio::test]
async fn a_line_too_long_is_a_server_error_and_then_the_connection_is_closed() {
    let server = Server::start(ServerConfig {
        max_line_bytes: 64,
        ..ServerConfig::default()
    });
    let mut client = server.connect().await;
    client.create("b").await.expect("create");

    assert_eq!(
        client.put("b", "k", "x".repeat(64)).await,
        Err(Error::Server("line too long".into()))
    );
    let after = client.ping().await.expect_err("the server has closed");
    assert!(after.is_connection_error(), "{after:?}");

    server.stop().await;
}

#[tokio::test]
async fn info_returns_the_report_lines() {
    let server = Server::start(ServerConfig::default());
    let mut client = server.connect().await;
    client.create("b").await.expect("create");
    let keyspace = client.info(Some("keyspace")).await.expect("info");
    assert_eq!(&keyspace[..], b"# Keyspace\r\nbuckets:1\r\nkeys:0\r\n");
    let all = client.info(None).await.expect("info");
    assert!(all.starts_with(b"# Server\r\n"), "{all:?}");
    server.stop().await;
}

/// Over TLS the client's calls are the same: the README's example with a certificate our
/// test CA signed, and a client certificate where the server asks for one.
#[tokio::test]
async fn over_tls_the_client_works_and_a_client_certificate_is_presented_when_asked() {
    let pki = test_pki::TestPki::new().expect("test certificates");
    for client_ca in [None, Some(pki.ca_cert())] {
        let tls = line_server::Tls::from_pem_files(
            &pki.server_cert(),
            &pki.server_key(),
            client_ca.as_deref(),
        )
        .expect("TLS settings");
        let server = Server::start(ServerConfig {
            tls: Some(tls),
            ..ServerConfig::default()
        });
        let options = kv_client::TlsOptions {
            ca_cert: pki.ca_cert(),
            server_name: "localhost".into(),
            identity: client_ca
                .is_some()
                .then(|| (pki.client_cert(), pki.client_key())),
        };
        let mut client = Client::connect_tls(server.addr, &options)
            .await
            .expect("a TLS connection");
        client.create("shopping").await.expect("create");
        client.put("shopping", "milk", "1").await.expect("put");
        let milk = client.get("shopping", "milk").await.expect("get");
        assert_eq!(milk.as_deref(), Some(&b"1"[..]));
        client.quit().await.expect("quit");

        // A plaintext client is not served on a TLS port.
        let mut plain = server.connect().await;
        assert!(plain.ping().await.is_err());
        server.stop().await;
    }
}

fn options(server: &Server, password: Option<&str>) -> ConnectOptions {
    let mut options = ConnectOptions::new("127.0.0.1", server.addr.port());
    options.password = password.map(Secret::new);
    options
}

#[tokio::test]
async fn connect_with_a_password_sends_auth_first_and_the_client_is_served() {
    let server = Server::start_at(
        ([127, 0, 0, 1], 0).into(),
        ServerConfig::default(),
        Some("s3cret"),
    );
    // Without the password: NOAUTH, as a plain connect then ping() got before.
    let mut anonymous = server.connect().await;
    assert_eq!(
        anonymous.ping().await,
        Err(Error::Server("NOAUTH authentication required".into()))
    );
    let mut client = Client::connect_with(&options(&server, Some("s3cret")))
        .await
        .expect("connect and authenticate");
    client.ping().await.expect("served after AUTH");
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_with_the_servers_reason() {
    let server = Server::start_at(
        ([127, 0, 0, 1], 0).into(),
        ServerConfig::default(),
        Some("s3cret"),
    );
    let refused = Client::connect_with(&options(&server, Some("guess"))).await;
    match refused {
        Err(ConnectError::Auth(Error::Server(reason))) => {
            assert_eq!(reason, "WRONGPASS invalid password")
        }
        other => panic!("expected WRONGPASS, got {:?}", other.map(|_| ())),
    }
    server.stop().await;
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error_naming_the_address() {
    let server = Server::start(ServerConfig::default());
    let port = server.addr.port();
    server.stop().await;
    let refused = Client::connect_with(&ConnectOptions::new("127.0.0.1", port)).await;
    match refused {
        Err(e @ ConnectError::Connect { .. }) => {
            assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}")
        }
        other => panic!("expected a connect error, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn reconnect_opens_and_authenticates_again_after_the_server_restarts() {
    let config = ServerConfig::default();
    let first = Server::start_at(([127, 0, 0, 1], 0).into(), config.clone(), Some("pw"));
    let addr = first.addr;
    let mut client = Client::connect_with(&options(&first, Some("pw")))
        .await
        .expect("connect");
    client.create("b").await.expect("create");
    first.stop().await;

    let second = Server::start_at(addr, config, Some("pw"));
    let lost = client.ping().await.expect_err("the old connection is gone");
    assert!(lost.is_connection_error(), "{lost:?}");
    client
        .reconnect()
        .await
        .expect("reconnect to the same port");
    client.ping().await.expect("served: AUTH was sent again");
    // A new server, a new (empty) store.
    assert_eq!(client.get("b", "k").await, Err(Error::NotFound));
    second.stop().await;
}

#[tokio::test]
async fn a_split_connection_keeps_many_requests_in_flight_and_reads_them_in_order() {
    use kv_client::{Outgoing, Reply};
    let server = Server::start(ServerConfig::default());
    let client = server.connect().await;
    let (mut sender, mut receiver) = client.into_split();
    let lines: Vec<String> = (0..1000).map(|i| format!("PUT b k{i} v{i}")).collect();
    let writer = tokio::spawn(async move {
        let mut expects = vec![sender.queue(&Outgoing::Request(Request::create("b")))?];
        for line in &lines {
            let outgoing = Outgoing::Line(line.as_bytes());
            expects.push(sender.queue(&outgoing)?);
        }
        expects.push(sender.queue(&Outgoing::Request(Request::get("b", "k999")))?);
        sender.flush().await?;
        Ok::<_, Error>(expects)
    });
    let expects = writer.await.expect("no panic").expect("written");
    let mut wires = Vec::new();
    for expect in expects {
        let received = receiver.next(expect).await.expect("a reply");
        assert!(!received.is_error(), "{received:?}");
        if received.reply != Some(Reply::Ok) {
            wires.push(received.wire.to_vec());
        }
    }
    // Every CREATE and PUT was OK; the GET saw the last PUT.
    assert_eq!(wires, [b"v999\r\nOK\r\n".to_vec()]);
    server.stop().await;
}

#[tokio::test]
async fn a_subscription_streams_typed_events_and_a_missing_bucket_is_not_found() {
    let server = Server::start(ServerConfig::default());
    let missing = server.connect().await.subscribe("nope").await;
    assert!(
        matches!(missing, Err(Error::NotFound)),
        "{:?}",
        missing.err()
    );
    let mut writer = server.connect().await;
    writer.create("shop").await.expect("create");
    let mut subscription = server
        .connect()
        .await
        .subscribe("shop")
        .await
        .expect("subscribe");
    writer.put("shop", "milk", "3").await.expect("put");
    writer.delete("shop", "milk").await.expect("delete");
    let set = kv_client::Event::Set {
        key: "milk".into(),
        value: "3".into(),
    };
    assert_eq!(subscription.next().await.expect("an event"), Some(set));
    let deleted = kv_client::Event::Deleted { key: "milk".into() };
    assert_eq!(subscription.next().await.expect("an event"), Some(deleted));
    subscription.unsubscribe().await.expect("unsubscribe");
    server.stop().await;
}
