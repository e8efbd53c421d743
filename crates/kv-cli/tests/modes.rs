//! The operator modes, as redis-cli's: `--latency` and `--stat` print until interrupted
//! and then exit 0.

pub mod common;

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;

use common::{code, kv_cli, run, stdout, Running, TestServer};

/// Reads lines of `out` until `count` have come; returns them.
fn lines(out: &mut BufReader<ChildStdout>, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).expect("a line of output");
            line
        })
        .collect()
}

fn start(port: u16, flags: &[&str]) -> (Running, BufReader<ChildStdout>) {
    let mut command = kv_cli(port);
    command.args(flags);
    let mut running = Running::spawn(command);
    let out = BufReader::new(running.0.stdout.take().expect("stdout piped"));
    (running, out)
}

#[test]
fn latency_prints_round_trips_and_stops_on_sigint_with_exit_0() {
    let server = TestServer::start();
    let (running, mut out) = start(server.port, &["--latency"]);
    let first = lines(&mut out, 1).remove(0);
    assert!(first.starts_with("min: "), "{first}");
    assert!(first.contains("samples)"), "{first}");
    running.interrupt();
    let output = running.finish();
    assert_eq!(code(&output), 0);
    // The last figures are printed on the way out.
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    assert!(rest.contains("min: "), "{rest:?}");
    server.stop();
}

#[test]
fn stat_prints_a_header_then_a_line_per_interval_and_stops_on_sigint() {
    let server = TestServer::start();
    let (running, mut out) = start(server.port, &["--stat", "-i", "0.1"]);
    let got = lines(&mut out, 3);
    assert!(got[0].starts_with("keys"), "{got:?}");
    assert!(got[0].contains("commands/s"), "{got:?}");
    // keys, memory, clients (this one), commands, and no rate on the first line.
    let first: Vec<&str> = got[1].split_whitespace().collect();
    assert_eq!((first[0], first[2], first[4]), ("0", "1", "-"), "{got:?}");
    assert_eq!(got[2].split_whitespace().count(), 5, "{got:?}");
    running.interrupt();
    let output = running.finish();
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    server.stop();
}

#[test]
fn latency_without_a_server_exits_2() {
    let server = TestServer::start();
    let port = server.port;
    server.stop();
    let (running, _out) = start(port, &["--latency"]);
    let output = running.finish();
    assert_eq!(code(&output), 2);
}

/// SPEC §16: `kv-cli SUBSCRIBE bucket` prints each event as it arrives, until interrupted.
#[test]
fn subscribe_prints_each_event_as_the_server_sends_it_until_sigint() {
    let one_shot = |port: u16, words: &[&str]| {
        let mut command = kv_cli(port);
        command.args(words);
        run(command, b"")
    };
    let server = TestServer::start();
    let created = one_shot(server.port, &["CREATE", "shop"]);
    assert_eq!(code(&created), 0);
    let (running, mut out) = start(server.port, &["SUBSCRIBE", "shop"]);
    // Written until the first event shows: the subscription may take a moment.
    let mut first = String::new();
    let writer = std::thread::spawn({
        let port = server.port;
        move || {
            for i in 0..200 {
                let put = one_shot(port, &["PUT", "shop", "milk", &i.to_string()]);
                assert_eq!(code(&put), 0);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    });
    out.read_line(&mut first).expect("an event");
    assert!(first.starts_with("milk SET TO "), "{first:?}");
    running.interrupt();
    let output = running.finish();
    assert_eq!(code(&output), 0);
    let _ = writer.join();
    let missing = one_shot(server.port, &["SUBSCRIBE", "nope"]);
    assert_eq!(
        (code(&missing), stdout(&missing).as_str()),
        (0, "NOT FOUND\n")
    );
    server.stop();
}
