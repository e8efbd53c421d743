//! Running it (docs/OPERATIONS.md, "Configuration"): flags, environment variables, the bind log line,
//! and refusing to start on bad input.

pub mod common;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};

use common::{ask, proc, Client, TestServer, PATIENCE};

#[test]
fn the_bind_log_line_names_the_real_port_when_started_on_port_0() {
    let server = TestServer::echo(&[]);
    assert_ne!(server.port(), 0);
    let line = server.wait_for_log("Accepting connections on port", PATIENCE);
    assert!(
        line.ends_with(&format!("Accepting connections on port {}", server.port())),
        "{line}"
    );
    assert_eq!(common::log_level(&line), Some("INFO"), "{line}");
    // The port in the log is the one really listening.
    server.connect().echo(b"hello\r\n");
}

#[test]
fn the_port_env_var_sets_the_port() {
    let port = free_port();
    let server = TestServer::builder()
        .without_port_flag()
        .args(["--mode", "echo"])
        .env("PORT", port.to_string())
        .start();
    assert_eq!(server.port(), port);
    server.connect().echo(b"PORT=4321 mix run --no-halt\r\n");
}

#[test]
fn the_port_flag_wins_over_the_port_env_var() {
    // PORT names a port that is taken: if the env var won, the server could not start.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let server = TestServer::builder()
        .args(["--mode", "echo"])
        .env("PORT", taken_port.to_string())
        .start();
    assert_ne!(server.port(), taken_port);
    server.connect().echo(b"flag wins\r\n");
}

#[test]
fn the_port_flag_sets_the_port() {
    let port = free_port();
    let server = TestServer::builder()
        .without_port_flag()
        .args(["--mode", "echo", "--port", &port.to_string()])
        .start();
    assert_eq!(server.port(), port);
    server.connect().echo(b"hello\r\n");
}

#[test]
fn a_port_already_in_use_ends_the_process_with_a_message() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let run = TestServer::builder()
        .without_port_flag()
        .args(["--mode", "echo", "--port", &port])
        .run_to_exit(PATIENCE);
    assert!(!run.status.success(), "{}", run.stderr);
    assert!(
        run.stderr.contains(&port),
        "the message should name the port {port}: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("Accepting connections"),
        "{}",
        run.stderr
    );
}

#[test]
fn invalid_flag_values_end_the_process_with_a_message_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--port", "70000"], "port"),
        (&["--port", "abc"], "port"),
        (&["--port"], "port"),
        (&["--bind", "not-an-address"], "bind"),
        (&["--mode", "telnet"], "mode"),
        (&["--max-connections", "0"], "max-connections"),
        (&["--max-connections", "lots"], "max-connections"),
        (&["--max-line-bytes", "2"], "max-line-bytes"),
        (&["--max-line-bytes=-16"], "max-line-bytes"),
        (&["--idle-timeout-secs", "soon"], "idle-timeout-secs"),
        (&["--shutdown-timeout-secs", "1.5"], "shutdown-timeout-secs"),
        (&["--max-restarts", "many"], "max-restarts"),
        (
            &["--max-restart-window-secs", "0"],
            "max-restart-window-secs",
        ),
        (&["--debug-commands=maybe"], "debug-commands"),
        (&["--fsync", "sometimes"], "fsync"),
        (&["--compact-after-mib=-1"], "compact-after-mib"),
        (&["--compact-after-mib", "2000000"], "compact-after-mib"),
        (&["--event-loops", "0"], "event-loops"),
        (&["--workers", "0"], "event-loops"),
        // Values past what the timers and the connection limit can count.
        (
            &["--idle-timeout-secs", "18446744073709551615"],
            "idle-timeout-secs",
        ),
        (
            &["--shutdown-timeout-secs", "9223372036854775807"],
            "shutdown-timeout-secs",
        ),
        (
            &["--max-connections", "18446744073709551615"],
            "max-connections",
        ),
    ];
    for (args, flag) in cases {
        let run = TestServer::builder()
            .args(["--mode", "echo"])
            .args(*args)
            .run_to_exit(PATIENCE);
        assert_refused_to_start(&run, &format!("{args:?}"), flag);
    }
}

#[test]
fn invalid_environment_values_end_the_process_with_a_message_naming_the_setting() {
    let cases: &[(&str, &str, &str)] = &[
        ("PORT", "abc", "port"),
        ("PORT", "99999", "port"),
        ("KV_BIND", "nowhere", "bind"),
        ("KV_MODE", "telnet", "mode"),
        ("KV_MAX_CONNECTIONS", "0", "max-connections"),
        ("KV_MAX_LINE_BYTES", "1", "max-line-bytes"),
        ("KV_IDLE_TIMEOUT_SECS", "x", "idle-timeout-secs"),
        ("KV_SHUTDOWN_TIMEOUT_SECS", "x", "shutdown-timeout-secs"),
        ("KV_DEBUG_COMMANDS", "maybe", "debug-commands"),
        ("KV_FSYNC", "never", "fsync"),
        ("KV_COMPACT_AFTER_MIB", "lots", "compact-after-mib"),
    ];
    for (key, value, setting) in cases {
        let mut builder = TestServer::builder().env(key, value);
        if *key != "KV_MODE" {
            builder = builder.args(["--mode", "echo"]);
        }
        if *key == "PORT" {
            builder = builder.without_port_flag();
        }
        let run = builder.run_to_exit(PATIENCE);
        assert_refused_to_start(&run, &format!("{key}={value}"), setting);
    }
}

#[test]
fn an_unknown_flag_ends_the_process_with_a_message_naming_it() {
    let run = TestServer::builder()
        .args(["--mode", "echo", "--frobnicate"])
        .run_to_exit(PATIENCE);
    assert_refused_to_start(&run, "--frobnicate", "frobnicate");
}

#[test]
fn help_documents_every_flag_and_its_environment_variable() {
    let run = TestServer::builder()
        .without_port_flag()
        .args(["--help"])
        .run_to_exit(PATIENCE);
    assert!(run.status.success(), "{}", run.stderr);
    for documented in [
        "--port",
        "PORT",
        "--bind",
        "KV_BIND",
        "--mode",
        "KV_MODE",
        "echo",
        "kv",
        "--max-connections",
        "KV_MAX_CONNECTIONS",
        "--max-line-bytes",
        "KV_MAX_LINE_BYTES",
        "--idle-timeout-secs",
        "KV_IDLE_TIMEOUT_SECS",
        "--shutdown-timeout-secs",
        "KV_SHUTDOWN_TIMEOUT_SECS",
        "--max-restarts",
        "--max-restart-window-secs",
        "--debug-commands",
        "KV_DEBUG_COMMANDS",
        "--data-dir",
        "KV_DATA_DIR",
        "--fsync",
        "KV_FSYNC",
        "--compact-after-mib",
        "KV_COMPACT_AFTER_MIB",
        "--event-loops",
        "--workers",
        "KV_WORKERS",
    ] {
        assert!(
            run.stdout.contains(documented),
            "--help does not mention {documented}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn kv_mode_env_selects_echo_mode() {
    let server = TestServer::builder().env("KV_MODE", "echo").start();
    server.connect().echo(b"hello\r\n");
}

#[test]
fn the_mode_flag_wins_over_kv_mode_env() {
    let server = TestServer::builder()
        .env("KV_MODE", "kv")
        .args(["--mode", "echo"])
        .start();
    server.connect().echo(b"hello\r\n");
}

#[test]
fn the_max_line_bytes_flag_wins_over_its_env_var() {
    let server = TestServer::builder()
        .args(["--mode", "echo", "--max-line-bytes", "1024"])
        .env("KV_MAX_LINE_BYTES", "16")
        .start();
    server
        .connect()
        .echo(b"a line well over sixteen bytes long\r\n");
}

#[test]
fn the_debug_commands_flag_wins_over_its_env_var() {
    let server = TestServer::builder()
        .args(["--mode", "echo", "--debug-commands"])
        .env("KV_DEBUG_COMMANDS", "0")
        .start();
    let mut client = server.connect();
    client.send(b"DEBUG SLEEP 1\r\n");
    client.expect(b"OK\r\n");
}

#[test]
fn by_default_it_listens_on_loopback_only() {
    let Some(external) = non_loopback_ipv4() else {
        eprintln!("no non-loopback IPv4 address on this machine; nothing to check");
        return;
    };
    let server = TestServer::echo(&[]);
    server.connect().echo(b"loopback works\r\n");
    let from_outside = SocketAddr::new(external, server.port());
    assert!(
        TcpStream::connect_timeout(&from_outside, PATIENCE).is_err(),
        "reachable on {from_outside} although only loopback was asked for"
    );
}

#[test]
fn the_bind_flag_and_kv_bind_env_expose_it_on_other_addresses() {
    let Some(external) = non_loopback_ipv4() else {
        eprintln!("no non-loopback IPv4 address on this machine; nothing to check");
        return;
    };
    for server in [
        TestServer::echo(&["--bind", "0.0.0.0", "--protected-mode", "no"]),
        TestServer::builder()
            .args(["--mode", "echo"])
            .env("KV_BIND", "0.0.0.0")
            .env("KV_PROTECTED_MODE", "no")
            .start(),
    ] {
        let mut client = Client::connect(SocketAddr::new(external, server.port()))
            .unwrap_or_else(|e| panic!("not reachable on {external}: {e}"));
        client.echo(b"hello from outside\r\n");
    }
}

#[test]
fn protected_mode_turns_away_a_client_not_on_loopback_unless_a_password_is_set() {
    let Some(external) = non_loopback_ipv4() else {
        eprintln!("no non-loopback IPv4 address on this machine; nothing to check");
        return;
    };
    let protected = TestServer::start(&["--bind", "0.0.0.0"]);
    let mut outsider = Client::connect(SocketAddr::new(external, protected.port()))
        .unwrap_or_else(|e| panic!("not reachable on {external}: {e}"));
    outsider.expect(
        b"ERROR DENIED protected mode: set a password (--requirepass) or start with \
--protected-mode no\r\n",
    );
    outsider.expect_eof();
    // The same server serves loopback clients.
    ask(&mut protected.connect(), b"PING\r\n", b"PONG\r\n");

    let with_password = TestServer::start(&["--bind", "0.0.0.0", "--requirepass", "s3cret"]);
    let mut outsider = Client::connect(SocketAddr::new(external, with_password.port()))
        .unwrap_or_else(|e| panic!("not reachable on {external}: {e}"));
    ask(
        &mut outsider,
        b"PING\r\n",
        b"ERROR NOAUTH authentication required\r\n",
    );
    ask(&mut outsider, b"AUTH s3cret\r\n", b"OK\r\n");
    ask(&mut outsider, b"PING\r\n", b"PONG\r\n");
}

/// As Redis' `bind localhost` works: the name is resolved at start, IPv4 first.
#[test]
fn the_bind_flag_takes_a_host_name_such_as_localhost() {
    for server in [
        TestServer::echo(&["--bind", "localhost"]),
        TestServer::builder()
            .args(["--mode", "echo"])
            .env("KV_BIND", "localhost")
            .start(),
    ] {
        server.connect().echo(b"hello, localhost\r\n");
    }
}

#[test]
fn the_bind_flag_accepts_ipv6_loopback() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine; nothing to check");
        return;
    }
    let server = TestServer::echo(&["--bind", "::1"]);
    let addr: SocketAddr = format!("[::1]:{}", server.port()).parse().unwrap();
    let mut client = Client::connect(addr).expect("connect to [::1]");
    client.echo(b"hello over IPv6\r\n");
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An address of this machine that is not loopback (no packet is sent: connecting a UDP
/// socket only picks the route).
fn non_loopback_ipv4() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn assert_refused_to_start(run: &common::Finished, case: &str, setting: &str) {
    assert!(
        !run.status.success(),
        "{case}: should refuse to start, exited {}",
        run.status
    );
    assert!(
        !run.stderr.contains("Accepting connections"),
        "{case}: started serving: {}",
        run.stderr
    );
    assert!(
        run.stderr.to_lowercase().contains(setting),
        "{case}: the message should name {setting}: {:?}",
        run.stderr
    );
}

#[test]
fn event_loops_sets_the_number_of_event_loops_also_by_its_old_name() {
    let one = TestServer::start(&["--event-loops", "1"]);
    let two = TestServer::start(&["--workers", "2"]);
    let three = TestServer::builder().env("KV_WORKERS", "3").start();
    // The main thread and the log writer, plus the loops.
    assert_eq!(proc::threads(one.pid()), 3);
    assert_eq!(proc::threads(two.pid()), 4);
    assert_eq!(proc::threads(three.pid()), 5);
    for server in [&one, &two, &three] {
        let mut c = server.connect();
        c.send(b"PING\r\n");
        c.expect(b"PONG\r\n");
    }
}
