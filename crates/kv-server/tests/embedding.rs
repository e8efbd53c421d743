//! The README's embedding example, run in-process: `serve` with KV over a memory store,
//! as an embedder writes it, reports the server's real counters in `INFO`.

use std::time::Duration;

use kv_server::kv::Kv;
use kv_store::MemoryStore;
use line_server::{bind, serve, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(10);

/// `INFO`'s lines up to its closing `OK`.
async fn info(client: &mut BufReader<TcpStream>) -> Vec<String> {
    client
        .get_mut()
        .write_all(b"INFO\r\n")
        .await
        .expect("send INFO");
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(PATIENCE, client.read_line(&mut line)).await;
        assert!(
            read.expect("INFO answered in time").expect("read") > 0,
            "closed"
        );
        if line == "OK\r\n" {
            return lines;
        }
        lines.push(line.trim_end().to_owned());
    }
}

#[tokio::test]
async fn an_embedded_servers_info_reports_its_real_counters() {
    // As in the README:
    let listener = bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config = ServerConfig {
        max_connections: 1000,
        ..ServerConfig::default()
    };
    let shutdown = CancellationToken::new();
    let served = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { serve(listener, &config, Kv::new(MemoryStore::new()), shutdown).await }
    });

    let _other = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut client = BufReader::new(
        TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect"),
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let report = loop {
        let report = info(&mut client).await;
        if report.iter().any(|l| l == "connected_clients:2") {
            break report;
        }
        assert!(tokio::time::Instant::now() < deadline, "{report:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for expected in [
        format!("tcp_port:{port}"),
        "maxclients:1000".to_owned(),
        "total_connections_received:2".to_owned(),
    ] {
        assert!(report.contains(&expected), "no {expected} in {report:#?}");
    }

    shutdown.cancel();
    let returned = tokio::time::timeout(PATIENCE, served).await;
    returned
        .expect("serve returns")
        .expect("not panicked")
        .expect("a clean shutdown");
}
