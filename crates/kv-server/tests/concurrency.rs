//! Many clients at once (SPEC §5): each client has its own task, so nobody waits for
//! anybody else. A server serving one client at a time fails every test here.

mod common;

use common::{run_at_once, try_connect, try_echo_lines, TestServer};

#[test]
fn a_second_client_is_served_while_the_first_stays_connected_and_idle() {
    let server = TestServer::echo(&[]);
    let mut first = server.connect();
    first.echo(b"I am first\r\n");

    // The first client now sits idle, connection open.
    let mut second = server.connect();
    second.echo(b"I am second\r\n");
    second.echo(b"and not waiting for the first\r\n");

    first.echo(b"still here\r\n");
    second.echo(b"me too\r\n");
}

#[test]
fn a_client_that_sent_half_a_line_does_not_hold_up_others() {
    let server = TestServer::echo(&[]);
    let mut stuck = server.connect();
    stuck.send(b"this line never ends...");

    let mut other = server.connect();
    other.echo(b"served anyway\r\n");

    stuck.send(b" until now\r\n");
    stuck.expect(b"this line never ends... until now\r\n");
}

#[test]
fn two_hundred_clients_connected_at_once_are_all_served_concurrently() {
    let server = TestServer::echo(&[]);
    const CLIENTS: usize = 200;
    // Open every connection first and prove each is served while all the others stay
    // connected; then all of them talk at the same time on their own threads.
    let mut streams = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut client = server.connect();
        client.echo(format!("hello from client {i}\r\n").as_bytes());
        streams.push(Some(client.stream().try_clone().unwrap()));
    }
    let streams = std::sync::Arc::new(std::sync::Mutex::new(streams));
    let errors = run_at_once(CLIENTS, move |i| {
        let mut stream = streams.lock().unwrap()[i].take().unwrap();
        let lines: Vec<Vec<u8>> = (0..10)
            .map(|n| format!("client {i} line {n}\r\n").into_bytes())
            .collect();
        try_echo_lines(&mut stream, &lines)
    });
    assert!(
        errors.is_empty(),
        "{} clients failed: {errors:#?}",
        errors.len()
    );
}

#[test]
fn a_burst_of_a_thousand_simultaneous_connects_is_all_served() {
    let server = TestServer::echo(&[]);
    let addr = server.addr();
    let errors = run_at_once(1_000, move |i| {
        let mut stream = try_connect(addr)?;
        let lines = [format!("burst client {i}\r\n").into_bytes()];
        try_echo_lines(&mut stream, &lines)
    });
    assert!(
        errors.is_empty(),
        "{} clients failed: {errors:#?}",
        errors.len()
    );
    // And the server is still fine afterwards.
    server.connect().echo(b"after the burst\r\n");
}

#[test]
fn clients_pipelining_large_batches_at_the_same_time_each_get_their_own_lines_back() {
    let server = TestServer::echo(&[]);
    let addr = server.addr();
    let errors = run_at_once(20, move |i| {
        let mut stream = try_connect(addr)?;
        let batch: Vec<u8> = (0..5_000)
            .flat_map(|n| format!("client {i} pipelined {n}\n").into_bytes())
            .collect();
        // Write and read concurrently so neither side's buffers need to hold it all.
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        let to_send = batch.clone();
        let sender = std::thread::spawn(move || {
            use std::io::Write;
            writer.write_all(&to_send)
        });
        let mut got = vec![0; batch.len()];
        std::io::Read::read_exact(&mut stream, &mut got).map_err(|e| format!("read: {e}"))?;
        sender.join().unwrap().map_err(|e| format!("write: {e}"))?;
        if got != batch {
            return Err("echoed bytes differ from those sent".into());
        }
        Ok(())
    });
    assert!(errors.is_empty(), "{errors:#?}");
}
