//! Many clients at once (docs/OPERATIONS.md, "Behaviour under failure"): each client has its own task,
//! so nobody waits for anybody else. A server serving one client at a time fails every test
//! here.

pub mod common;

use common::{start, Client, Gate};
use line_server::{Echo, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

#[tokio::test]
async fn a_second_client_is_served_while_the_first_stays_connected_and_idle() {
    let server = start(Echo, ServerConfig::default());
    let mut first = server.connect().await;
    first.echo(b"I am first\r\n").await;

    // The first client now sits idle, connection open.
    let mut second = server.connect().await;
    second.echo(b"I am second\r\n").await;
    second.echo(b"and not waiting for the first\r\n").await;

    first.echo(b"still here\r\n").await;
    second.echo(b"me too\r\n").await;
}

#[tokio::test]
async fn a_client_that_sent_half_a_line_does_not_hold_up_others() {
    let server = start(Echo, ServerConfig::default());
    let mut stuck = server.connect().await;
    stuck.send(b"this line never ends...").await;

    let mut other = server.connect().await;
    other.echo(b"served anyway\r\n").await;

    stuck.send(b" until now\r\n").await;
    stuck.expect(b"this line never ends... until now\r\n").await;
}

#[tokio::test]
async fn another_client_is_served_while_one_waits_in_a_request() {
    let gate = Gate::default();
    let server = start(gate.clone(), ServerConfig::default());
    let mut busy = server.connect().await;
    busy.echo(b"going to wait\r\n").await;
    busy.send(b"wait\r\n").await;
    gate.until_waiting(1).await;

    let mut other = server.connect().await;
    other.echo(b"served during the wait\r\n").await;
    assert!(
        !busy.has_pending_input(),
        "the waiting request was answered before the gate opened"
    );
    gate.open();
    busy.expect(b"done\r\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_connected_at_once_are_all_served_concurrently() {
    let server = start(Echo, ServerConfig::default());
    const CLIENTS: usize = 200;
    // Open every connection first and prove each is served while all the others stay
    // connected; then all of them talk at the same time, each on its own task.
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut client = server.connect().await;
        client
            .echo(format!("hello from client {i}\r\n").as_bytes())
            .await;
        clients.push(client);
    }
    let mut talking = JoinSet::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        talking.spawn(async move {
            for n in 0..10 {
                client
                    .echo(format!("client {i} line {n}\r\n").as_bytes())
                    .await;
            }
        });
    }
    // A client's task panics (with what it got) if its echo is wrong or late.
    while let Some(done) = talking.join_next().await {
        done.expect("a client was served");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_thousand_simultaneous_connects_is_all_served() {
    // A client socket and a server socket per connection, in this one process.
    line_server::raise_open_file_limit(2 * 1_000);
    let server = start(Echo, ServerConfig::default());
    let addr = server.addr();
    let mut burst = JoinSet::new();
    for i in 0..1_000 {
        burst.spawn(async move {
            let mut client = Client::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("burst client {i}: connect: {e}"));
            client
                .echo(format!("burst client {i}\r\n").as_bytes())
                .await;
        });
    }
    while let Some(done) = burst.join_next().await {
        done.expect("a client of the burst was served");
    }
    // And the server is still fine afterwards.
    server.connect().await.echo(b"after the burst\r\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_pipelining_large_batches_at_the_same_time_each_get_their_own_lines_back() {
    let server = start(Echo, ServerConfig::default());
    let mut clients = JoinSet::new();
    for i in 0..20 {
        let mut client = server.connect().await;
        clients.spawn(async move {
            let batch: Vec<u8> = (0..5_000)
                .flat_map(|n| format!("client {i} pipelined {n}\n").into_bytes())
                .collect();
            // Write and read at the same time so neither side's buffers need to hold it all.
            let (mut from_server, mut to_server) = client.stream().split();
            let mut got = vec![0; batch.len()];
            let (written, read) = tokio::join!(
                to_server.write_all(&batch),
                from_server.read_exact(&mut got)
            );
            written.expect("write the batch");
            read.expect("read the echoes");
            assert!(
                got == batch,
                "client {i}: echoed bytes differ from those sent"
            );
        });
    }
    while let Some(done) = clients.join_next().await {
        done.expect("a pipelining client got its lines back");
    }
}
