//! Subscriptions (SPEC §14, PROTOCOL.md "Subscriptions") over the real binary: the Elixir
//! guide's own test, then every rule a subscriber lives by.

pub mod common;

use std::io::Read;
use std::thread;
use std::time::{Duration, Instant};

use common::{ask, Client, TestServer, PATIENCE};

/// `COUNT SUBSCRIPTIONS bucket`'s number, through `client`.
fn subscriptions(client: &mut Client, bucket: &str) -> u64 {
    client.send(format!("COUNT SUBSCRIPTIONS {bucket}\r\n").as_bytes());
    let line = client.read_line();
    client.expect(b"OK\r\n");
    let number = String::from_utf8(line).expect("text");
    number.trim_end().parse().expect("a number")
}

/// Waits until `bucket` has `count` subscribers, as another client sees it.
fn wait_for_subscribers(server: &TestServer, bucket: &str, count: u64) {
    let mut other = server.connect();
    let deadline = Instant::now() + PATIENCE;
    while subscriptions(&mut other, bucket) != count {
        assert!(
            Instant::now() < deadline,
            "{bucket}: never {count} subscribers"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The guide's test (`lib/elixir/pages/mix-and-otp/genservers.md`), its subscriber's bytes
/// exactly: subscribe on one socket, write on another, read `milk SET TO 3` then
/// `milk DELETED`. The writer waits until the subscription is in place (SUBSCRIBE has no
/// reply to wait for).
#[test]
fn the_guides_subscriber_sees_the_other_sockets_writes() {
    let server = TestServer::start(&[]);
    let mut socket = server.connect();
    ask(&mut socket, b"CREATE shopping\r\n", b"OK\r\n");
    socket.send(b"SUBSCRIBE shopping\r\n");
    wait_for_subscribers(&server, "shopping", 1);
    let mut other = server.connect();
    ask(&mut other, b"PUT shopping milk 3\r\n", b"OK\r\n");
    socket.expect(b"milk SET TO 3\r\n");
    ask(&mut other, b"DELETE shopping milk\r\n", b"OK\r\n");
    socket.expect(b"milk DELETED\r\n");
}

#[test]
fn after_a_pong_no_change_is_missed_and_unsubscribe_ends_the_events() {
    let server = TestServer::start(&[]);
    let mut subscriber = server.connect();
    ask(&mut subscriber, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut subscriber, b"SUBSCRIBE b\r\nPING\r\n", b"PONG\r\n");
    let mut writer = server.connect();
    ask(
        &mut writer,
        b"PUT b k 1\r\nPUT b k 2\r\nDELETE b gone\r\n",
        b"OK\r\nOK\r\nOK\r\n",
    );
    subscriber.expect(b"k SET TO 1\r\nk SET TO 2\r\ngone DELETED\r\n");
    ask(
        &mut subscriber,
        b"GET b k\r\n",
        b"ERROR subscribed: only PING, QUIT and UNSUBSCRIBE until UNSUBSCRIBE\r\n",
    );
    ask(&mut subscriber, b"UNSUBSCRIBE\r\n", b"OK\r\n");
    ask(&mut writer, b"PUT b k 3\r\n", b"OK\r\n");
    // Served again, and no event came between.
    ask(&mut subscriber, b"GET b k\r\n", b"3\r\nOK\r\n");
}

#[test]
fn subscribing_to_a_missing_bucket_is_not_found_and_changes_nothing() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"SUBSCRIBE nope\r\n", b"NOT FOUND\r\n");
    ask(&mut c, b"COUNT SUBSCRIPTIONS nope\r\n", b"NOT FOUND\r\n");
    ask(
        &mut c,
        b"CREATE b\r\nPUT b k v\r\nGET b k\r\n",
        b"OK\r\nOK\r\nv\r\nOK\r\n",
    );
}

#[test]
fn a_subscriber_is_no_longer_counted_once_it_leaves_in_any_way() {
    let server = TestServer::start(&[]);
    let mut counter = server.connect();
    ask(&mut counter, b"CREATE b\r\n", b"OK\r\n");
    let mut subscribers: Vec<Client> = (0..3).map(|_| server.connect()).collect();
    for s in &mut subscribers {
        ask(s, b"SUBSCRIBE b\r\nPING\r\n", b"PONG\r\n");
    }
    assert_eq!(subscriptions(&mut counter, "b"), 3);
    let mut quitting = subscribers.pop().expect("three");
    ask(&mut quitting, b"QUIT\r\n", b"OK\r\n");
    quitting.expect_closed();
    wait_for_subscribers(&server, "b", 2);
    let mut leaving = subscribers.pop().expect("two");
    ask(&mut leaving, b"UNSUBSCRIBE\r\n", b"OK\r\n");
    wait_for_subscribers(&server, "b", 1);
    subscribers.pop().expect("one").reset();
    wait_for_subscribers(&server, "b", 0);
}

#[test]
fn a_subscriber_is_exempt_from_the_idle_timeout() {
    let server = TestServer::start(&["--idle-timeout-secs", "1"]);
    let mut subscriber = server.connect();
    ask(
        &mut subscriber,
        b"CREATE b\r\nSUBSCRIBE b\r\nPING\r\n",
        b"OK\r\nPONG\r\n",
    );
    let mut idle = server.connect();
    thread::sleep(Duration::from_millis(2500));
    idle.expect_closed();
    ask(&mut server.connect(), b"PUT b k v\r\n", b"OK\r\n");
    subscriber.expect(b"k SET TO v\r\n");
}

#[test]
fn a_slow_subscriber_is_disconnected_and_counted_and_no_one_else_is_harmed() {
    let server = TestServer::start(&["--subscriber-buffer-bytes", "64kb"]);
    let mut slow = server.connect();
    ask(
        &mut slow,
        b"CREATE b\r\nSUBSCRIBE b\r\nPING\r\n",
        b"OK\r\nPONG\r\n",
    );
    let mut keeping_up = server.connect();
    ask(&mut keeping_up, b"SUBSCRIBE b\r\nPING\r\n", b"PONG\r\n");
    let mut writer = server.connect();
    let value = "v".repeat(32 * 1024);
    let event = format!("k SET TO {value}\r\n");
    // Far more than the socket buffers and the limit hold: `slow` never reads.
    let mut closed = false;
    for _ in 0..2000 {
        ask(
            &mut writer,
            format!("PUT b k {value}\r\n").as_bytes(),
            b"OK\r\n",
        );
        keeping_up.expect(event.as_bytes());
        if server.logs_containing("subscriber disconnected").len() == 1 {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow subscriber was never disconnected");
    // Its connection is closed: what it reads now ends (the last event may be cut short).
    let mut rest = Vec::new();
    let _ = slow.stream().read_to_end(&mut rest);
    assert!(
        rest.starts_with(event.as_bytes()),
        "it got events before it was cut"
    );
    writer.send(b"INFO stats\r\n");
    let info = writer.read_report();
    assert!(info.contains("slow_subscribers_disconnected:1"), "{info}");
    ask(&mut writer, b"PUT b k small\r\n", b"OK\r\n");
    keeping_up.expect(b"k SET TO small\r\n");
}

#[test]
fn info_counts_subscribers_and_events_sent() {
    let server = TestServer::start(&[]);
    let mut subscriber = server.connect();
    ask(
        &mut subscriber,
        b"CREATE b\r\nSUBSCRIBE b\r\nPING\r\n",
        b"OK\r\nPONG\r\n",
    );
    let mut c = server.connect();
    ask(&mut c, b"PUT b k 1\r\nDELETE b k\r\n", b"OK\r\nOK\r\n");
    subscriber.expect(b"k SET TO 1\r\nk DELETED\r\n");
    c.send(b"INFO\r\n");
    let info = c.read_report();
    assert!(info.contains("subscribers:1\r\n"), "{info}");
    assert!(info.contains("events_sent:2\r\n"), "{info}");
}

#[test]
fn subscribe_is_behind_the_password_and_echo_mode_echoes_it() {
    let server = TestServer::start(&["--requirepass", "s3cret"]);
    let mut c = server.connect();
    ask(
        &mut c,
        b"SUBSCRIBE b\r\n",
        b"ERROR NOAUTH authentication required\r\n",
    );
    let echo = TestServer::echo(&[]);
    echo.connect().echo(b"SUBSCRIBE b\r\n");
}

#[test]
fn in_durable_mode_events_follow_the_writes_to_disk() {
    let dir = common::temp_dir("subscribe");
    let server = TestServer::start(&["--data-dir", dir.path().to_str().expect("utf-8")]);
    let mut subscriber = server.connect();
    ask(
        &mut subscriber,
        b"CREATE b\r\nSUBSCRIBE b\r\nPING\r\n",
        b"OK\r\nPONG\r\n",
    );
    let mut writer = server.connect();
    ask(
        &mut writer,
        b"PUT b k 1\r\nPUT b j 2\r\nDELETE b k\r\n",
        b"OK\r\nOK\r\nOK\r\n",
    );
    subscriber.expect(b"k SET TO 1\r\nj SET TO 2\r\nk DELETED\r\n");
}
