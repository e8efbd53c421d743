//! `INFO` (PROTOCOL.md, "INFO"): report lines, then `OK`; its fields move as the server
//! works; `INFO section` in any case; echo mode echoes the line.

pub mod common;

use std::collections::HashMap;

use common::{ask, Client, TestServer, PATIENCE};

/// Sends `request` and reads the report up to its `OK`: `name → value`, and the section
/// titles in order.
fn info(client: &mut Client, request: &[u8]) -> (HashMap<String, String>, Vec<String>) {
    client.send(request);
    let mut fields = HashMap::new();
    let mut sections = Vec::new();
    loop {
        let line = String::from_utf8(client.read_line()).expect("text");
        let line = line.strip_suffix("\r\n").expect("a CRLF line");
        if line == "OK" {
            return (fields, sections);
        }
        if let Some(title) = line.strip_prefix("# ") {
            sections.push(title.to_string());
        } else {
            let (name, value) = line.split_once(':').expect("name:value");
            fields.insert(name.to_string(), value.to_string());
        }
    }
}

fn number(fields: &HashMap<String, String>, name: &str) -> u64 {
    fields
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
        .parse()
        .expect("a number")
}

#[test]
fn info_reports_every_section_and_its_fields_move_with_the_work() {
    let server = TestServer::start(&["--max-connections", "500"]);
    let mut c = server.connect();
    let (before, sections) = info(&mut c, b"INFO\r\n");
    assert_eq!(
        sections,
        [
            "Server",
            "Clients",
            "Memory",
            "Stats",
            "Supervision",
            "Threads",
            "Keyspace"
        ]
    );
    assert_eq!(number(&before, "event_loops_active"), 1);
    assert_eq!(number(&before, "migrations"), 0);
    assert_eq!(before["event_loop_0"], "clients=1");
    assert_eq!(before["mode"], "kv");
    assert_eq!(number(&before, "tcp_port"), u64::from(server.port()));
    assert_eq!(number(&before, "maxclients"), 500);
    assert_eq!(number(&before, "connected_clients"), 1);
    assert_eq!(number(&before, "keys"), 0);

    ask(&mut c, b"CREATE shop\r\n", b"OK\r\n");
    ask(&mut c, b"PUT shop milk 1\r\n", b"OK\r\n");
    ask(&mut c, b"GET shop milk\r\n", b"1\r\nOK\r\n");
    ask(&mut c, b"GET shop eggs\r\n", b"\r\nOK\r\n");
    let mut other = server.connect();
    ask(&mut other, b"PING\r\n", b"PONG\r\n");
    let (after, _) = info(&mut c, b"info\r\n");
    assert_eq!(number(&after, "buckets"), 1);
    assert_eq!(number(&after, "keys"), 1);
    assert_eq!(
        number(&after, "keyspace_hits") - number(&before, "keyspace_hits"),
        1
    );
    assert_eq!(
        number(&after, "keyspace_misses") - number(&before, "keyspace_misses"),
        1
    );
    // The four requests and the PING, plus the first INFO itself.
    assert_eq!(
        number(&after, "total_commands_processed") - number(&before, "total_commands_processed"),
        6
    );
    assert_eq!(number(&after, "connected_clients"), 2);
    assert!(number(&after, "total_connections_received") >= 2);
    assert!(number(&after, "used_memory") > number(&before, "used_memory"));
}

#[test]
fn info_section_reports_that_section_only_in_any_case() {
    let server = TestServer::start(&["--maxmemory", "1mb"]);
    let mut c = server.connect();
    let (fields, sections) = info(&mut c, b"INFO memory\r\n");
    assert_eq!(sections, ["Memory"]);
    assert_eq!(number(&fields, "maxmemory"), 1 << 20);
    assert_eq!(fields.len(), 2);
    ask(&mut c, b"INFO no-such-section\r\n", b"OK\r\n");
    ask(&mut c, b"INFO a b\r\n", b"UNKNOWN COMMAND\r\n");
}

#[test]
fn supervision_events_and_rejections_show_in_info() {
    let server = TestServer::start(&["--debug-commands", "--max-connections", "3"]);
    let mut c = server.connect();
    let mut victim = server.connect();
    victim.send(b"DEBUG PANIC\r\n");
    victim.expect_eof();
    // The victim's slot is freed after its socket closes: without this wait, the
    // connections below could find the limit reached one too early.
    wait_for_clients(&mut c, 1);
    let mut trigger = server.connect();
    ask(&mut trigger, b"DEBUG ACCEPTOR-PANIC\r\n", b"OK\r\n");
    server.wait_for_log("restarting acceptor", PATIENCE);
    let second = server.connect();
    let mut refused = server.connect();
    refused.expect(b"ERROR too many connections\r\n");
    // Free a slot for the web page, and wait until the server has seen it go.
    drop(second);
    wait_for_clients(&mut c, 2);
    let mut http = server.connect();
    http.send(b"POST / HTTP/1.1\r\n");
    http.expect_eof();
    let (fields, _) = info(&mut c, b"INFO\r\n");
    assert_eq!(number(&fields, "client_panics"), 1);
    assert_eq!(number(&fields, "acceptor_restarts"), 1);
    // Over the limit, and the web page's request.
    assert_eq!(number(&fields, "rejected_connections"), 2);
}

/// Waits until the server counts at most `n` connected clients.
fn wait_for_clients(c: &mut Client, n: u64) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while number(&info(c, b"INFO clients\r\n").0, "connected_clients") > n {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn durable_mode_adds_persistence() {
    let dir = common::temp_dir("info");
    let server = TestServer::start(&["--data-dir", dir.path().to_str().expect("utf-8")]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    c.send(b"PUT b k1 v\r\nPUT b k2 v\r\nPUT b k3 v\r\n");
    c.expect(b"OK\r\nOK\r\nOK\r\n");
    let (fields, sections) = info(&mut c, b"INFO persistence\r\n");
    assert_eq!(sections, ["Persistence"]);
    assert_eq!(fields["fsync"], "always");
    let commits = number(&fields, "commits");
    assert!(
        (2..=4).contains(&commits),
        "{commits} commits for 4 writes, 3 pipelined"
    );
    assert_eq!(number(&fields, "write_errors"), 0);
}

#[test]
fn commandstats_and_errorstats_come_with_info_all_or_by_name() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"GET nowhere k\r\n", b"NOT FOUND\r\n");
    ask(&mut c, b"GET nowhere k\r\n", b"NOT FOUND\r\n");
    let (fields, sections) = info(&mut c, b"INFO commandstats\r\n");
    assert_eq!(sections, ["Commandstats"]);
    assert_eq!(fields["cmdstat_get"], "calls=2");
    assert_eq!(fields["cmdstat_put"], "calls=0");
    let (fields, sections) = info(&mut c, b"INFO ALL\r\n");
    assert_eq!(sections.last().map(String::as_str), Some("Errorstats"));
    assert_eq!(fields["errorstat_not_found"], "count=2");
    // Both INFOs, this one included: a command is counted before it runs.
    assert_eq!(fields["cmdstat_info"], "calls=2");
}

#[test]
fn echo_mode_echoes_info() {
    let server = TestServer::echo(&[]);
    server.connect().echo(b"INFO\r\n");
}
