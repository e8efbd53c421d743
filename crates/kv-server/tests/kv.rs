//! KV mode (PROTOCOL.md, "KV mode") over the real binary: the guide's session, every reply,
//! pipelining, and what concurrent and crashing clients may not break.

pub mod common;

use std::thread;

use common::{ask, Client, TestServer};

#[test]
fn the_guides_session_works_verbatim_over_telnet() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE shopping\r\n", b"OK\r\n");
    ask(&mut c, b"PUT shopping milk 1\r\n", b"OK\r\n");
    ask(&mut c, b"PUT shopping eggs 3\r\n", b"OK\r\n");
    ask(&mut c, b"GET shopping milk\r\n", b"1\r\nOK\r\n");
    ask(&mut c, b"DELETE shopping eggs\r\n", b"OK\r\n");
    ask(&mut c, b"GET shopping eggs\r\n", b"\r\nOK\r\n");
}

#[test]
fn lf_terminated_requests_work_as_nc_sends_them() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE shopping\n", b"OK\r\n");
    ask(&mut c, b"PUT shopping milk 1\n", b"OK\r\n");
    ask(&mut c, b"GET shopping milk\n", b"1\r\nOK\r\n");
}

#[test]
fn every_error_reply_is_exact() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"PUT nope k v\r\n", b"NOT FOUND\r\n");
    ask(&mut c, b"GET nope k\r\n", b"NOT FOUND\r\n");
    ask(&mut c, b"DELETE nope k\r\n", b"NOT FOUND\r\n");
    ask(&mut c, b"FROB nope\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"   \t \r\n", b"UNKNOWN COMMAND\r\n");
    // Parsed before any lookup: wrong arity is UNKNOWN COMMAND, bucket or not.
    ask(&mut c, b"PUT nope k\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b k\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"GET b k extra\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"DELETE b never-there\r\n", b"OK\r\n");
    ask(&mut c, b"PING\r\n", b"PONG\r\n");
}

#[test]
fn verbs_are_case_insensitive_and_names_are_not() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"create Shop\r\n", b"OK\r\n");
    ask(&mut c, b"pUt Shop Milk One\r\n", b"OK\r\n");
    ask(&mut c, b"get Shop Milk\r\n", b"One\r\nOK\r\n");
    ask(&mut c, b"GET Shop milk\r\n", b"\r\nOK\r\n");
    ask(&mut c, b"GET shop Milk\r\n", b"NOT FOUND\r\n");
    ask(&mut c, b"ping\r\n", b"PONG\r\n");
}

#[test]
fn runs_of_spaces_and_tabs_separate_words() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"  CREATE\t\tb  \r\n", b"OK\r\n");
    ask(&mut c, b"PUT   b\tk \t v\t\r\n", b"OK\r\n");
    ask(&mut c, b"GET b k\r\n", b"v\r\nOK\r\n");
}

#[test]
fn values_are_opaque_bytes() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    ask(&mut c, b"PUT b \xff\x00k \xc3\x28\x80\x01v\r\n", b"OK\r\n");
    ask(
        &mut c,
        b"GET b \xff\x00k\r\n",
        b"\xc3\x28\x80\x01v\r\nOK\r\n",
    );
}

#[test]
fn quit_says_ok_then_the_server_closes() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"QUIT\r\n", b"OK\r\n");
    c.expect_eof();
}

#[test]
fn an_unterminated_last_line_is_dropped_unanswered() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    c.send(b"CREATE b\r\nPING");
    c.shutdown_write();
    c.expect(b"OK\r\n");
    c.expect_eof();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    let mut requests = b"CREATE b\r\n".to_vec();
    let mut replies = b"OK\r\n".to_vec();
    for i in 0..2_000 {
        requests.extend_from_slice(format!("PUT b k{i} v{i}\r\nGET b k{i}\r\n").as_bytes());
        replies.extend_from_slice(format!("OK\r\nv{i}\r\nOK\r\n").as_bytes());
    }
    requests.extend_from_slice(b"GET b missing\r\nPING\r\n");
    replies.extend_from_slice(b"\r\nOK\r\nPONG\r\n");
    c.send(&requests);
    c.expect(&replies);
}

/// Data segments this client's socket has received so far (`TCP_INFO`). With
/// `TCP_NODELAY` on the server, every server write leaves as at least one segment.
fn data_segments_received(client: &Client) -> u32 {
    use std::os::fd::AsRawFd;
    // SAFETY: `tcp_info` is plain data, so all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt on a socket we own, into a buffer of the size we pass.
    let rc = unsafe {
        libc::getsockopt(
            client.stream().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_data_segs_in
}

#[test]
fn replies_to_requests_that_arrived_together_leave_in_one_write() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    let before = data_segments_received(&c);
    c.send(&b"PING\r\n".repeat(200));
    c.expect(&b"PONG\r\n".repeat(200));
    let segments = data_segments_received(&c) - before;
    // A server writing each reply on its own sends ~200 segments. The requests may
    // arrive in a few reads, hence a few writes at most.
    assert!(
        segments <= 10,
        "{segments} segments for 200 pipelined replies"
    );
    assert!(segments >= 1, "TCP_INFO must count the replies");
}

#[test]
fn a_write_is_visible_to_other_connections_once_acknowledged() {
    let server = TestServer::start(&[]);
    let mut writer = server.connect();
    let mut reader = server.connect();
    ask(&mut writer, b"CREATE shared\r\n", b"OK\r\n");
    for i in 0..50 {
        ask(
            &mut writer,
            format!("PUT shared k v{i}\r\n").as_bytes(),
            b"OK\r\n",
        );
        ask(
            &mut reader,
            b"GET shared k\r\n",
            format!("v{i}\r\nOK\r\n").as_bytes(),
        );
    }
    ask(&mut writer, b"DELETE shared k\r\n", b"OK\r\n");
    ask(&mut reader, b"GET shared k\r\n", b"\r\nOK\r\n");
}

#[test]
fn a_bucket_outlives_the_connection_that_created_it() {
    let server = TestServer::start(&[]);
    let mut creator = server.connect();
    ask(&mut creator, b"CREATE kept\r\n", b"OK\r\n");
    ask(&mut creator, b"PUT kept k v\r\n", b"OK\r\n");
    ask(&mut creator, b"QUIT\r\n", b"OK\r\n");
    creator.expect_eof();
    let mut later = server.connect();
    ask(&mut later, b"GET kept k\r\n", b"v\r\nOK\r\n");
}

#[test]
fn a_hundred_clients_writing_disjoint_keys_lose_nothing() {
    let server = TestServer::start(&[]);
    ask(&mut server.connect(), b"CREATE many\r\n", b"OK\r\n");
    let writers: Vec<_> = (0..100)
        .map(|client| {
            let mut c = server.connect();
            thread::spawn(move || {
                for i in 0..50 {
                    ask(
                        &mut c,
                        format!("PUT many c{client}-k{i} v{client}-{i}\r\n").as_bytes(),
                        b"OK\r\n",
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread");
    }
    let mut reader = server.connect();
    for client in 0..100 {
        for i in 0..50 {
            ask(
                &mut reader,
                format!("GET many c{client}-k{i}\r\n").as_bytes(),
                format!("v{client}-{i}\r\nOK\r\n").as_bytes(),
            );
        }
    }
}

#[test]
fn a_crashing_connection_loses_no_acknowledged_write() {
    let server = TestServer::start(&["--debug-commands"]);
    let mut setup = server.connect();
    ask(&mut setup, b"CREATE b\r\n", b"OK\r\n");
    // Another client keeps writing while one crashes.
    let mut bystander = server.connect();
    let steady = thread::spawn(move || {
        for i in 0..200 {
            ask(
                &mut bystander,
                format!("PUT b steady{i} {i}\r\n").as_bytes(),
                b"OK\r\n",
            );
        }
    });
    let mut doomed = server.connect();
    for i in 0..100 {
        ask(
            &mut doomed,
            format!("PUT b doomed{i} {i}\r\n").as_bytes(),
            b"OK\r\n",
        );
    }
    doomed.send(b"DEBUG PANIC\r\n");
    doomed.expect_closed();
    steady.join().expect("bystander");
    server.wait_for_log("panicked", common::PATIENCE);
    let mut reader = server.connect();
    for i in 0..100 {
        ask(
            &mut reader,
            format!("GET b doomed{i}\r\n").as_bytes(),
            format!("{i}\r\nOK\r\n").as_bytes(),
        );
    }
    for i in 0..200 {
        ask(
            &mut reader,
            format!("GET b steady{i}\r\n").as_bytes(),
            format!("{i}\r\nOK\r\n").as_bytes(),
        );
    }
}

#[test]
fn debug_commands_are_unknown_without_the_flag() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    ask(&mut c, b"DEBUG PANIC\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"DEBUG SLEEP 10\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"DEBUG ACCEPTOR-PANIC\r\n", b"UNKNOWN COMMAND\r\n");
    ask(&mut c, b"PING\r\n", b"PONG\r\n");
}

#[test]
fn debug_sleep_answers_ok_in_order_with_the_flag() {
    let server = TestServer::start(&["--debug-commands"]);
    let mut c = server.connect();
    c.send(b"PING\r\ndebug sleep 50\r\nPING\r\n");
    c.expect(b"PONG\r\nOK\r\nPONG\r\n");
}

#[test]
fn an_over_long_request_is_refused_and_the_connection_closed() {
    let server = TestServer::start(&["--max-line-bytes", "32"]);
    let mut c = server.connect();
    ask(&mut c, b"CREATE b\r\n", b"OK\r\n");
    c.send(format!("PUT b k {}\r\n", "x".repeat(64)).as_bytes());
    c.expect(b"ERROR line too long\r\n");
    c.expect_closed();
}
