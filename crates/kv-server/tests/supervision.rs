//! Supervision through the binary (docs/OPERATIONS.md, "Behaviour under failure", §6): the
//! `--debug-commands` flag and its environment variable, and the escalation that ends the
//! process with an error status and a clear log line. How connections and the acceptor are
//! supervised is tested in-process in `crates/line-server/tests/supervision.rs`.

pub mod common;

use common::{TestServer, PATIENCE};

fn debug_server(extra: &[&str]) -> TestServer {
    TestServer::builder()
        .args(["--mode", "echo", "--debug-commands"])
        .args(extra)
        .start()
}

// --- the flag -----------------------------------------------------------------------------

#[test]
fn without_debug_commands_debug_lines_are_just_echoed() {
    let server = TestServer::echo(&[]);
    let mut client = server.connect();
    client.echo(b"DEBUG PANIC\r\n");
    client.echo(b"DEBUG ACCEPTOR-PANIC\r\n");
    // Were this obeyed, the echo would not come within the read timeout.
    client.echo(b"DEBUG SLEEP 60000\r\n");
    client.echo(b"still alive\r\n");
    server.connect().echo(b"acceptor untouched\r\n");
    assert!(server.logs_containing("panicked").is_empty());
}

#[test]
fn kv_debug_commands_env_turns_fault_injection_on() {
    for on in ["1", "true"] {
        let server = TestServer::builder()
            .args(["--mode", "echo"])
            .env("KV_DEBUG_COMMANDS", on)
            .start();
        let mut client = server.connect();
        client.send(b"DEBUG SLEEP 1\r\n");
        client.expect(b"OK\r\n");
    }
}

#[test]
fn kv_debug_commands_env_zero_or_false_leaves_it_off() {
    for off in ["0", "false"] {
        let server = TestServer::builder()
            .args(["--mode", "echo"])
            .env("KV_DEBUG_COMMANDS", off)
            .start();
        let mut client = server.connect();
        client.echo(b"DEBUG SLEEP 1\r\n");
    }
}

// --- escalation -----------------------------------------------------------------------------

#[test]
fn an_acceptor_failing_more_than_max_restarts_times_ends_the_process_with_an_error() {
    let mut server = debug_server(&["--max-restarts", "2", "--max-restart-window-secs", "60"]);
    let mut trigger = server.connect();
    for restart in 1..=2 {
        trigger.send(b"DEBUG ACCEPTOR-PANIC\r\n");
        trigger.expect(b"OK\r\n");
        server.wait_for_log_count("restarting acceptor", restart, PATIENCE);
        server.connect().echo(b"still accepting\r\n");
    }
    assert_eq!(
        server.logs_containing("acceptor panicked").len(),
        2,
        "each panic of the acceptor is logged"
    );
    trigger.send(b"DEBUG ACCEPTOR-PANIC\r\n");
    let status = server.expect_exit(PATIENCE);
    assert!(
        !status.success(),
        "escalation must exit non-zero, got {status}"
    );
    let line = server.wait_for_log("giving up", PATIENCE);
    assert_eq!(common::log_level(&line), Some("ERROR"), "{line}");
    assert!(line.contains("acceptor"), "should name what failed: {line}");
}
