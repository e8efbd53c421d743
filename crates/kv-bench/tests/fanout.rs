//! Fan-out mode against real servers: a kv-server in this process (line-server's `serve`
//! with KV mode over the in-memory store) and a `redis-server` this test starts on a free
//! port. Every check is a count — every subscriber got one event per acknowledged write,
//! nothing wrong, nobody dropped — never a time.
//!
//! `redis-server` comes from Debian's `redis-server` package (`.ci/run` installs it);
//! without it the Redis test fails, saying so.

pub mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::KvServer;
use kv_bench::fanout::{self, FanoutConfig};
use kv_bench::stats::{FanoutReport, Record};
use kv_bench::workload::Proto;
use line_server::ServerConfig;

/// A `redis-server` without persistence on a free loopback port; killed (by its PID, the
/// only process this test starts) when dropped.
struct RedisServer {
    addr: SocketAddr,
    child: Child,
}

impl RedisServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server (Debian: apt-get install redis-server): {e}")
            });
        let server = Self {
            addr: ([127, 0, 0, 1], port).into(),
            child,
        };
        // Waiting for it to listen is not a timing assertion: it fails only if Redis never
        // comes up.
        for _ in 0..200 {
            if TcpStream::connect(server.addr).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {}", server.addr);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 3 writers × 4 in flight → 20 subscribers, on 2 generator threads, for 0.3 s.
fn config(addr: SocketAddr, proto: Proto) -> FanoutConfig {
    FanoutConfig {
        label: "test".into(),
        addr,
        proto,
        writers: 3,
        pipeline: 4,
        rate: None,
        subscribers: 20,
        slow_subscribers: 0,
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(50),
        value_size: 16,
        threads: 2,
        server_pid: None,
        tls: None,
        password: None,
    }
}

/// Every subscriber completed and got exactly one event per acknowledged write; nothing
/// wrong, nobody dropped.
fn assert_every_subscriber_got_every_event(report: &FanoutReport) {
    assert!(report.writes_acked > 0, "{report:?}");
    assert_eq!(
        report.subscribers_complete, report.subscribers,
        "{report:?}"
    );
    assert_eq!(
        (
            report.events_missing,
            report.events_extra,
            report.writes_unanswered
        ),
        (0, 0, 0),
        "{report:?}"
    );
    assert_eq!((report.errors, report.conn_errors), (0, 0), "{report:?}");
    assert_eq!(report.dropped_subscribers, 0, "{report:?}");
    assert!(
        report.events <= report.writes_acked * report.subscribers as u64,
        "{report:?}"
    );
}

#[test]
fn every_kv_subscriber_gets_every_write_flat_out() {
    let server = KvServer::start(ServerConfig::default(), None);
    let report = fanout::run(config(server.addr, Proto::Kv)).expect("run");
    assert_every_subscriber_got_every_event(&report);
}

#[test]
fn every_kv_subscriber_gets_every_write_at_a_rate_with_padded_values() {
    let server = KvServer::start(ServerConfig::default(), None);
    let report = fanout::run(FanoutConfig {
        rate: Some(2_000.0),
        value_size: 100,
        writers: 1,
        pipeline: 1,
        threads: 1,
        ..config(server.addr, Proto::Kv)
    })
    .expect("run");
    assert_every_subscriber_got_every_event(&report);
    assert_eq!(report.rate, Some(2_000.0));
}

#[test]
fn every_redis_subscriber_gets_every_publish() {
    let server = RedisServer::start();
    let report = fanout::run(config(server.addr, Proto::Redis)).expect("run");
    assert_every_subscriber_got_every_event(&report);
}

#[test]
fn slow_subscribers_are_counted_apart_and_the_others_still_get_everything() {
    let server = KvServer::start(ServerConfig::default(), None);
    let report = fanout::run(FanoutConfig {
        slow_subscribers: 2,
        // Its own pid stands in for the server's (the server runs in this process).
        server_pid: Some(std::process::id()),
        ..config(server.addr, Proto::Kv)
    })
    .expect("run");
    assert_every_subscriber_got_every_event(&report);
    assert_eq!(report.slow_subscribers, 2);
    assert!(report.dropped_slow_subscribers <= 2, "{report:?}");
    let (before, peak) = (report.server_rss_before_kib, report.server_rss_peak_kib);
    assert!(
        before.is_some_and(|b| peak.is_some_and(|p| p >= b)),
        "{report:?}"
    );
    assert!(
        report.cpu.is_some_and(|c| c.server_cpu_secs.is_some()),
        "{report:?}"
    );
}

#[test]
fn a_fanout_report_is_one_json_line_that_reads_back() {
    let server = KvServer::start(ServerConfig::default(), None);
    let report = fanout::run(FanoutConfig {
        subscribers: 2,
        ..config(server.addr, Proto::Kv)
    })
    .expect("run");
    let line = serde_json::to_string(&Record::Fanout(report.clone())).expect("JSON");
    assert!(line.starts_with(r#"{"kind":"fanout""#), "{line}");
    let Record::Fanout(back) = serde_json::from_str(&line).expect("reads back") else {
        panic!("not a fan-out record: {line}");
    };
    // Counts exactly; floats to their last digits (serde_json may round the last bit).
    assert_eq!(
        (
            back.writes_acked,
            back.events,
            back.subscribers_complete,
            back.events_missing
        ),
        (
            report.writes_acked,
            report.events,
            report.subscribers_complete,
            0
        )
    );
    assert!((back.events_per_sec - report.events_per_sec).abs() <= 1e-6 * report.events_per_sec);
    assert!(
        report.table().contains("events missing 0"),
        "{}",
        report.table()
    );
}

#[test]
fn a_server_that_is_not_there_is_an_error_not_a_panic() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let error = fanout::run(config(closed, Proto::Kv)).expect_err("nothing listens");
    assert!(error.contains("cannot connect"), "{error}");
}
