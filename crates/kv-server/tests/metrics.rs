//! The metrics endpoint (SPEC §11, docs/METRICS.md, "Metrics"): `/metrics` negotiates its format as
//! Prometheus' client libraries do (OpenMetrics when asked for, else the text format 0.0.4
//! that `promtool check metrics` accepts without a complaint), both valid, with counters
//! that move with the work; `/livez`, `/readyz` (503 once a graceful shutdown starts), 404
//! elsewhere; a slow, huge or extra request is cut while KV clients go on being served.

pub mod common;

use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::http::{self, get, HttpReply};
use common::openmetrics::{self, Exposition, Format};
use common::{ask, TestServer, PATIENCE};

/// The `Accept` header Prometheus 2.x sends with every scrape.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// The content type of each format, as Prometheus' Go client writes it.
const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Starts `kv-server --port 0 --metrics-port 0 <args>`; returns it and the metrics address.
fn start(args: &[&str]) -> (TestServer, SocketAddr) {
    let server = TestServer::builder()
        .args(["--metrics-port", "0"])
        .args(args)
        .start();
    let addr = common::http::metrics_addr(&server);
    (server, addr)
}

/// `method /metrics`, with an `Accept: accept` header if there is one.
fn ask_metrics(addr: SocketAddr, method: &str, accept: Option<&str>) -> HttpReply {
    let mut stream = http::open(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    let head =
        format!("{method} /metrics HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send the request");
    let reply = http::read_to_end(&mut stream).expect("read the reply");
    http::parse(&reply).unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"))
}

/// The reply's `Content-Type`.
fn content_type(reply: &HttpReply) -> &str {
    reply
        .head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no content type: {}", reply.head))
}

/// GET `/metrics` with `accept`, expecting `format`: its content type, its body valid in
/// that format and, for the text format, accepted by promtool as it is.
fn scrape_with(addr: SocketAddr, accept: Option<&str>, format: Format) -> (String, Exposition) {
    let reply = ask_metrics(addr, "GET", accept);
    assert_eq!(reply.status, 200, "{reply:?}");
    let want = match format {
        Format::OpenMetrics => OPENMETRICS_TYPE,
        Format::Text => TEXT_TYPE,
    };
    assert_eq!(content_type(&reply), want, "Accept: {accept:?}");
    let exposition = openmetrics::check_as(&reply.body, format)
        .unwrap_or_else(|e| panic!("/metrics is not valid {format:?}: {e}\n{}", reply.body));
    if format == Format::Text {
        promtool_accepts(&reply.body);
    }
    (reply.body, exposition)
}

/// `/metrics` in `format`, asked for as Prometheus asks (OpenMetrics) or with no `Accept`
/// header (the text format), checked.
fn scrape(addr: SocketAddr, format: Format) -> Exposition {
    let accept = match format {
        Format::OpenMetrics => Some(PROMETHEUS_ACCEPT),
        Format::Text => None,
    };
    scrape_with(addr, accept, format).1
}

/// `promtool check metrics` on `text` as served: exit 0 and not a line of complaint. On a
/// machine without promtool (Debian: `prometheus`) it says so and checks nothing; CI
/// installs it.
fn promtool_accepts(text: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut promtool = match spawned {
        Ok(promtool) => promtool,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            println!("note: promtool is not installed; /metrics checked by the test's parser only");
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    let mut stdin = promtool.stdin.take().expect("promtool's stdin");
    stdin.write_all(text.as_bytes()).expect("write to promtool");
    drop(stdin);
    let output = promtool.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}): {said}\n{text}",
        output.status
    );
}

#[test]
fn metrics_negotiate_their_format_as_prometheus_client_libraries_do() {
    let (_server, addr) = start(&[]);
    let cases = [
        (None, Format::Text),
        (Some("text/plain"), Format::Text),
        (Some("*/*"), Format::Text),
        (
            Some("text/html,application/xhtml+xml,*/*;q=0.8"),
            Format::Text,
        ),
        (Some(PROMETHEUS_ACCEPT), Format::OpenMetrics),
        (Some("Application/OpenMetrics-Text"), Format::OpenMetrics),
    ];
    let mut samples = Vec::new();
    for (accept, format) in cases {
        let (body, exposition) = scrape_with(addr, accept, format);
        assert_eq!(body.ends_with("# EOF\n"), format == Format::OpenMetrics);
        samples.push(series(&exposition));
        // HEAD: the same headers, no body.
        let head = ask_metrics(addr, "HEAD", accept);
        assert_eq!(head.status, 200, "{head:?}");
        let get = ask_metrics(addr, "GET", accept);
        assert_eq!(
            content_type(&head),
            content_type(&get),
            "Accept: {accept:?}"
        );
        assert_eq!(head.body, "", "Accept: {accept:?}");
    }
    // The same series in both formats.
    assert!(samples.windows(2).all(|w| w[0] == w[1]), "{samples:#?}");
}

/// The series of `exposition`, a bucket's bound read as a number: the text format writes
/// bounds as Go does (`le="1e-05"`, `le="1"`), OpenMetrics in its canonical form
/// (`le="0.00001"`, `le="1.0"`).
fn series(exposition: &Exposition) -> Vec<String> {
    let mut series: Vec<String> = exposition
        .samples
        .keys()
        .map(|key| match key.split_once("{le=\"") {
            Some((name, rest)) => {
                let bound = rest.strip_suffix("\"}").expect("le is the only label");
                let bound: f64 = match bound {
                    "+Inf" => f64::INFINITY,
                    b => b.parse().expect("a number"),
                };
                format!("{name}{{le={bound}}}")
            }
            None => key.clone(),
        })
        .collect();
    series.sort();
    series
}

#[test]
fn metrics_are_valid_and_move_with_the_work() {
    let (server, addr) = start(&[]);
    let before = [
        scrape(addr, Format::Text),
        scrape(addr, Format::OpenMetrics),
    ];
    let mut c = server.connect();
    ask(&mut c, b"CREATE shop\r\n", b"OK\r\n");
    c.send(b"PUT shop milk 1\r\nGET shop milk\r\nGET shop eggs\r\nGET nowhere x\r\nBOGUS\r\n");
    c.expect(b"OK\r\n1\r\nOK\r\n\r\nOK\r\nNOT FOUND\r\nUNKNOWN COMMAND\r\n");
    let after = [
        scrape(addr, Format::Text),
        scrape(addr, Format::OpenMetrics),
    ];
    // Both formats show the same work.
    for (before, after) in before.iter().zip(&after) {
        the_work_shows(before, after);
    }
    let histogram = &after[1].families["kv_command_duration_seconds"];
    assert_eq!(histogram.kind, "histogram");
    assert_eq!(after[0].families["kv_commands_total"].kind, "counter");
    assert_eq!(after[1].families["kv_commands"].kind, "counter");
}

/// What the work of `metrics_are_valid_and_move_with_the_work` changed, scrape to scrape.
fn the_work_shows(before: &Exposition, after: &Exposition) {
    let grew = |key: &str| after.value(key) - before.value(key);
    assert_eq!(grew(r#"kv_commands_total{verb="get"}"#), 3.0);
    assert_eq!(grew(r#"kv_commands_total{verb="put"}"#), 1.0);
    assert_eq!(grew(r#"kv_command_errors_total{kind="not_found"}"#), 1.0);
    assert_eq!(
        grew(r#"kv_command_errors_total{kind="unknown_command"}"#),
        1.0
    );
    assert_eq!(grew("kv_keyspace_hits_total"), 1.0);
    assert_eq!(grew("kv_keyspace_misses_total"), 1.0);
    assert_eq!(grew("kv_command_duration_seconds_count"), 6.0);
    assert_eq!(
        grew(r#"kv_command_duration_seconds_bucket{le="+Inf"}"#),
        6.0
    );
    // What the client sent and got back since the first scrape, byte for byte.
    let sent = "PUT shop milk 1\r\nGET shop milk\r\nGET shop eggs\r\nGET nowhere x\r\nBOGUS\r\n";
    let got = "OK\r\n1\r\nOK\r\n\r\nOK\r\nNOT FOUND\r\nUNKNOWN COMMAND\r\n";
    let created = ("CREATE shop\r\n".len() + "OK\r\n".len()) as f64;
    assert_eq!(
        grew("kv_net_input_bytes_total") + grew("kv_net_output_bytes_total"),
        created + (sent.len() + got.len()) as f64
    );
    assert_eq!(grew("kv_net_output_bytes_total"), (4 + got.len()) as f64);
    assert_eq!(after.value("kv_keys"), 1.0);
    assert_eq!(after.value("kv_connected_clients"), 1.0);
    // A light load: one loop takes the clients.
    assert_eq!(after.value("kv_event_loops_active"), 1.0);
    assert_eq!(after.value("kv_migrations_total"), 0.0);
    assert_eq!(after.value(r#"kv_event_loop_clients{loop="0"}"#), 1.0);
    assert!(after.value("kv_process_resident_memory_bytes") > 0.0);
    assert!(after.value("kv_process_open_fds") > 0.0);
}

#[test]
fn clients_over_the_limit_are_counted_by_reason() {
    let (server, addr) = start(&["--max-connections", "1"]);
    let mut served = server.connect();
    ask(&mut served, b"PING\r\n", b"PONG\r\n");
    let mut refused = server.connect();
    refused.expect(b"ERROR too many connections\r\n");
    let metrics = scrape(addr, Format::OpenMetrics);
    assert_eq!(
        metrics.value(r#"kv_rejected_connections_total{reason="limit"}"#),
        1.0
    );
    assert_eq!(
        metrics.value(r#"kv_rejected_connections_total{reason="protected_mode"}"#),
        0.0
    );
    assert_eq!(
        metrics.value(r#"kv_rejected_connections_total{reason="cross_protocol"}"#),
        0.0
    );
}

#[test]
fn durable_mode_adds_commit_counters() {
    let dir = common::temp_dir("metrics");
    let (server, addr) = start(&["--data-dir", dir.path().to_str().expect("utf-8")]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b k v\r\n", b"OK\r\n");
    let metrics = scrape(addr, Format::Text);
    assert!(metrics.value("kv_durable_commits_total") >= 2.0);
    assert!(metrics.value("kv_durable_syncs_total") >= 1.0);
    // Two frames past the journal's header; a new write makes it longer.
    let journal = metrics.value("kv_durable_journal_bytes");
    assert!(journal > 0.0, "{journal}");
    ask(&mut c, b"PUT b k2 v2\r\n", b"OK\r\n");
    let later = scrape(addr, Format::OpenMetrics);
    assert!(later.value("kv_durable_journal_bytes") > journal);
    assert_eq!(metrics.value("kv_durable_write_errors_total"), 0.0);
    assert_eq!(
        metrics.value("kv_durable_commit_duration_seconds_count"),
        metrics.value("kv_durable_commits_total")
    );
}

#[test]
fn echo_mode_serves_the_machinerys_metrics() {
    let (_server, addr) = start(&["--mode", "echo"]);
    let text = scrape(addr, Format::Text);
    assert!(text.families.contains_key("kv_connections_received_total"));
    assert!(!text.families.contains_key("kv_commands_total"));
    let openmetrics = scrape(addr, Format::OpenMetrics);
    assert!(openmetrics.families.contains_key("kv_connections_received"));
    assert!(!openmetrics.families.contains_key("kv_commands"));
}

#[test]
fn health_endpoints_answer_and_anything_else_is_404() {
    let (_server, addr) = start(&[]);
    assert_eq!(get(addr, "/livez").status, 200);
    assert_eq!(get(addr, "/readyz").status, 200);
    assert_eq!(get(addr, "/").status, 404);
    assert_eq!(get(addr, "/metrics/extra").status, 404);
    // Only GET (and HEAD) are served: another method is "anything else".
    let post = http::request(addr, "POST", "/metrics");
    assert_eq!(post.status, 404, "{post:?}");
    let head = http::request(addr, "HEAD", "/livez");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
}

#[test]
fn readyz_says_503_from_the_start_of_a_graceful_shutdown() {
    let (mut server, addr) = start(&["--debug-commands", "--shutdown-timeout-secs", "60"]);
    assert_eq!(get(addr, "/readyz").status, 200);
    // A busy connection keeps the shutdown going while /readyz is asked.
    let mut busy = server.connect();
    ask(&mut busy, b"PING\r\n", b"PONG\r\n");
    busy.send(b"DEBUG SLEEP 5000\r\n");
    thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    server.wait_for_log("shutting down", PATIENCE);
    assert_eq!(get(addr, "/readyz").status, 503);
    assert_eq!(get(addr, "/livez").status, 200);
    busy.expect(b"OK\r\n");
    let status = server.expect_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn a_stalled_request_is_cut_while_clients_are_served() {
    let (server, addr) = start(&[]);
    let mut stalled = http::open(addr).expect("connect to the metrics port");
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nHo")
        .expect("send half a head");
    let mut client = server.connect();
    ask(&mut client, b"PING\r\n", b"PONG\r\n");
    // Cut by the header timeout (hyper may say 408 first): no complete /metrics reply.
    let got = http::read_to_end(&mut stalled).expect("the server closes the stalled request");
    assert!(!got.contains("kv_commands"), "{got}");
    ask(&mut client, b"PING\r\n", b"PONG\r\n");
    assert_eq!(get(addr, "/livez").status, 200);
}

#[test]
fn a_huge_request_is_refused_while_clients_are_served() {
    let (server, addr) = start(&[]);
    let mut huge = http::open(addr).expect("connect to the metrics port");
    let header = format!("X-Filler: {}\r\n", "a".repeat(1000));
    let head = format!("GET /metrics HTTP/1.1\r\n{}\r\n", header.repeat(64));
    // The server may close before it has read everything: a failed write is fine.
    let _ = huge.write_all(head.as_bytes());
    let got = http::read_to_end(&mut huge).unwrap_or_default();
    assert!(!got.contains("kv_commands"), "{got}");
    let mut client = server.connect();
    ask(&mut client, b"PING\r\n", b"PONG\r\n");
    assert_eq!(get(addr, "/livez").status, 200);
}

#[test]
fn connections_beyond_the_limit_are_closed_at_once() {
    let (server, addr) = start(&[]);
    // Four stalled requests take every slot (until the header timeout cuts them).
    let stalled: Vec<_> = (0..4)
        .map(|_| {
            let mut s = http::open(addr).expect("connect");
            s.write_all(b"GET /livez HTTP/1.1\r\n").expect("send");
            s
        })
        .collect();
    // Let the endpoint accept them all before the fifth comes.
    thread::sleep(Duration::from_millis(300));
    let mut fifth = http::open(addr).expect("connect");
    let _ = fifth.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = http::read_to_end(&mut fifth).unwrap_or_default();
    assert!(
        !got.contains("200"),
        "the fifth connection was served: {got}"
    );
    let mut client = server.connect();
    ask(&mut client, b"PING\r\n", b"PONG\r\n");
    drop(stalled);
    // The slots come back once the stalled ones are gone.
    let deadline = std::time::Instant::now() + PATIENCE;
    while http::open(addr)
        .ok()
        .and_then(|mut s| {
            s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
                .ok()?;
            http::read_to_end(&mut s).ok()
        })
        .is_none_or(|reply| !reply.starts_with("HTTP/1.1 200"))
    {
        assert!(std::time::Instant::now() < deadline, "slots never freed");
        thread::sleep(Duration::from_millis(50));
    }
}
