//! Cross-protocol requests (PROTOCOL.md, "KV mode") over the real binary: a web page that
//! makes a browser `POST` kv requests to the kv port gets the connection closed before its
//! body runs.

pub mod common;

use std::io::Write;
use std::thread;
use std::time::Duration;

use common::{ask, Client, TestServer, PATIENCE};

/// What a browser sends when a page does
/// `fetch("http://127.0.0.1:4040/", {method: "POST", body: "CREATE pwn\nPUT pwn k owned\n"})`
/// (a `text/plain` body needs no CORS preflight).
const BROWSER_HEADERS: &[u8] = b"POST / HTTP/1.1\r\n\
Host: 127.0.0.1:4040\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: */*\r\n\
Content-Type: text/plain;charset=UTF-8\r\n\
Content-Length: 27\r\n\
Origin: http://evil.example\r\n\
Connection: keep-alive\r\n\
\r\n";
const BROWSER_BODY: &[u8] = b"CREATE pwn\nPUT pwn k owned\n";

/// Writes what it can: once the server has closed, the rest of the request may be refused
/// (broken pipe, reset), which is the point.
fn send_while_open(client: &Client, bytes: &[u8]) {
    let _ = client.stream().write_all(bytes);
}

/// Another client's view: the page's body never ran.
fn assert_never_created(server: &TestServer) {
    ask(&mut server.connect(), b"GET pwn k\r\n", b"NOT FOUND\r\n");
}

#[test]
fn a_browsers_post_in_one_write_is_closed_unanswered_and_its_body_never_runs() {
    let server = TestServer::start(&[]);
    let mut browser = server.connect();
    browser.send(&[BROWSER_HEADERS, BROWSER_BODY].concat());
    browser.expect_closed();
    assert_never_created(&server);
}

#[test]
fn a_browsers_post_split_across_writes_is_closed_unanswered_and_its_body_never_runs() {
    let server = TestServer::start(&[]);
    let mut browser = server.connect();
    let (line, headers) = BROWSER_HEADERS.split_at(9); // "POST / HT" | "TP/1.1\r\n..."
    browser.send(line);
    thread::sleep(Duration::from_millis(50));
    send_while_open(&browser, headers);
    thread::sleep(Duration::from_millis(50));
    send_while_open(&browser, BROWSER_BODY);
    browser.expect_closed();
    assert_never_created(&server);
}

#[test]
fn a_body_sent_after_the_headers_were_read_never_runs() {
    let server = TestServer::start(&[]);
    let mut browser = server.connect();
    browser.send(BROWSER_HEADERS);
    // The headers have been read and acted on before the body arrives.
    thread::sleep(Duration::from_millis(200));
    send_while_open(&browser, BROWSER_BODY);
    browser.expect_closed();
    assert_never_created(&server);
}

/// A page that guesses the password: the guess, then what it would run if right. The
/// server must close at the `POST`, not answer the headers `NOAUTH` and read on.
fn post_with_password(password: &str) -> Vec<u8> {
    let body = format!("AUTH {password}\r\nCREATE pwned\r\nPING\r\n");
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn before_auth_a_browsers_post_is_closed_unanswered_even_with_the_right_password() {
    let server = TestServer::start(&["--requirepass", "s3cret"]);
    let mut browser = server.connect();
    browser.send(&post_with_password("s3cret"));
    browser.expect_closed();
    let mut other = server.connect();
    ask(&mut other, b"AUTH s3cret\r\n", b"OK\r\n");
    ask(&mut other, b"GET pwned k\r\n", b"NOT FOUND\r\n");
    server.wait_for_log_with(
        &["WARN", "SECURITY", &browser.local_addr().to_string()],
        PATIENCE,
    );
}

#[test]
fn a_line_of_http_closes_an_unauthenticated_connection_after_its_noauth_answers() {
    let server = TestServer::start(&["--requirepass", "s3cret"]);
    let mut c = server.connect();
    c.send(b"PING\r\nOPTIONS * HTTP/1.1\r\nAUTH s3cret\r\nCREATE pwned\r\n");
    c.expect(b"ERROR NOAUTH authentication required\r\n");
    c.expect_closed();
    let mut other = server.connect();
    ask(&mut other, b"AUTH s3cret\r\n", b"OK\r\n");
    ask(&mut other, b"GET pwned k\r\n", b"NOT FOUND\r\n");
}

#[test]
fn get_slash_http_is_a_kv_get_answered_then_host_closes() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.expect(b"NOT FOUND\r\n");
    c.expect_closed();
}

#[test]
fn requests_before_an_http_line_in_the_same_read_are_answered_and_none_after_it_runs() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    c.send(
        b"CREATE b\r\nPUT b k HTTP/1.1\r\nGET b k\r\n\
          OPTIONS * HTTP/1.1\r\nPUT b k owned\r\nCREATE pwn\r\n",
    );
    c.expect(b"OK\r\nOK\r\nHTTP/1.1\r\nOK\r\n");
    c.expect_closed();
    let mut other = server.connect();
    ask(&mut other, b"GET b k\r\n", b"HTTP/1.1\r\nOK\r\n");
    assert_never_created(&server);
}

#[test]
fn a_normal_client_with_http_looking_values_is_unaffected() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b k HTTP/1.1\r\n", b"OK\r\n");
    ask(&mut c, b"GET b k\r\n", b"HTTP/1.1\r\nOK\r\n");
    ask(&mut c, b"PUT b HTTP/1.1 v\r\n", b"OK\r\n");
    ask(&mut c, b"GET b HTTP/1.1\r\n", b"v\r\nOK\r\n");
    ask(&mut c, b"DELETE b HTTP/1.1\r\n", b"OK\r\n");
    // Words that only resemble HTTP are ordinary unknown commands.
    ask(&mut c, b"HTTP/1.1 200 OK\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"Hosts: x\r\n", b"UNKNOWN COMMAND\r\n");
    ask(
        &mut c,
        b"Content-Type: text/plain\r\n",
        b"UNKNOWN COMMAND\r\n",
    );
    ask(&mut c, b"GET b k http/1.1\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"PING\r\n", b"PONG\r\n");
}

#[test]
fn lowercase_host_and_post_close_too() {
    let server = TestServer::start(&[]);
    for line in [
        &b"host: 127.0.0.1:4040\r\n"[..],
        b"post /x http/1.1\r\n",
        b"HoSt:\r\n",
    ] {
        let mut c = server.connect();
        c.send(&[&b"PING\r\n"[..], line, b"CREATE pwn\r\n"].concat());
        c.expect(b"PONG\r\n");
        c.expect_closed();
    }
    assert_never_created(&server);
}

#[test]
fn the_warning_names_the_peer_and_a_second_offender_within_the_minute_is_not_logged() {
    // Debug level: the "connection closed" line that follows a warning in the same task
    // shows when the second offender has been fully handled.
    let server = TestServer::builder()
        .env("RUST_LOG", "info,line_server=debug")
        .start();
    let mut first = server.connect();
    let first_addr = first.local_addr().to_string();
    first.send(b"POST / HTTP/1.1\r\n");
    first.expect_closed();
    let warning = server.wait_for_log_with(&["WARN", &first_addr], PATIENCE);
    assert!(warning.contains("SECURITY"), "{warning}");

    let mut second = server.connect();
    let second_addr = second.local_addr().to_string();
    second.send(b"Host: 127.0.0.1:4040\r\n");
    second.expect_closed();
    drop(second);
    server.wait_for_log_with(&["connection closed", &second_addr], PATIENCE);
    let warnings = server.logs_containing("SECURITY");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(server
        .logs_at("WARN")
        .iter()
        .all(|l| !l.contains(&second_addr)));
}

#[test]
fn echo_mode_still_echoes_http_lines_byte_for_byte() {
    // PROTOCOL.md, "Echo mode": echo mode echoes every line; the cross-protocol rule is KV
    // mode's (§4).
    let server = TestServer::echo(&[]);
    let mut c = server.connect();
    c.echo(b"POST / HTTP/1.1\r\n");
    c.echo(b"Host: 127.0.0.1:4040\r\n");
    c.echo(b"\r\n");
}
