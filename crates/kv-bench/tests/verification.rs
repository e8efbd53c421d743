//! kv-bench against tiny in-test servers: right replies are counted as operations, wrong
//! ones as errors, a run that names its server reports the server's cost per request, and
//! an idle run counts its connections.

pub mod common;

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use kv_bench::affinity;
use kv_bench::idle::{self, IdleConfig};
use kv_bench::load;
use kv_bench::stats::Record;
use kv_bench::workload::Proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use common::short_load;

/// How an in-test server answers one line.
type Answer = fn(&[u8], &mut Vec<u8>);

/// A line server on its own thread and runtime, listening on port 0; stopped (and its
/// thread joined) when dropped.
struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(answer: Answer) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
                addr_tx
                    .send(listener.local_addr().expect("local addr"))
                    .expect("send addr");
                let accept = async {
                    loop {
                        if let Ok((stream, _)) = listener.accept().await {
                            tokio::spawn(serve(stream, answer));
                        }
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here ends every connection task.
        });
        let addr = addr_rx.recv().expect("server address");
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(mut stream: TcpStream, answer: Answer) {
    let mut input = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&chunk[..n]);
        while let Some(end) = input.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = input.drain(..=end).collect();
            answer(&line, &mut out);
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

fn echo(line: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(line);
}

/// Echoes with the first byte changed: every reply has the right length and is wrong.
fn corrupting_echo(line: &[u8], out: &mut Vec<u8>) {
    out.push(b'#');
    out.extend_from_slice(&line[1..]);
}

/// A KV server that has forgotten every value: `OK` to CREATE and PUT (right), and a
/// well-formed GET reply with the wrong value.
fn wrong_values(line: &[u8], out: &mut Vec<u8>) {
    if line.starts_with(b"GET ") {
        out.extend_from_slice(b"not-the-value\r\nOK\r\n");
    } else {
        out.extend_from_slice(b"OK\r\n");
    }
}

#[test]
fn right_replies_are_counted_as_operations_with_no_errors() {
    let server = TestServer::start(echo);
    let report = load::run(short_load(server.addr, Proto::Echo)).expect("run");
    assert!(report.ops > 0, "{report:?}");
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(report.latency.p50_us > 0.0 && report.latency.max_us >= report.latency.p99_us);
}

#[test]
fn a_run_naming_its_server_records_cpu_and_context_switches_per_request() {
    let server = TestServer::start(echo);
    // The in-test server lives in this process, so this process is "the server".
    let mut c = short_load(server.addr, Proto::Echo);
    c.server_pid = Some(std::process::id());
    let cpus = affinity::allowed_cpus(None).expect("Linux /proc");
    let last = cpus.cpus()[cpus.count() - 1];
    c.pin = Some(last.to_string().parse().expect("a CPU list"));
    let report = load::run(c).expect("run");
    assert!(report.ops > 0 && report.errors == 0, "{report:?}");
    let line = serde_json::to_string(&Record::Load(report)).expect("JSON");
    let json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert!(json["server_ns_per_request"].as_f64().is_some(), "{line}");
    assert!(
        json["server_ctx_switches_per_request"].as_f64().is_some(),
        "{line}"
    );
    assert!(json["generator_bound"].is_boolean(), "{line}");
    assert_eq!(json["pin"], last.to_string(), "{line}");
    assert_eq!(json["server_cpus"], cpus.to_string(), "{line}");
    assert!(json["cpu"]["server_cpu_secs"].as_f64().is_some(), "{line}");
    assert!(
        json["cpu"]["server_ctx_switches"].as_u64().is_some(),
        "{line}"
    );
    // The fields older results files carry are all still there.
    for old in ["label", "ops_per_sec", "latency", "threads", "errors"] {
        assert!(!json[old].is_null(), "{old}: {line}");
    }
}

#[test]
fn a_pin_outside_the_allowed_cpus_stops_the_run_before_any_load() {
    let server = TestServer::start(echo);
    let mut c = short_load(server.addr, Proto::Echo);
    c.pin = Some("1023".parse().expect("a CPU list"));
    let message = load::run(c).expect_err("CPU 1023 is not on this machine");
    assert!(message.contains("--pin 1023"), "{message}");
}

#[test]
fn a_wrong_reply_is_counted_as_an_error_not_an_operation() {
    let server = TestServer::start(corrupting_echo);
    let report = load::run(short_load(server.addr, Proto::Echo)).expect("run");
    assert_eq!(report.ops, 0, "{report:?}");
    assert!(report.errors > 0, "{report:?}");
}

#[test]
fn kv_gets_answered_with_the_wrong_value_are_errors_while_puts_succeed() {
    let server = TestServer::start(wrong_values);
    let report = load::run(short_load(server.addr, Proto::Kv)).expect("preload succeeds");
    assert!(report.errors > 0, "{report:?}");
    assert!(report.ops > 0, "the PUTs are right: {report:?}");
}

#[test]
fn a_preload_that_is_refused_stops_the_run_with_a_message() {
    let server = TestServer::start(corrupting_echo);
    let outcome = load::run(short_load(server.addr, Proto::Redis));
    let message = outcome.expect_err("preload must fail");
    assert!(message.contains("preload"), "{message}");
}

#[test]
fn a_server_that_is_not_there_yields_connection_errors_not_a_hang() {
    let addr = {
        let server = TestServer::start(echo);
        server.addr
    };
    let mut c = short_load(addr, Proto::Echo);
    c.duration = Duration::from_millis(100);
    let report = load::run(c).expect("run");
    assert_eq!(report.ops, 0);
    assert!(report.conn_errors > 0, "{report:?}");
}

#[test]
fn idle_mode_opens_and_pings_every_connection() {
    let server = TestServer::start(echo);
    let report = idle::run(IdleConfig {
        label: "test".into(),
        addr: server.addr,
        proto: Proto::Echo,
        conns: 50,
        server_pid: Some(std::process::id()),
        settle: Duration::from_millis(10),
        ping: true,
        tls: None,
        password: None,
    })
    .expect("idle run");
    assert_eq!((report.open, report.errors), (50, 0), "{report:?}");
    assert!(report.bytes_per_conn.is_some());
}
