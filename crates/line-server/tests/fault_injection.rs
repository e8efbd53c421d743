//! Fault injection (PROTOCOL.md, "Fault injection") as [`Faulty`] gives it around any
//! protocol: `DEBUG SLEEP` replies `OK` after its nap and delays nobody else; anything that
//! is not a well-formed `DEBUG` command goes to the wrapped protocol. The crashes it
//! injects are in `supervision.rs`.

pub mod common;

use std::time::Duration;

use common::start;
use line_server::{Echo, Faulty, ServerConfig};

#[tokio::test]
async fn debug_sleep_replies_ok_then_later_lines_follow_in_order() {
    let server = start(Faulty::new(Echo), ServerConfig::default());
    let mut client = server.connect().await;
    client.send(b"DEBUG SLEEP 200\r\nafter the nap\r\n").await;
    client.expect(b"OK\r\nafter the nap\r\n").await;
    client.echo(b"awake\r\n").await;
}

#[tokio::test]
async fn debug_sleep_does_not_delay_other_clients() {
    // One thread for everything: a sleep that blocked it would stall the other client.
    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let server = start(Faulty::new(Echo), config);
    let mut sleeper = server.connect().await;
    sleeper.echo(b"going to sleep\r\n").await;
    sleeper.send(b"DEBUG SLEEP 60000\r\n").await;

    let mut other = server.connect().await;
    other.echo(b"served during the sleep\r\n").await;
    assert!(
        !sleeper.has_pending_input(),
        "the sleeper was answered before the other client: they were not served concurrently"
    );
    // The sleeper is cut at the shutdown deadline.
    server.stop().await.expect("a clean shutdown");
    sleeper.expect_closed().await;
}

#[tokio::test]
async fn debug_commands_are_case_insensitive_and_tolerate_extra_blanks() {
    let server = start(Faulty::new(Echo), ServerConfig::default());
    let mut client = server.connect().await;
    client.send(b"debug sleep 1\r\n").await;
    client.expect(b"OK\r\n").await;
    client.send(b"  Debug\tSleep   1  \n").await;
    client.expect(b"OK\r\n").await;
}

#[tokio::test]
async fn malformed_debug_lines_go_to_the_wrapped_protocol() {
    let server = start(Faulty::new(Echo), ServerConfig::default());
    let mut client = server.connect().await;
    client.echo(b"DEBUG SLEEP soon\r\n").await;
    client.echo(b"DEBUG PANIC please\r\n").await;
    client.echo(b"DEBUG\r\n").await;
    client.echo(b"DEBUGPANIC\r\n").await;
}

#[tokio::test]
async fn without_the_wrapper_debug_lines_are_just_echoed() {
    let server = start(Echo, ServerConfig::default());
    let mut client = server.connect().await;
    client.echo(b"DEBUG PANIC\r\n").await;
    client.echo(b"DEBUG ACCEPTOR-PANIC\r\n").await;
    // Were this obeyed, the echo would not come within the read's deadline.
    client.echo(b"DEBUG SLEEP 60000\r\n").await;
    client.echo(b"still alive\r\n").await;
    server.connect().await.echo(b"acceptor untouched\r\n").await;
    server.stop().await.expect("no escalation");
}
