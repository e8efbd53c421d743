//! `--log-format json` (`KV_LOG_FORMAT`): one JSON object per log line, for log shippers;
//! text stays the default.

pub mod common;

use common::{ask, TestServer, PATIENCE};

#[test]
fn json_logs_are_one_object_per_line_with_level_target_and_message() {
    for server in [
        TestServer::start(&["--log-format", "json"]),
        TestServer::builder().env("KV_LOG_FORMAT", "json").start(),
    ] {
        ask(&mut server.connect(), b"PING\r\n", b"PONG\r\n");
        server.wait_for_log("Accepting connections on port", PATIENCE);
        let lines = server.logs();
        assert!(!lines.is_empty());
        for line in lines {
            let object: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(object["level"].is_string(), "{line}");
            assert!(object["target"].is_string(), "{line}");
            // At the top level, where log shippers look for it.
            assert!(object["message"].is_string(), "{line}");
            assert!(object.get("fields").is_none(), "{line}");
            assert!(object["timestamp"].is_string(), "{line}");
        }
    }
}

/// An event's own fields (here the client's address) sit beside `message`.
#[test]
fn json_logs_carry_an_events_fields_at_the_top_level() {
    let server = TestServer::start(&["--log-format", "json", "--debug-commands"]);
    let mut client = server.connect();
    client.send(b"DEBUG PANIC\r\n");
    client.expect_closed();
    let line = server.wait_for_log("connection task panicked", PATIENCE);
    let object: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(object["peer"], client.local_addr().to_string(), "{line}");
    assert!(object["message"].is_string(), "{line}");
}

#[test]
fn text_is_the_default() {
    let server = TestServer::start(&[]);
    let line = server.wait_for_log("Accepting connections on port", PATIENCE);
    assert!(!line.starts_with('{'), "{line}");
    assert_eq!(common::log_level(&line), Some("INFO"), "{line}");
}
