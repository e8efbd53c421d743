//! Supervision (SPEC §5) driven by fault injection (SPEC §6): a crashing connection, a
//! sleeping one, a crashing acceptor, and the supervisor giving up.

mod common;

use common::{TestServer, PATIENCE};

fn debug_server(extra: &[&str]) -> TestServer {
    TestServer::builder()
        .args(["--mode", "echo", "--debug-commands"])
        .args(extra)
        .start()
}

// --- a crashing connection --------------------------------------------------------------

#[test]
fn debug_panic_closes_only_that_connection_and_logs_an_error_with_the_peer_address() {
    let server = debug_server(&[]);
    let mut bystander = server.connect();
    bystander.echo(b"watching\r\n");

    let mut victim = server.connect();
    let victim_addr = victim.local_addr().to_string();
    victim.echo(b"about to crash\r\n");
    victim.send(b"DEBUG PANIC\r\n");
    victim.expect_closed();

    let line = server.wait_for_log_with(&["ERROR", &victim_addr], PATIENCE);
    assert!(
        line.contains("panic"),
        "error line should say it panicked: {line}"
    );
    // The address must come from the server's own bookkeeping, not only from the text of
    // this injected panic (a real panic's message would not name the peer).
    let without_panic_text = line.replace(&format!("requested by {victim_addr}"), "");
    assert!(
        without_panic_text.contains(&victim_addr),
        "the error line should name the peer {victim_addr}: {line}"
    );
    bystander.echo(b"unharmed\r\n");
    server.connect().echo(b"newcomer served\r\n");
}

#[test]
fn many_panicking_connections_never_take_the_server_down() {
    let server = debug_server(&[]);
    let mut bystander = server.connect();
    bystander.echo(b"watching\r\n");
    for i in 0..20 {
        let mut victim = server.connect();
        victim.echo(format!("victim {i}\r\n").as_bytes());
        victim.send(b"debug panic\r\n");
        victim.expect_closed();
    }
    server.wait_for_log_count("panicked", 20, PATIENCE);
    bystander.echo(b"still unharmed\r\n");
    server.connect().echo(b"still accepting\r\n");
}

// --- a sleeping connection --------------------------------------------------------------

#[test]
fn debug_sleep_replies_ok_then_later_lines_follow_in_order() {
    let server = debug_server(&[]);
    let mut client = server.connect();
    client.send(b"DEBUG SLEEP 200\r\nafter the nap\r\n");
    client.expect(b"OK\r\nafter the nap\r\n");
    client.echo(b"awake\r\n");
}

#[test]
fn another_client_is_served_while_one_sleeps() {
    let server = debug_server(&[]);
    let mut sleeper = server.connect();
    sleeper.echo(b"going to sleep\r\n");
    // Long enough that the check below happens while it sleeps, however slow the machine.
    sleeper.send(b"DEBUG SLEEP 5000\r\n");

    let mut other = server.connect();
    other.echo(b"served during the sleep\r\n");
    assert!(
        !sleeper.has_pending_input(),
        "the sleeper was answered before the other client: they were not served concurrently"
    );
    sleeper.expect(b"OK\r\n");
}

#[test]
fn debug_commands_are_case_insensitive_and_tolerate_extra_blanks() {
    let server = debug_server(&[]);
    let mut client = server.connect();
    client.send(b"debug sleep 1\r\n");
    client.expect(b"OK\r\n");
    client.send(b"  Debug\tSleep   1  \n");
    client.expect(b"OK\r\n");
}

#[test]
fn malformed_debug_lines_are_echoed_like_any_other_line() {
    let server = debug_server(&[]);
    let mut client = server.connect();
    client.echo(b"DEBUG SLEEP soon\r\n");
    client.echo(b"DEBUG PANIC please\r\n");
    client.echo(b"DEBUG\r\n");
    client.echo(b"DEBUGPANIC\r\n");
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

// --- a crashing acceptor ------------------------------------------------------------------

#[test]
fn a_panicking_acceptor_is_restarted_on_the_same_port_and_existing_clients_keep_working() {
    let server = debug_server(&[]);
    let mut existing = server.connect();
    existing.echo(b"connected before\r\n");

    let mut trigger = server.connect();
    trigger.send(b"DEBUG ACCEPTOR-PANIC\r\n");
    trigger.expect(b"OK\r\n");
    server.wait_for_log("restarting acceptor", PATIENCE);
    assert!(
        !server.logs_containing("acceptor panicked").is_empty(),
        "the acceptor's panic should be logged"
    );

    existing.echo(b"untouched by the restart\r\n");
    trigger.echo(b"me too\r\n");
    // Same port: the restarted acceptor kept the listening socket.
    let mut newcomer = server.connect();
    newcomer.echo(b"accepted after the restart\r\n");
}

#[test]
fn the_default_restart_intensity_tolerates_three_acceptor_failures() {
    let server = debug_server(&[]);
    let mut trigger = server.connect();
    for restart in 1..=3 {
        trigger.send(b"debug acceptor-panic\r\n");
        trigger.expect(b"OK\r\n");
        server.wait_for_log_count("restarting acceptor", restart, PATIENCE);
        server
            .connect()
            .echo(format!("accepted after restart {restart}\r\n").as_bytes());
    }
    let mut server = server;
    assert!(server.is_running());
}

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
